"""Bad input, one row each: exit status 2, one line naming the key or path, nothing written.

Every row fails in the checks made before training, so the table stays fast."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from liquid_rl.agents.build import make_vec_env
from liquid_rl.agents.config import UserError, validate_config
from liquid_rl.cli import main

ROOT = Path(__file__).resolve().parents[1]
LTC = str(ROOT / "configs" / "cartpole_novel_ltc.yaml")
SAC = str(ROOT / "configs" / "halfcheetah_p_sac_mlp.yaml")
NCP = str(ROOT / "configs" / "lane_keeping_ncp.yaml")
T = ["train", "--config", LTC, "--set", "train.total_timesteps=1024"]

DUPLICATE = "env: {id: CartPole-v1}\nalgo: {name: ppo}\ntrain: {total_timesteps: 100}\ntrain: {total_timesteps: 200}\n"
NCP_WIRING = ("policy.wiring={inter_neurons: 12, command_neurons: 6, motor_neurons: 1, sensory_fanout: 4, "
              "inter_fanout: 100, recurrent_command_synapses: 4, motor_fanin: 4}")

# (name, argv with {tmp} for the test folder, text the one error line must contain)
CASES = [
    ("lr inf", T + ["--set", "algo.hyperparams.learning_rate=.inf"], "'algo.hyperparams.learning_rate' must be a finite number in (0, 1]"),
    ("lr 1e30", T + ["--set", "algo.hyperparams.learning_rate=1e30"], "'algo.hyperparams.learning_rate' must be a number in (0, 1], got 1e30"),
    ("lr schedule 1e30", T + ["--set", "algo.hyperparams.learning_rate=lin_1e30"], "'algo.hyperparams.learning_rate' schedule"),
    ("units 1e9", T + ["--set", "policy.units=1e9"], "'policy.units' must be an integer in [1, 2048], got 1e9"),
    ("n_steps 1e13", T + ["--set", "algo.hyperparams.n_steps=1e13"], "'algo.hyperparams.n_steps' must be an integer in [1, 1e7]"),
    ("buffer 1e13", ["train", "--config", SAC, "--set", "algo.hyperparams.buffer_size=1e13"], "'algo.hyperparams.buffer_size' must be an integer in [1, 1e9]"),
    ("buffer memory", ["train", "--config", SAC, "--set", "algo.hyperparams.buffer_size=1e9"], "'algo.hyperparams.buffer_size' 1000000000 needs about"),
    ("rollout memory", T + ["--set", "algo.hyperparams.n_steps=1e7", "--set", "env.n_envs=512"], "'algo.hyperparams.n_steps' 10000000 needs about"),
    ("fanout", ["train", "--config", NCP, "--set", NCP_WIRING], "'policy.wiring.inter_fanout' must be in [1, 6] (the NCP's command_neurons), got 100"),
    ("auto ncp", T + ["--set", "policy.wiring=ncp", "--set", "policy.output_size=31"], "'policy.output_size' must be in [1, 29] for wiring ncp"),
    ("n_envs 1e12", T + ["--set", "env.n_envs=1e12"], "'env.n_envs' must be an integer in [1, 512], got 1e12"),
    ("ode_unfolds 1e9", T + ["--set", "policy.ode_unfolds=1e9"], "'policy.ode_unfolds' must be an integer in [1, 100], got 1e9"),
    ("budget 1e30", ["train", "--config", LTC, "--set", "train.total_timesteps=1e30"], "'train.total_timesteps' must be an integer in [1, 1e10], got 1e30"),
    ("progress bar maybe", T + ["--set", "train.progress_bar=maybe"], "'train.progress_bar' must be true or false, got 'maybe'"),
    ("seed too large", T + ["--set", "train.seed=1e20"], "'train.seed' must be an integer in [0, 4294967295]"),
    ("bool option maybe", T + ["--set", "policy.kwargs={mixed_memory: maybe}"], "'policy.kwargs.mixed_memory' must be true or false, got 'maybe'"),
    ("wrapper indices abc", T + ["--set", "env.wrappers=[{name: MaskObservation, kwargs: {indices: abc}}]"], "'env.wrappers[0].kwargs.indices' must be a list of integers, got 'abc'"),
    ("typo", T + ["--set", "train.total_timestep=5"], "unknown key 'train.total_timestep' (did you mean 'train.total_timesteps'?)"),
    ("config is a dir", ["train", "--config", "{tmp}"], "is a directory; give a YAML file"),
    ("duplicate key", ["train", "--config", "{tmp}/dup.yaml"], "line 4: duplicate key (key 'train' is given twice)"),
    ("out under a file", T + ["--out", "{tmp}/afile/sub"], "{tmp}/afile/sub: {tmp}/afile is a file, not a folder"),
    ("out is a file", T + ["--out", "{tmp}/afile"], "--out {tmp}/afile is a file; give a folder"),
    ("eval json dir", ["eval", "{tmp}/nomodel", "--json", "{tmp}"], "--json {tmp} is a folder; give a file name"),
    ("eval json under a file", ["eval", "{tmp}/nomodel", "--json", "{tmp}/afile/x.json"], "{tmp}/afile is a file, not a folder"),
    ("inspect out file", ["inspect", "{tmp}/nomodel", "--out", "{tmp}/afile"], "--out {tmp}/afile is a file; give a folder"),
    ("truncated model", ["eval", "{tmp}/half.zip"], "truncated or corrupt"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, expected):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dup.yaml").write_text(DUPLICATE)
    (tmp_path / "half.zip").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "train" in argv and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert expected.replace("{tmp}", str(tmp_path)) in err[0]
    assert "Traceback" not in err[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_parent(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(T + ["--out", str(locked / "run")]) == 2
    assert f"cannot write in {locked} (permission denied)" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


# --- the run-directory lock, held by another process ------------------------------------

HOLD = ("import sys, time\nfrom liquid_rl.agents.run_dir import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)\n")


def _hold(run: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
    return proc


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(Path(LTC).read_text())
    (run / "run.json").write_text('{"status": "running"}')
    return run


@pytest.mark.parametrize("scenario", ["train new out", "overwrite", "resume"])
def test_a_locked_run_directory_refuses_a_second_process(tmp_path, capsys, scenario):
    run = tmp_path / "run" if scenario == "train new out" else _run_dir(tmp_path)
    holder = _hold(run)
    try:
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        argv = {"train new out": T + ["--out", str(run)],
                "overwrite": T + ["--out", str(run), "--overwrite"],
                "resume": ["train", "--resume", str(run)]}[scenario]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"liquid-rl: error: run directory {run} is in use by process {holder.pid}; "
                       "wait for it to finish or stop it"]
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # untouched
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_released_when_its_process_is_killed(tmp_path):
    from liquid_rl.agents.run_dir import RunLock

    run = tmp_path / "run"
    holder = _hold(run)
    holder.kill()  # SIGKILL: no cleanup runs
    holder.wait()
    deadline = time.monotonic() + 5
    with RunLock(run) as lock:
        assert lock.held and time.monotonic() < deadline
        assert (run / ".lock").read_text().strip() == str(os.getpid())


# --- NaN and inf from the env --------------------------------------------------------------

class _NaNAfter(gym.Wrapper):
    """A sensor that fails: the observation's first entry is NaN from the third step on."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.t = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t >= 3:
            obs = np.array(obs, dtype=np.float32)
            obs[0] = np.nan
        return obs, reward, terminated, truncated, info


