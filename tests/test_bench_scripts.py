"""Benchmark scripts: a finished (task, policy, seed) row is written once and skipped on
rerun; tuning variants are tagged and kept apart."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench_rl(results: Path, *extra: str) -> str:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_rl.py"), "--suite", "recurrent_ppo", "--policies", "mlp",
           "--tasks", "liquid_rl/CartPoleNoVel-v1", "--seeds", "0", "--steps", "256", "--n-eval", "2",
           "--results", str(results), "--checkpoints", str(results.parent / "ckpt"), *extra]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout


def test_bench_rl_writes_each_run_once_and_tags_variants(tmp_path):
    results = tmp_path / "rl.jsonl"
    first = _bench_rl(results)
    assert "mlp seed 0" in first
    assert "mlp seed 0" not in _bench_rl(results)            # finished: skipped
    _bench_rl(results, "--hyper", "learning_rate=3e-4", "n_epochs=2", "--curve-every", "128", "--curve-episodes", "1")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 2
    assert "variant" not in rows[0] and rows[1]["variant"] == "learning_rate=0.0003 n_epochs=2"
    assert rows[0]["settings"]["n_epochs"] == "20" and rows[1]["settings"]["n_epochs"] == "2"
    assert all(r["steps"] == 256 and r["episodes"] == 2 and r["normalize"] == "obs+reward" for r in rows)
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_rl.py"), "--summary", "--results",
                            str(results)], check=True, capture_output=True, text=True).stdout
    assert "| mlp |" in table and "| mlp [learning_rate=0.0003 n_epochs=2] |" in table
    assert "curve" not in rows[0] and [p[0] for p in rows[1]["curve"]] == [256]   # one rollout: 8 envs x 32
    assert table.count("(best ") == 1
    best = rows[1]["best"]                     # the only curve point's policy is the final one
    assert best["step"] == 256 and best["curve_value"] == rows[1]["curve"][0][1]
    assert best["mean"] == rows[1]["mean"] and best["std"] == rows[1]["std"]


def _import_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_bench_rl_checkpoint_resumes_model_statistics_and_schedule(tmp_path, capsys):
    """A PPO run saves a checkpoint every --save-every steps; rerun, it continues from
    there with the normalisation statistics it had and the run's total as the schedule's
    horizon."""
    bench = _import_script("bench_rl")
    spec = next(s for s in bench.recurrent_ppo_specs() if s.policy == "mlp" and s.task == bench.CARTPOLE)
    spec.steps = 512                                            # 8 envs x 32 steps: 256 per rollout
    first = bench.run_one(spec, 0, n_eval=1, checkpoints=str(tmp_path), save_every=256, curve_every=256,
                          curve_episodes=1)
    saved = Path(bench.checkpoint_path(str(tmp_path), spec, 0))
    with zipfile.ZipFile(saved) as z:
        progress = json.loads(z.read(bench.PROGRESS_NAME))
    assert progress["num_timesteps"] == 512 and progress["wall_s"] > 0
    assert [p[0] for p in first["curve"]] == [256, 512] and progress["curve"] == first["curve"]

    spec.steps = 1024                                           # the same run with a larger budget
    saved.rename(bench.checkpoint_path(str(tmp_path), spec, 0))
    model, env, wall, curve, best = bench.load_checkpoint(bench.checkpoint_path(str(tmp_path), spec, 0), spec, 0)
    assert model.num_timesteps == 512 and wall == progress["wall_s"] and curve == first["curve"]
    assert (best.step, best.value) == max(((p[0], p[1]) for p in curve), key=lambda p: (p[1], -p[0]))
    assert (best.step, best.value) == (progress["best"]["step"], progress["best"]["value"])
    assert set(best.policy) == set(model.policy.state_dict())
    assert first["best"]["step"] == best.step
    np.testing.assert_allclose(env.obs_rms.mean, progress["normalization"]["obs_rms"]["mean"])
    row = bench.run_one(spec, 0, n_eval=1, checkpoints=str(tmp_path), save_every=256, curve_every=256,
                        curve_episodes=1)
    assert "resumed at 512 steps" in capsys.readouterr().out
    assert row["wall_s"] >= progress["wall_s"]
    assert [p[0] for p in row["curve"]] == [256, 512, 768, 1024]     # the curve continues
    with zipfile.ZipFile(bench.checkpoint_path(str(tmp_path), spec, 0)) as z:
        assert json.loads(z.read(bench.PROGRESS_NAME))["num_timesteps"] == 1024
    model, _, _, _, _ = bench.load_checkpoint(bench.checkpoint_path(str(tmp_path), spec, 0), spec, 0)
    assert model._total_timesteps == 1024                       # the schedules' horizon: the whole run


def test_bench_recurrent_sac_checkpoint_survives_a_kill_between_renames(tmp_path):
    from stable_baselines3 import SAC

    bench = _import_script("bench_recurrent_sac")
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, buffer_size=100, seed=0)
    model.learn(20)
    ckpt = str(tmp_path / "run")
    assert bench.find_checkpoint(ckpt) is None
    bench.write_checkpoint(ckpt, model, {"curve": [[20, -1.0]], "wall_s": 1.0})
    assert bench.find_checkpoint(ckpt) == ckpt
    assert not Path(ckpt + ".old").exists() and not Path(ckpt + ".tmp").exists()
    Path(ckpt).rename(ckpt + ".old")                 # killed after the first rename of a rewrite
    Path(ckpt + ".tmp").mkdir()                      # with the new folder half written
    assert bench.find_checkpoint(ckpt) == ckpt + ".old"
    bench.write_checkpoint(ckpt, model, {"curve": [], "wall_s": 2.0})   # the next write recovers
    assert bench.find_checkpoint(ckpt) == ckpt
    assert json.loads((Path(ckpt) / "progress.json").read_text())["wall_s"] == 2.0
    assert SAC.load(Path(ckpt) / "model.zip").num_timesteps == 20


def test_bench_rl_keeps_the_policy_of_the_best_curve_point(tmp_path):
    """``Best`` keeps the weights and observation statistics of the best point (the first
    of equal ones); ``evaluate_best`` runs exactly those, not the final policy."""
    bench = _import_script("bench_rl")
    spec = next(s for s in bench.recurrent_ppo_specs() if s.policy == "mlp" and s.task == bench.CARTPOLE)
    env = bench.make_env(spec, 0, training=True)
    model = spec.build(env, 0)
    best = bench.Best()
    best.offer(100, 20.0, model)
    kept = {k: v.clone() for k, v in model.policy.state_dict().items()}
    kept_mean = env.obs_rms.mean.copy()
    model.learn(512)                                       # weights and statistics move on
    best.offer(200, 20.0, model)                           # a tie keeps the earlier point
    best.offer(300, 10.0, model)
    assert (best.step, best.value) == (100, 20.0)
    assert all(torch.equal(best.policy[k], v) for k, v in kept.items())
    np.testing.assert_allclose(best.normalization["obs_rms"]["mean"], kept_mean)
    assert not np.allclose(env.obs_rms.mean, kept_mean)

    row = bench.evaluate_best(spec, 0, model, best, n_eval=2)
    assert row["step"] == 100 and row["curve_value"] == 20.0
    assert all(torch.equal(model.policy.state_dict()[k], v) for k, v in kept.items())
    reference = spec.build(bench.make_env(spec, 0, training=True), 0)   # the kept policy, run by hand
    reference.policy.load_state_dict(kept)
    eval_env = bench.make_env(spec, 10_000, training=False)
    eval_env.obs_rms.mean, eval_env.obs_rms.var = kept_mean, np.array(best.normalization["obs_rms"]["var"])
    rewards, _ = bench.evaluate_policy(reference, eval_env, n_eval_episodes=2, deterministic=True,
                                       return_episode_rewards=True)
    assert row["mean"] == float(np.mean(rewards))


def test_probe_cartpole_reports_episode_ends_and_ltc_time_constants():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "probe_cartpole.py"), "--policy", "ltc-32",
                          "--steps", "256", "--episodes", "2"], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    ends = [line for line in out.splitlines() if line.startswith("episode ")]
    assert len(ends) == 2 and all("last x" in line and "time limit" in line for line in ends)
    assert "actor LTC time constants" in out and "sensory slopes" in out


def test_bench_recurrent_sac_runs_jobs_in_parallel_and_skips_finished_rows(tmp_path):
    """``--jobs 2``: both runs in their own processes, one row each in the shared results
    file, a log per run; a rerun finds nothing left to do."""
    results, ckpts = tmp_path / "rows.jsonl", tmp_path / "ckpt"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_recurrent_sac.py"), "--learn", "--tasks", "PendulumNoVel-v1",
           "--policies", "sac-mlp", "--seeds", "0", "1", "--steps", "200", "--eval-every", "200", "--jobs", "2",
           "--results", str(results), "--checkpoints", str(ckpts)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    assert out.count("started") == 2
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["seed"] for r in rows) == [0, 1]
    assert all(r["steps"] == 200 and r["hyperparameters"]["steps"] == 200 and r["device"] == "cpu" for r in rows)
    assert all(len(r["ent_coef"]) == len(r["curve"]) == 1 and r["ent_coef"][0] > 0 for r in rows)
    assert {p.name for p in ckpts.glob("*.log")} == {"PendulumNoVel-v1_sac-mlp_0.log", "PendulumNoVel-v1_sac-mlp_1.log"}
    assert {p.name for p in ckpts.glob("*_final.zip")} == {"PendulumNoVel-v1_sac-mlp_0_final.zip",
                                                           "PendulumNoVel-v1_sac-mlp_1_final.zip"}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    assert "started" not in again and len(results.read_text().splitlines()) == 2


def test_bench_recurrent_sac_memory_probe_replays_a_saved_agent(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env

    import liquid_rl.envs  # noqa: F401
    from liquid_rl.agents.recurrent_sac import RecurrentSAC

    env = make_vec_env("liquid_rl/PendulumNoVel-v1", n_envs=1, seed=0)
    model = RecurrentSAC("RecurrentSACPolicy", env, learning_starts=10, sequence_length=4, burn_in=2, batch_size=2,
                         buffer_size=500, policy_kwargs=dict(units=4, net_arch=[8]), device="cpu", seed=0)
    model.learn(20)
    model.save(tmp_path / "agent.zip")
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_recurrent_sac.py"),
           "--memory-probe", str(tmp_path / "agent.zip"), "--tasks", "PendulumNoVel-v1", "--reset-every", "0", "1", "--episodes", "1"]
    lines = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["reset every never", "reset every 1"]
    assert all("over 1 episodes" in line for line in lines)


def test_bench_recurrent_sac_policies_build_with_their_sequence_settings():
    bench = _import_script("bench_recurrent_sac")
    for policy, spec in bench.RSAC_POLICIES.items():
        env = bench.make_env("PendulumNoVel-v1", policy, 0)
        model = bench.make_model("PendulumNoVel-v1", policy, env, 0)
        settings = bench.rsac_sequence(policy)
        assert model.policy_kwargs["cell"] == spec["cell"]
        assert model.buffer_size == bench.TASKS["PendulumNoVel-v1"]["steps"]   # the budget, not 1M
        assert (model.sequence_length, model.burn_in, model.batch_size, model.burn_in_state) == (
            settings["sequence_length"], settings["burn_in"], settings["batch_size"], settings["burn_in_state"])
    assert bench.rsac_sequence("rsac-cfc-w32")["batch_size"] * bench.rsac_sequence("rsac-cfc-w32")["sequence_length"] \
        == bench.RSAC["batch_size"] * bench.RSAC["sequence_length"]        # the same transitions per update
