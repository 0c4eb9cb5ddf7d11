"""Learning benchmarks of liquid policies in stable-baselines3 (results in docs/benchmarks.md).

Suites (``--suite``, several allowed):

- ``recurrent_ppo``: RecurrentPPO with LTC-32, LTC-64 and CfC-32 beside sb3-contrib's LSTM-64
  policy and MLP PPO (and, as a control of the glue, an ``nn.LSTM`` of 64 units inside
  ``LiquidRecurrentPolicy``), on ``CartPoleNoVel-v1`` (100k steps) and ``PendulumNoVel-v1``
  (150k steps), RL Zoo's recurrentppo.yml hyperparameters for each env (all policies get
  the same ones and the same heads: net_arch pi [64] vf [64], ReLU, no orthogonal init).
- ``lane``: RecurrentPPO with a 19-neuron NCP (LTC, AutoNCP(19, 1): 11 inter, 7 command,
  1 motor) beside an LSTM-64 on ``LaneKeeping-v0`` (state) and ``LaneKeepingPixels-v0``
  (64x64 camera; both cells behind the same NCP-paper conv head).
- ``sac_history``: SAC on ``PendulumNoVel-v1`` with 4 stacked frames, read by a
  ``LiquidHistoryExtractor`` (LTC-16, CfC-16) or flattened for the plain MLP.

PPO runs normalise observations and rewards with ``VecNormalize`` as RL Zoo's
``normalize: true`` does (rows from before that change carry ``normalize: "obs"``).
Each finished (suite, task, policy, seed) appends one JSON line to ``--results`` (mean and
std of 20 deterministic evaluation episodes on a separately seeded env with raw rewards,
steps, wall time, parameter counts); rerunning skips finished rows, so an interrupted run
resumes::

    python scripts/bench_rl.py --suite recurrent_ppo --seeds 0 1 2 --results docs/results/rl.jsonl
    python scripts/bench_rl.py --summary --results docs/results/rl.jsonl   # table of mean +- std

Seeds run outermost, so every (task, policy) gets seed 0 before any gets seed 1.

Learning curves: every ``--curve-every`` steps (default 10,000; 0 = none) the policy is
evaluated on ``--curve-episodes`` deterministic episodes (default 5) of a separately
seeded env; the row keeps the points (``curve``). The policy at the best point (weights
and observation statistics, as SB3's ``EvalCallback`` keeps ``best_model``) is evaluated
at the end on the same 20 episodes as the final one (``best`` in the row); the summary
shows both.

PPO runs also save a checkpoint every ``--save-every`` steps (default 20,000; model,
normalisation statistics and wall time in one zip under ``--checkpoints``, written
atomically), so a run that is killed resumes there when the command is rerun and the
long ones (LaneKeepingPixels, over an hour each on one core) finish across several
sittings. The learning-rate schedules continue where they were (the budget stays the
run's total); new episodes start at the resume point.

Variants for tuning: ``--hyper learning_rate=lin_3e-3`` overrides an algorithm
hyperparameter, ``--cell ode_unfolds=3`` a liquid cell option; such rows carry
``variant`` (part of the skip key and of the summary's grouping), so they never mix with
the defaults::

    python scripts/bench_rl.py --policies ltc-32 --tasks liquid_rl/CartPoleNoVel-v1 --seeds 100 \
        --hyper learning_rate=lin_3e-3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
import traceback
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize

import liquid_rl.envs  # noqa: F401  (registers the envs)
from liquid_rl.agents.build import linear_schedule, normalization_from_json, normalization_to_json
from liquid_rl.agents.safe_load import atomic_write_bytes

CARTPOLE = "liquid_rl/CartPoleNoVel-v1"
PENDULUM = "liquid_rl/PendulumNoVel-v1"
LANE = "liquid_rl/LaneKeeping-v0"
LANE_PIXELS = "liquid_rl/LaneKeepingPixels-v0"

# RL Zoo recurrentppo.yml (CartPoleNoVel-v1, PendulumNoVel-v1); "lin_" = linear schedule.
ZOO: dict[str, dict[str, Any]] = {
    CARTPOLE: dict(steps=100_000, n_envs=8, hyper=dict(n_steps=32, batch_size=256, n_epochs=20, gamma=0.98,
                                                       gae_lambda=0.8, learning_rate="lin_1e-3",
                                                       clip_range="lin_0.2", ent_coef=0.0)),
    PENDULUM: dict(steps=150_000, n_envs=4, hyper=dict(n_steps=1024, batch_size=128, n_epochs=10, gamma=0.9,
                                                       gae_lambda=0.95, learning_rate=1e-3, clip_range=0.2,
                                                       ent_coef=0.0, use_sde=True, sde_sample_freq=4)),
    # Lane keeping: common PPO settings (no Zoo entry).
    LANE: dict(steps=150_000, n_envs=8, hyper=dict(n_steps=128, batch_size=256, n_epochs=10, gamma=0.99,
                                                   gae_lambda=0.95, learning_rate=3e-4, ent_coef=0.0,
                                                   clip_range=0.2)),
    LANE_PIXELS: dict(steps=150_000, n_envs=8, hyper=dict(n_steps=128, batch_size=256, n_epochs=10, gamma=0.99,
                                                          gae_lambda=0.95, learning_rate=3e-4, ent_coef=0.0,
                                                          clip_range=0.2)),
}
ZOO_HEAD: dict[str, Any] = dict(ortho_init=False, activation_fn=torch.nn.ReLU, net_arch=dict(pi=[64], vf=[64]))
LANE_HEAD: dict[str, Any] = dict(net_arch=dict(pi=[], vf=[64]))
SAC_PENDULUM: dict[str, Any] = dict(steps=50_000, n_stack=4, hyper=dict(learning_rate=1e-3, learning_starts=1000))


@dataclass
class Spec:
    """One (suite, task, policy): how to build the model."""

    suite: str
    task: str
    policy: str
    steps: int
    build: Callable[[VecEnv, int], BaseAlgorithm]
    algo: type[BaseAlgorithm]   # what ``build`` returns: the class a checkpoint loads with
    n_envs: int = 1
    n_stack: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    # VecNormalize as RL Zoo's ``normalize: true``: observations and rewards (the latter
    # with the algorithm's gamma; evaluation returns are always raw). "none" for SAC.
    normalize: str = "obs+reward"
    gamma: float = 0.99


#: Set from ``--hyper`` / ``--cell``: overrides of the suite's settings (tuning variants).
HYPER_OVERRIDES: dict[str, Any] = {}
CELL_OVERRIDES: dict[str, Any] = {}


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """["key=value", ...] -> dict; values are JSON where they parse ("3", "true"), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench_rl: override {item!r} must look like key=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def variant() -> str:
    """The row tag of the active overrides ("" for the suite's own settings)."""
    parts = [f"{k}={v}" for k, v in sorted(HYPER_OVERRIDES.items())]
    parts += [f"cell.{k}={v}" for k, v in sorted(CELL_OVERRIDES.items())]
    return " ".join(parts)


