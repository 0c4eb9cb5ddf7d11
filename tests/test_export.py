"""Export: the ONNX and TorchScript files act as ``load_agent(run).model.predict`` does.

Each policy kind is built from a tiny config, stepped a few times (non-trivial
normalisation statistics), saved and loaded as a run would be, exported, and then driven
over whole episodes (several, crossing episode boundaries, two envs) by the torch model;
at every step the exported file, fed the raw observation, must give the same action
(1e-5 for continuous actions, identical for discrete ones).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from liquid_rl.agents.build import build_model, find_vecnormalize, make_vec_env
from liquid_rl.agents.config import validate_config
from liquid_rl.agents.safe_load import load_agent, save_agent
from liquid_rl.deploy import OnnxPolicy
from liquid_rl.export import OPSET, ExportError, export_agent

PENDULUM = {"id": "liquid_rl/PendulumNoVel-v1", "n_envs": 1, "normalize": {"obs": True}, "max_episode_steps": 25}
# SB3's off-policy buffers store VecNormalize's unstacked raw observations: no
# normalisation under a frame stack there.
PENDULUM_RAW = {**PENDULUM, "normalize": {"obs": False}}
CARTPOLE = {"id": "CartPole-v1", "n_envs": 1, "normalize": {"obs": True}, "max_episode_steps": 25}
PPO = {"name": "ppo", "hyperparams": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}}
RPPO = {"name": "recurrent_ppo", "hyperparams": {"n_steps": 16, "batch_size": 16, "n_epochs": 1}}
OFF = {"hyperparams": {"learning_starts": 1000, "buffer_size": 2000}}


def _liquid(cell: str, **extra) -> dict:
    return {"type": "liquid_recurrent", "cell": cell, "units": 8, **extra}


# name -> (env, algo, policy)
KINDS: dict[str, tuple[dict, dict, dict]] = {
    "ppo-mlp-discrete": (CARTPOLE, PPO, {"type": "mlp", "net_arch": [16]}),
    "ppo-mlp-box": (PENDULUM, PPO, {"type": "mlp", "net_arch": [16]}),
    "rppo-ltc-ncp": (PENDULUM, RPPO, _liquid("ltc", wiring="ncp", units=10, kwargs={"step_time": 0.1})),
    # explicit Euler is stable for a small step (h = step_time / unfolds against the LTC's ~0.1 time constants)
    "rppo-ltc-explicit": (PENDULUM, RPPO, _liquid("ltc", solver="explicit", ode_unfolds=3, kwargs={"step_time": 0.1})),
    "rppo-ltc-rk4-random": (CARTPOLE, RPPO, _liquid("ltc", solver="rk4", wiring="random", units=10)),
    "rppo-ltc-mixed": (PENDULUM, RPPO, _liquid("ltc", kwargs={"mixed_memory": True})),
    "rppo-cfc-default": (CARTPOLE, RPPO, _liquid("cfc")),
    "rppo-cfc-pure": (PENDULUM, RPPO, _liquid("cfc", mode="pure", kwargs={"step_time": 0.5})),
    "rppo-cfc-no-gate": (PENDULUM, RPPO, _liquid("cfc", mode="no_gate")),
    "rppo-cfc-ncp": (PENDULUM, RPPO, _liquid("cfc", wiring="ncp", units=10)),
    "rppo-lstm-contrib": (PENDULUM, RPPO, {"type": "lstm", "units": 8}),
    "rppo-lstm-core": (CARTPOLE, RPPO, _liquid("lstm")),
    "sac-mlp": (PENDULUM, {"name": "sac", **OFF}, {"type": "mlp", "net_arch": [16]}),
    "td3-mlp": (PENDULUM, {"name": "td3", **OFF}, {"type": "mlp", "net_arch": [16]}),
    "sac-history-ltc": (PENDULUM_RAW, {"name": "sac", **OFF},
                        {"type": "liquid_history", "cell": "ltc", "units": 8, "history": 3}),
    "td3-history-cfc": (PENDULUM_RAW, {"name": "td3", **OFF},
                        {"type": "liquid_history", "cell": "cfc", "units": 8, "history": 3}),
    "ppo-history-cfc": (CARTPOLE, PPO, {"type": "liquid_history", "cell": "cfc", "units": 8, "history": 2}),
    "rsac-ltc": (PENDULUM, {"name": "recurrent_sac", "hyperparams": {"learning_starts": 1000}},
                 _liquid("ltc", wiring="ncp", units=10)),
    "rppo-liquid-s4": (PENDULUM, RPPO, _liquid("liquid_s4", units=4, kwargs={"step_time": 0.5})),
    "rppo-liquid-s4-deg3": (CARTPOLE, RPPO, _liquid("liquid_s4", units=4, kwargs={"liquid_degree": 3, "n_layers": 2})),
    "sac-history-liquid-s4": (PENDULUM_RAW, {"name": "sac", **OFF},
                              {"type": "liquid_history", "cell": "liquid_s4", "units": 4, "history": 3}),
    "rsac-liquid-s4": (PENDULUM, {"name": "recurrent_sac", "hyperparams": {"learning_starts": 1000}},
                       _liquid("liquid_s4", units=4)),
    "rsac-cfc": (PENDULUM, {"name": "recurrent_sac", "hyperparams": {"learning_starts": 1000}}, _liquid("cfc")),
}


def make_run(name: str, directory: Path) -> Path:
    """A saved agent of kind ``name`` (stepped 32 times: VecNormalize has statistics)."""
    env, algo, policy = KINDS[name]
    cfg = validate_config({"env": dict(env), "algo": algo, "policy": policy, "train": {"total_timesteps": 32}})
    venv = make_vec_env(cfg, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, venv, device="cpu")
        model.learn(32)
    path = directory / f"{name}.zip"
    save_agent(model, path, cfg)
    venv.close()
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("runs")
    return {}, directory  # type: ignore[return-value]


def _run(runs, name: str) -> Path:
    cache, directory = runs
    if name not in cache:
        cache[name] = make_run(name, directory)
    return cache[name]


class TorchScriptPolicy:
    """The TorchScript file driven like :class:`OnnxPolicy` (state carried outside torch's jit)."""

    def __init__(self, path: Path) -> None:
        extra = {"liquid_rl.json": ""}
        self.module = torch.jit.load(str(path), _extra_files=extra)
        self.meta = json.loads(extra["liquid_rl.json"])
        self.state = None

    def act(self, obs: np.ndarray, episode_start: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32)
        args = [x]
        if self.meta["state_size"]:
            if self.state is None:
                self.state = torch.zeros(len(x), self.meta["state_size"])
            args += [self.state, torch.as_tensor(episode_start, dtype=torch.float32)]
        if self.meta["dt"] is not None:
            args.append(torch.full((len(x), 1), self.meta["dt"]["default"]))
        with torch.no_grad():
            out = self.module(*args)
        if self.meta["state_size"]:
            self.state = out[1]
        return out[0].numpy()


def raw_observation(venv, obs: np.ndarray, frame: int) -> np.ndarray:
    """What the env gives before VecNormalize and VecFrameStack: one raw frame per env."""
    vecnorm = find_vecnormalize(venv)
    if vecnorm is not None:
        return vecnorm.get_original_obs()
    return obs[..., -frame:]


def compare_episodes(agent, exported, steps: int = 60, n_envs: int = 2, seed: int = 3) -> tuple[float, int]:
    """Drive ``n_envs`` envs with ``agent.model.predict`` for ``steps`` steps, asking
    ``exported`` (OnnxPolicy or TorchScriptPolicy) for its action at each step; returns
    the largest action difference and the number of finished episodes."""
    venv = agent.make_env(n_envs=n_envs, seed=seed)
    frame = int(np.prod(exported.meta["obs_shape"] if hasattr(exported, "meta") else exported.obs_shape))
    obs = venv.reset()
    state, starts = None, np.ones(n_envs, dtype=bool)
    worst, episodes = 0.0, 0
    try:
        for _ in range(steps):
            action, state = agent.model.predict(obs, state=state, episode_start=starts, deterministic=True)
            raw = raw_observation(venv, obs, frame)
            got = exported.act(raw, episode_start=starts)
            assert got.shape == np.shape(action), (got.shape, np.shape(action))
            if np.issubdtype(np.asarray(action).dtype, np.integer):
                assert np.array_equal(got, action), (got, action)
            else:
                worst = max(worst, float(np.max(np.abs(got - action))))
            obs, _, dones, _ = venv.step(action)
            starts = dones
            episodes += int(dones.sum())
    finally:
        venv.close()
    return worst, episodes


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_file_acts_as_predict_over_episodes(runs, kind, tmp_path):
    agent = load_agent(_run(runs, kind), device="cpu")
    meta = export_agent(agent, tmp_path / "actor.onnx", "onnx")
    policy = OnnxPolicy(tmp_path / "actor.onnx")
    worst, episodes = compare_episodes(agent, policy)
    assert episodes >= 2, "the run must cross episode boundaries"
    assert worst <= 1e-5
    assert policy.metadata == meta


@pytest.mark.parametrize("kind", ["ppo-mlp-discrete", "rppo-ltc-ncp", "rppo-cfc-ncp", "rppo-lstm-contrib",
                                  "sac-history-ltc", "rsac-cfc", "rppo-liquid-s4"])
def test_torchscript_file_acts_as_predict_over_episodes(runs, kind, tmp_path):
    agent = load_agent(_run(runs, kind), device="cpu")
    export_agent(agent, tmp_path / "actor.pt", "torchscript")
    worst, episodes = compare_episodes(agent, TorchScriptPolicy(tmp_path / "actor.pt"))
    assert episodes >= 2
    assert worst <= 1e-5


def test_onnx_file_carries_metadata_and_passes_the_checker(runs, tmp_path):
    agent = load_agent(_run(runs, "rppo-ltc-ncp"), device="cpu")
    export_agent(agent, tmp_path / "a.onnx", "onnx")
    model = onnx.load(str(tmp_path / "a.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET >= 17
    meta = json.loads({p.key: p.value for p in model.metadata_props}["liquid_rl"])
    assert meta["inputs"] == ["obs", "state", "episode_start", "dt"]
    assert meta["outputs"] == ["action", "next_state"]
    assert meta["state_size"] == agent.model.policy.lstm_actor.state_size
    assert meta["dt"]["unit"] == 1.0 and meta["dt"]["default"] == pytest.approx(0.1)
    assert meta["observation_space"]["shape"] == [3] and meta["action_space"]["type"] == "Box"
    assert len(meta["config_sha256"]) == 64 and meta["liquid_rl_version"]
    assert [i.name for i in model.graph.input] == meta["inputs"]


def test_dt_input_changes_the_ltc_step_and_zero_means_nominal(runs, tmp_path):
    agent = load_agent(_run(runs, "rppo-ltc-ncp"), device="cpu")
    export_agent(agent, tmp_path / "a.onnx", "onnx")
    obs = np.array([[0.5, -0.2, 0.3], [0.1, 0.9, -0.5]], dtype=np.float32)
    results = []
    for dt in (None, 0.0, 0.1, 0.4):
        p = OnnxPolicy(tmp_path / "a.onnx")
        p.act(obs, dt=dt)
        results.append(p.act(obs, dt=dt))
    nominal, zero, explicit, longer = results
    np.testing.assert_allclose(nominal, zero, atol=1e-7)
    np.testing.assert_allclose(nominal, explicit, atol=1e-7)
    assert np.max(np.abs(longer - nominal)) > 1e-4


def test_episode_start_zeroes_only_that_envs_state(runs, tmp_path):
    agent = load_agent(_run(runs, "rppo-cfc-no-gate"), device="cpu")
    export_agent(agent, tmp_path / "a.onnx", "onnx")
    p = OnnxPolicy(tmp_path / "a.onnx")
    obs = np.array([[0.3, -0.4, 0.8], [0.3, -0.4, 0.8]], dtype=np.float32)
    first = p.act(obs)
    p.act(obs * 2)
    again = p.act(obs, episode_start=np.array([True, False]))
    np.testing.assert_allclose(again[0], first[0], atol=1e-7)
    assert np.max(np.abs(again[1] - first[1])) > 1e-6
    p.reset()
    np.testing.assert_allclose(p.act(obs), first, atol=1e-7)