def _steps(venv, n: int = 5) -> None:
    venv.reset()
    for _ in range(n):
        venv.step(np.zeros(venv.num_envs, dtype=np.int64))


@pytest.mark.parametrize("training, check, stops", [
    (True, True, True), (True, False, False), (False, True, True), (False, False, True)])
def test_a_nan_observation_stops_with_one_clear_line(training, check, stops):
    cfg = validate_config({"env": {"id": "CartPole-v1"}, "algo": {"name": "ppo"},
                           "train": {"total_timesteps": 100, "check_finite": check}})
    venv = make_vec_env(cfg, n_envs=1, seed=0, training=training, perturb=_NaNAfter)
    try:
        if not stops:
            _steps(venv)  # the check is off in training: NaN passes
            return
        with pytest.raises(UserError) as info:
            _steps(venv)
        message = str(info.value)
        assert message.startswith("found nan in observations from env CartPole-v1;") and "\n" not in message
        assert "train.check_finite: false or eval --no-finite-check turn this check off" in message
    finally:
        venv.close()


def test_eval_can_switch_the_check_off():
    cfg = validate_config({"env": {"id": "CartPole-v1"}, "algo": {"name": "ppo"}, "train": {"total_timesteps": 100}})
    venv = make_vec_env(cfg, n_envs=1, seed=0, training=False, perturb=_NaNAfter, check_finite=False)
    try:
        _steps(venv)
    finally:
        venv.close()