def _liquid(**kwargs: Any) -> dict[str, Any]:
    """Policy kwargs of a liquid policy with the ``--cell`` overrides applied."""
    return dict(kwargs, **CELL_OVERRIDES)


def _schedule(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("lin_"):
        return linear_schedule(float(value[4:]))
    return value


def _hyper(task: str) -> dict[str, Any]:
    return {k: _schedule(v) for k, v in dict(ZOO[task]["hyper"], **HYPER_OVERRIDES).items()}


def recurrent_ppo_specs() -> list[Spec]:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    from liquid_rl.policies import LiquidRecurrentPolicy

    policies: dict[str, Callable[[str, VecEnv, int], BaseAlgorithm]] = {
        "ltc-32": lambda t, env, s: RecurrentPPO(LiquidRecurrentPolicy, env, seed=s, **_hyper(t),
                                                 policy_kwargs=_liquid(**ZOO_HEAD, cell="ltc", units=32)),
        # 64 neurons: about the LSTM-64's parameter count (44k against 44k).
        "ltc-64": lambda t, env, s: RecurrentPPO(LiquidRecurrentPolicy, env, seed=s, **_hyper(t),
                                                 policy_kwargs=_liquid(**ZOO_HEAD, cell="ltc", units=64)),
        "cfc-32": lambda t, env, s: RecurrentPPO(LiquidRecurrentPolicy, env, seed=s, **_hyper(t),
                                                 policy_kwargs=_liquid(**ZOO_HEAD, cell="cfc", units=32)),
        "s4-32": lambda t, env, s: RecurrentPPO(LiquidRecurrentPolicy, env, seed=s, **_hyper(t),
                                                policy_kwargs=_liquid(**ZOO_HEAD, cell="liquid_s4", units=32,
                                                                      d_state=16, n_layers=1)),
        "lstm-64": lambda t, env, s: RecurrentPPO("MlpLstmPolicy", env, seed=s, **_hyper(t),
                                                  policy_kwargs=dict(ZOO_HEAD, lstm_hidden_size=64)),
        "mlp": lambda t, env, s: PPO("MlpPolicy", env, seed=s, **_hyper(t), policy_kwargs=dict(ZOO_HEAD)),
        # Control: nn.LSTM inside LiquidRecurrentPolicy starts from the same weights as
        # sb3-contrib's policy and computes the same rollouts and gradients (to rounding).
        "lstm-64-liquid-glue": lambda t, env, s: RecurrentPPO(
            LiquidRecurrentPolicy, env, seed=s, **_hyper(t), policy_kwargs=dict(ZOO_HEAD, cell="lstm", units=64)),
    }
    return [Spec("recurrent_ppo", task, name, ZOO[task]["steps"],
                 (lambda env, s, f=f, task=task: f(task, env, s)), PPO if name == "mlp" else RecurrentPPO,
                 n_envs=ZOO[task]["n_envs"],
                 info=dict(ZOO[task]["hyper"], head="pi [64] vf [64] ReLU"), gamma=_hyper(task)["gamma"])
            for task in (CARTPOLE, PENDULUM) for name, f in policies.items()]


def lane_specs() -> list[Spec]:
    from sb3_contrib import RecurrentPPO

    from liquid_rl.conv import NCPConvExtractor
    from liquid_rl.policies import CnnLiquidRecurrentPolicy, LiquidRecurrentPolicy

    ncp = dict(cell="ltc", wiring="ncp", units=19, output_size=1)
    specs = []
    for task in (LANE, LANE_PIXELS):
        pixels = task == LANE_PIXELS
        liquid_cls = CnnLiquidRecurrentPolicy if pixels else LiquidRecurrentPolicy
        lstm_cls = "CnnLstmPolicy" if pixels else "MlpLstmPolicy"
        conv = dict(features_extractor_class=NCPConvExtractor) if pixels else {}
        builds = {
            "ncp-19": lambda env, s, t=task, c=liquid_cls: RecurrentPPO(
                c, env, seed=s, **_hyper(t), policy_kwargs=_liquid(**LANE_HEAD, **ncp)),
            "lstm-64": lambda env, s, t=task, c=lstm_cls, conv=conv: RecurrentPPO(
                c, env, seed=s, **_hyper(t), policy_kwargs=dict(LANE_HEAD, lstm_hidden_size=64, **conv)),
        }
        for name, build in builds.items():
            specs.append(Spec("lane", task, name, ZOO[task]["steps"], build, RecurrentPPO, n_envs=ZOO[task]["n_envs"],
                              info=dict(ZOO[task]["hyper"], head="pi [] vf [64]",
                                        features="NCP conv head, 32 features" if pixels else "observation"),
                              gamma=_hyper(task)["gamma"]))
    return specs


def sac_history_specs() -> list[Spec]:
    from stable_baselines3 import SAC

    from liquid_rl.extractors import LiquidHistoryExtractor

    k = SAC_PENDULUM["n_stack"]

    def liquid(cell: str) -> Callable[[VecEnv, int], BaseAlgorithm]:
        return lambda env, s: SAC("MlpPolicy", env, seed=s, **SAC_PENDULUM["hyper"], policy_kwargs=dict(
            net_arch=[64, 64], features_extractor_class=LiquidHistoryExtractor,
            features_extractor_kwargs=dict(history=k, cell=cell, units=16)))

    builds = {
        "ltc-16-history": liquid("ltc"),
        "cfc-16-history": liquid("cfc"),
        "mlp-framestack": lambda env, s: SAC("MlpPolicy", env, seed=s, **SAC_PENDULUM["hyper"],
                                             policy_kwargs=dict(net_arch=[64, 64])),
    }
    return [Spec("sac_history", PENDULUM, name, SAC_PENDULUM["steps"], b, SAC, n_stack=k,
                 info=dict(SAC_PENDULUM["hyper"], n_stack=k, net_arch=[64, 64]), normalize="none")
            for name, b in builds.items()]


SUITES: dict[str, Callable[[], list[Spec]]] = {
    "recurrent_ppo": recurrent_ppo_specs, "lane": lane_specs, "sac_history": sac_history_specs,
}


def make_env(spec: Spec, seed: int, training: bool, train_env: VecEnv | None = None) -> VecEnv:
    """Vectorised env with the benchmark's wrappers; the eval env copies the training
    env's observation statistics, never updates them and returns raw rewards."""
    env: VecEnv = make_vec_env(spec.task, n_envs=spec.n_envs if training else 1, seed=seed)
    if spec.n_stack > 1:
        env = VecFrameStack(env, spec.n_stack)
    if spec.normalize == "none":
        return env
    # Images are never normalised (as in RL Zoo): the conv heads take uint8 frames.
    env = VecNormalize(env, norm_obs=not is_image_space(env.observation_space),
                       norm_reward=training and spec.normalize == "obs+reward", gamma=spec.gamma, training=training)
    if train_env is not None:
        assert isinstance(train_env, VecNormalize) and isinstance(env, VecNormalize)
        if train_env.norm_obs:
            env.obs_rms = train_env.obs_rms
    return env


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def cell_params(model: BaseAlgorithm) -> int:
    """Parameters of the recurrent cells (actor and critic) or history extractors."""
    policy = model.policy
    total = 0
    for name in ("lstm_actor", "lstm_critic"):
        module = getattr(policy, name, None)
        if module is not None:
            total += count_params(module)
    for name in ("actor", "critic"):  # SAC: each has its own features extractor
        sub = getattr(policy, name, None)
        extractor = getattr(sub, "features_extractor", None)
        if extractor is not None and type(extractor).__name__ == "LiquidHistoryExtractor":
            total += count_params(extractor)
    return total


# ------------------------------------------------------------------ checkpoints
PROGRESS_NAME = "bench_progress.json"   # extra zip entry: wall time and VecNormalize statistics
BEST_NAME = "best_policy.pt"            # extra zip entry: the policy weights at the best curve point


@dataclass
class Best:
    """The policy at the best learning-curve point so far (as SB3's ``EvalCallback`` keeps
    ``best_model``): its step, curve value, weights and observation statistics."""

    step: int = -1
    value: float = -float("inf")
    policy: dict[str, torch.Tensor] | None = None
    normalization: dict[str, Any] | None = None

    def offer(self, step: int, value: float, model: BaseAlgorithm) -> None:
        """Keep ``model``'s policy if ``value`` beats the best so far (ties keep the earlier)."""
        if value > self.value:
            env = model.get_env()
            self.step, self.value = step, value
            self.policy = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}
            self.normalization = normalization_to_json(env) if isinstance(env, VecNormalize) else None

    def to_json(self) -> dict[str, Any]:
        return dict(step=self.step, value=self.value, normalization=self.normalization)


def save_checkpoint(path: str, model: BaseAlgorithm, env: VecEnv, wall_s: float,
                    curve: list[list[float]] | None = None, best: Best | None = None) -> None:
    """The model (stable-baselines3's zip) plus the run's progress and best policy, as one
    atomic file."""
    buffer = io.BytesIO()
    model.save(buffer)
    progress = dict(wall_s=wall_s, num_timesteps=int(model.num_timesteps), curve=curve or [],
                    normalization=normalization_to_json(env) if isinstance(env, VecNormalize) else None,
                    best=best.to_json() if best is not None and best.policy is not None else None)
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr(PROGRESS_NAME, json.dumps(progress))
        if progress["best"] is not None:
            assert best is not None and best.policy is not None
            weights = io.BytesIO()
            torch.save(best.policy, weights)
            z.writestr(BEST_NAME, weights.getvalue())
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str, spec: Spec, seed: int) -> tuple[BaseAlgorithm, VecEnv, float, list[list[float]], Best]:
    """Model, training env (normalisation statistics restored), wall time, curve so far and
    the best policy so far."""
    best = Best()
    with zipfile.ZipFile(path) as z:
        progress = json.loads(z.read(PROGRESS_NAME))
        if progress.get("best") is not None:
            best = Best(step=progress["best"]["step"], value=progress["best"]["value"],
                        normalization=progress["best"]["normalization"],
                        policy=torch.load(io.BytesIO(z.read(BEST_NAME)), weights_only=True))
    env = make_env(spec, seed + progress["num_timesteps"], training=True)   # new episodes from here
    if progress["normalization"] is not None:
        assert isinstance(env, VecNormalize)
        normalization_from_json(env, progress["normalization"])
    model = spec.algo.load(path, env=env, device="cpu")
    model.set_random_seed(seed + progress["num_timesteps"])
    return model, env, float(progress["wall_s"]), list(progress.get("curve", [])), best