# --- numerics: elapsed times, solver stability, infinite inputs ---------------------------

def _models():
    from liquid_rl import CfC, LTC
    from liquid_rl.liquid_s4 import LiquidS4
    from liquid_rl.wirings import AutoNCP

    torch.manual_seed(0)
    return {"ltc": LTC(3, 8), "ltc ncp": LTC(3, AutoNCP(12, 2)), "cfc": CfC(3, 8), "cfc pure": CfC(3, 8, mode="pure"),
            "cfc ncp": CfC(3, AutoNCP(12, 2)), "cfc ncp pure": CfC(3, AutoNCP(12, 2), mode="pure"),
            "liquid_s4": LiquidS4(3, d_model=8)}


@pytest.mark.parametrize("timespans", [-1.0, -1e-6, float("nan"), "tensor"])
def test_negative_or_nan_timespans_raise(timespans):
    x = torch.randn(2, 5, 3)
    ts = torch.full((2, 5), 1.0).index_fill_(1, torch.tensor([3]), -0.5) if timespans == "tensor" else timespans
    for name, model in _models().items():
        with pytest.raises(ValueError, match="timespans must be >= 0 and not NaN"):
            model(x, timespans=ts)


def test_zero_timespans_are_allowed():
    x = torch.randn(2, 5, 3)
    for name, model in _models().items():
        y, _ = model(x, timespans=0.0)
        assert torch.isfinite(y).all(), name


def test_one_step_cells_refuse_negative_timespans():
    from liquid_rl.cfc import CfCCell
    from liquid_rl.ltc import LTCCell
    from liquid_rl.wirings import FullyConnected

    wiring = FullyConnected(8)
    wiring.build(3)
    for cell in (LTCCell(wiring), CfCCell(3, 8)):
        with pytest.raises(ValueError, match="timespans must be >= 0 and not NaN"):
            cell(torch.randn(2, 3), torch.zeros(2, 8), -1.0)


@pytest.mark.parametrize("solver", ["explicit", "rk4"])
def test_explicit_solvers_sub_step_or_raise_with_their_limit(solver):
    from liquid_rl import LTC
    from liquid_rl.solvers import EULER_LIMIT, RK4_LIMIT

    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    model = LTC(3, 8, solver=solver, ode_unfolds=6)
    with torch.no_grad():
        for ts in (1.0, 10.0, 30.0):  # h*g/cm passes the limit from ts ~ 3 on: sub-steps keep the state
            y, h = model(x, timespans=ts)  # bounded (without them it reached 1e23)
            assert torch.isfinite(h).all() and h.abs().max() < 10, ts
        with pytest.raises(ValueError, match=f"exceeds its stability limit {EULER_LIMIT if solver == 'explicit' else RK4_LIMIT}"):
            model(x, timespans=1e6)


def test_inf_inputs_give_finite_outputs_in_every_model():
    x = torch.randn(2, 5, 3)
    x[0, 2, 1], x[1, 3, 0] = float("inf"), -float("inf")
    for name, model in _models().items():
        if name == "liquid_s4":
            continue  # a linear state space: inf stays inf by design
        y, h = model(x)
        assert torch.isfinite(y).all() and torch.isfinite(h).all(), name


def test_a_training_process_holds_its_run_directory(tmp_path, capsys):
    """The four scenarios against a real training process: a second train into its --out,
    --overwrite of it and --resume of it each exit 2 and leave its files alone."""
    run = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("env: {id: CartPole-v1}\nalgo: {name: ppo, hyperparams: {n_steps: 64}}\n"
                      "train: {total_timesteps: 1e7, eval_every: 0, progress_bar: false, checkpoint_every: 64}\n")
    proc = subprocess.Popen([sys.executable, "-m", "liquid_rl.cli", "train", "--config", str(config), "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "latest.json").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        expected = f"run directory {run} is in use by process {proc.pid}"
        for argv in (["train", "--config", str(config), "--out", str(run)],
                     ["train", "--config", str(config), "--out", str(run), "--overwrite"],
                     ["train", "--resume", str(run)]):
            config_before = (run / "config.yaml").read_bytes()
            assert main(argv) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and expected in err[0], err
            assert (run / "config.yaml").read_bytes() == config_before and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    assert main(["train", "--resume", str(run), "--set", "train.total_timesteps=128", "--no-progress"]) == 0