class Curve(BaseCallback):
    """Deterministic evaluation every ``every`` steps (at the end of a rollout); the points
    go to ``self.points`` as [step, mean return], the best policy to ``self.best``."""

    def __init__(self, eval_env: VecEnv, every: int, episodes: int, points: list[list[float]], best: Best) -> None:
        super().__init__()
        self.eval_env, self.every, self.episodes, self.points, self.best = eval_env, every, episodes, points, best
        self.last = 0

    def _on_training_start(self) -> None:
        self.last = self.points[-1][0] if self.points else 0

    def _on_rollout_end(self) -> None:
        if self.model.num_timesteps - self.last >= self.every:
            mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.episodes, deterministic=True)
            self.points.append([int(self.model.num_timesteps), round(float(mean), 2)])
            self.best.offer(int(self.model.num_timesteps), round(float(mean), 2), self.model)
            self.last = self.model.num_timesteps

    def _on_step(self) -> bool:
        return True


class SaveEvery(BaseCallback):
    """Checkpoint at the end of the first rollout after every ``every`` steps."""

    def __init__(self, path: str, every: int, wall_before: float, curve: list[list[float]], best: Best) -> None:
        super().__init__()
        self.path, self.every, self.wall_before, self.curve, self.best = path, every, wall_before, curve, best
        self.start = time.perf_counter()
        self.last = -1

    def _on_training_start(self) -> None:
        self.last = self.model.num_timesteps

    def _on_rollout_end(self) -> None:
        if self.model.num_timesteps - self.last >= self.every:
            wall = self.wall_before + time.perf_counter() - self.start
            save_checkpoint(self.path, self.model, self.model.get_env(), wall, self.curve, self.best)
            self.last = self.model.num_timesteps

    def _on_step(self) -> bool:
        return True


def checkpoint_path(directory: str, spec: Spec, seed: int) -> str:
    name = "_".join([spec.suite, spec.task.replace("/", "-"), spec.policy, str(seed), str(spec.steps),
                     spec.normalize, variant() or "default"])
    return os.path.join(directory, name.replace("=", "-").replace(",", "-") + ".zip")


def run_one(spec: Spec, seed: int, n_eval: int, checkpoints: str | None = None, save_every: int = 20_000,
            curve_every: int = 0, curve_episodes: int = 5) -> dict[str, Any]:
    """Train (from the run's checkpoint when there is one), evaluate, return the row."""
    torch.manual_seed(seed)
    ckpt = checkpoint_path(checkpoints, spec, seed) if checkpoints else None
    wall_before, curve, best = 0.0, [], Best()
    if ckpt is not None and os.path.exists(ckpt):
        model, env, wall_before, curve, best = load_checkpoint(ckpt, spec, seed)
        print(f"    resumed at {model.num_timesteps} steps", flush=True)
    else:
        env = make_env(spec, seed, training=True)
        model = spec.build(env, seed)
        assert isinstance(model, spec.algo), f"{spec.policy}: built {type(model).__name__}, spec says {spec.algo.__name__}"
    callbacks: list[BaseCallback] = []
    if curve_every > 0:   # before the checkpoint, which then holds the newest point
        curve_env = make_env(spec, seed + 20_000, training=False, train_env=env)
        callbacks.append(Curve(curve_env, curve_every, curve_episodes, curve, best))
    if ckpt is not None and isinstance(model, OnPolicyAlgorithm):   # off-policy: would need the replay buffer
        callbacks.append(SaveEvery(ckpt, save_every, wall_before, curve, best))
    start = time.perf_counter()
    model.learn(spec.steps - model.num_timesteps, callback=callbacks,
                reset_num_timesteps=model.num_timesteps == 0)
    wall = wall_before + time.perf_counter() - start
    eval_env = make_env(spec, seed + 10_000, training=False, train_env=env)
    rewards, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval, deterministic=True, return_episode_rewards=True)
    best_row = evaluate_best(spec, seed, model, best, n_eval) if best.policy is not None else None
    tag = {"variant": variant()} if variant() else {}
    settings = dict(spec.info, **HYPER_OVERRIDES, **{f"cell.{k}": v for k, v in CELL_OVERRIDES.items()})
    return dict(suite=spec.suite, task=spec.task, policy=spec.policy, seed=seed, steps=spec.steps,
                normalize=spec.normalize, **tag, mean=float(np.mean(rewards)), std=float(np.std(rewards)), episodes=len(rewards),
                wall_s=round(wall, 1), **({"curve": curve} if curve else {}), **({"best": best_row} if best_row else {}),
                params=count_params(model.policy), cell_params=cell_params(model),
                algo=type(model).__name__, settings={k: str(v) for k, v in settings.items()})


def evaluate_best(spec: Spec, seed: int, model: BaseAlgorithm, best: Best, n_eval: int) -> dict[str, Any]:
    """The best curve point's policy on the same ``n_eval`` deterministic episodes as the
    final one (the curve chose it on other episodes). Leaves ``model`` holding it."""
    assert best.policy is not None
    model.policy.load_state_dict(best.policy)
    eval_env = make_env(spec, seed + 10_000, training=False)
    if best.normalization is not None:
        assert isinstance(eval_env, VecNormalize)
        normalization_from_json(eval_env, best.normalization)
    rewards, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval, deterministic=True, return_episode_rewards=True)
    return dict(step=best.step, curve_value=best.value, mean=float(np.mean(rewards)), std=float(np.std(rewards)))


def _normalize(row: dict[str, Any]) -> str:
    # Rows written before reward normalization was added normalised observations only.
    return row.get("normalize", "none" if row["suite"] == "sac_history" else "obs")


def load_done(path: str) -> set[tuple[str, str, str, int, int, str, str]]:
    done = set()
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    done.add((r["suite"], r["task"], r["policy"], r["seed"], r["steps"], _normalize(r),
                              r.get("variant", "")))
    return done


def _best(row: dict[str, Any]) -> str:
    """The best point of a row's learning curve and, where kept, that policy's evaluation,
    e.g. " (best 500 @ 60k: 498.2)"."""
    if not row.get("curve"):
        return ""
    step, value = max(row["curve"], key=lambda p: (p[1], -p[0]))
    kept = f": {row['best']['mean']:.1f}" if row.get("best") else ""
    return f" (best {value:.0f} @ {step / 1000:.0f}k{kept})"


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.1f} +- {np.std(values):.1f}" if values else "-"


def summary(path: str) -> None:
    """Markdown table: per (suite, task, policy, budget, normalisation) the final return over
    seeds; for rows that kept it, the return of the best curve point's policy; and the
    mean of each seed's curve points in the second half of the budget (a steadier measure
    of where training is than one final evaluation)."""
    groups: dict[tuple[str, str, str, int, str], list[dict[str, Any]]] = defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                policy = r["policy"] + (f" [{r['variant']}]" if r.get("variant") else "")
                groups[(r["suite"], r["task"], policy, r["steps"], _normalize(r))].append(r)
    print("| suite | task | policy | steps | normalize | seeds | final return (mean +- std over seeds) "
          "| best-point policy | curve, 2nd half | per seed (final, best curve point: its policy) | params (cell) "
          "| wall s/seed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (suite, task, policy, steps, norm), rows in sorted(groups.items()):
        bests = [r["best"]["mean"] for r in rows if r.get("best")]
        best = _mean_std(bests) + (f" ({len(bests)} seeds)" if 0 < len(bests) < len(rows) else "")
        per_seed = ", ".join(f"{r['seed']}: {r['mean']:.1f}+-{r['std']:.1f}{_best(r)}"
                             for r in sorted(rows, key=lambda r: r["seed"]))
        late = [np.mean([v for step, v in r["curve"] if step >= steps / 2]) for r in rows
                if any(step >= steps / 2 for step, _ in r.get("curve", []))]
        late_text = _mean_std(late) + (f" ({len(late)} seeds)" if 0 < len(late) < len(rows) else "")
        print(f"| {suite} | {task.split('/')[-1]} | {policy} | {steps} | {norm} | {len(rows)} "
              f"| {_mean_std([r['mean'] for r in rows])} | {best} | {late_text} | {per_seed} "
              f"| {rows[0]['params']} ({rows[0]['cell_params']}) | {np.mean([r['wall_s'] for r in rows]):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", nargs="+", default=["recurrent_ppo"], choices=sorted(SUITES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--results", default="docs/results/rl.jsonl")
    parser.add_argument("--tasks", nargs="*", default=None, help="only these env ids (e.g. liquid_rl/CartPoleNoVel-v1)")
    parser.add_argument("--policies", nargs="*", default=None, help="only these policy names (e.g. ltc-32 lstm-64)")
    parser.add_argument("--n-eval", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None, help="override the budget (smoke tests)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoints", default="runs/bench_rl", help="where PPO runs save checkpoints ('' = none)")
    parser.add_argument("--save-every", type=int, default=20_000, help="steps between checkpoints")
    parser.add_argument("--curve-every", type=int, default=10_000, help="steps between curve points (0 = none)")
    parser.add_argument("--curve-episodes", type=int, default=5, help="episodes per curve point")
    parser.add_argument("--summary", action="store_true", help="print the results table and exit")
    parser.add_argument("--hyper", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override algorithm hyperparameters (a tuning variant, tagged in the rows)")
    parser.add_argument("--cell", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override liquid cell options (a tuning variant, tagged in the rows)")
    args = parser.parse_args()
    HYPER_OVERRIDES.update(_parse_overrides(args.hyper))
    CELL_OVERRIDES.update(_parse_overrides(args.cell))
    if args.summary:
        summary(args.results)
        return
    torch.set_num_threads(args.threads)
    os.makedirs(os.path.dirname(args.results) or ".", exist_ok=True)
    specs = [s for name in args.suite for s in SUITES[name]()]
    specs = [s for s in specs if (args.tasks is None or s.task in args.tasks)
             and (args.policies is None or s.policy in args.policies)]
    for seed in args.seeds:
        for spec in specs:
            if args.steps is not None:
                spec.steps = args.steps
            key = (spec.suite, spec.task, spec.policy, seed, spec.steps, spec.normalize, variant())
            if key in load_done(args.results):
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {spec.suite} {spec.task} {spec.policy} seed {seed} ({spec.steps} steps)",
                  flush=True)
            try:
                row = run_one(spec, seed, args.n_eval, args.checkpoints or None, args.save_every, args.curve_every,
                              args.curve_episodes)
            except Exception:  # keep going; the row stays missing and a rerun retries it
                traceback.print_exc()
                continue
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
            if args.checkpoints and os.path.exists(checkpoint_path(args.checkpoints, spec, seed)):
                os.remove(checkpoint_path(args.checkpoints, spec, seed))   # the row is written
            print(f"    -> {row['mean']:.1f} +- {row['std']:.1f} in {row['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
