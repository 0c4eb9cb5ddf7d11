"""From a resolved config to environments, a policy and an algorithm instance.

Shared by training, resuming, loading and evaluation, so that an agent is always rebuilt
exactly as it was trained: same wrappers in the same order, same frame stacking, same
normalisation, same policy class and keyword arguments.

Wrapper order (inside out): ``gymnasium.make`` (with the env kwargs and time limit) ->
``ObservationNoise`` (evaluation with ``--noise`` only: the sensor noise is on the raw
observation) -> the config's wrappers -> ``Monitor`` (episode return and length as the
agent sees them) -> VecEnv -> ``VecNormalize`` -> ``VecFrameStack``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecEnvWrapper,
    VecFrameStack,
    VecNormalize,
)
from torch import nn

from liquid_rl.agents.algorithms import get_algorithm, is_off_policy
from liquid_rl.agents.config import ACTIVATIONS, WRAPPERS, import_target
from liquid_rl.agents.errors import ConfigError
from liquid_rl.agents.finite_check import FiniteCheck
from liquid_rl.agents.memory_estimate import check_memory
from liquid_rl.core_inputs import PreviousActionReward, extras

__all__ = [
    "make_env_fn",
    "make_vec_env",
    "policy_spec",
    "build_model",
    "find_vecnormalize",
    "sync_normalization",
    "normalization_to_json",
    "normalization_from_json",
    "linear_schedule",
    "apply_threads",
]


# --- environments -------------------------------------------------------------------------


def make_env_fn(env_cfg: Mapping[str, Any], seed: int | None = None, render_mode: str | None = None,
                noise: float = 0.0, monitor: bool = True,
                perturb: Callable[[gym.Env], gym.Env] | None = None) -> Callable[[], gym.Env]:
    """A thunk building one environment of the ``env`` section.

    ``perturb``, if given, wraps the raw env before the config's wrappers (robustness
    evaluation: the perturbation is on the sensor or the actuator, not on what the
    config's wrappers make of it).
    """

    def _init() -> gym.Env:
        from liquid_rl.envs import make  # registers our ids, also in subprocesses

        kwargs = dict(env_cfg["kwargs"])
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        if env_cfg.get("max_episode_steps") is not None:
            kwargs["max_episode_steps"] = env_cfg["max_episode_steps"]
        env = make(env_cfg["id"], **kwargs)  # gym.make, without MuJoCo's settotalmass warnings
        if noise > 0:
            from liquid_rl.envs.wrappers import ObservationNoise

            env = ObservationNoise(env, noise)
        if perturb is not None:
            env = perturb(env)
        for w in env_cfg["wrappers"]:
            env = import_target(WRAPPERS[w["name"]])(env, **w["kwargs"])
        if monitor:
            env = Monitor(env)
        if seed is not None:
            env.action_space.seed(seed)
        return env

    return _init


def make_vec_env(cfg: Mapping[str, Any], n_envs: int | None = None, seed: int | None = None,
                 training: bool = True, render_mode: str | None = None, noise: float = 0.0,
                 normalization: Mapping[str, Any] | None = None, subprocess: bool | None = None,
                 perturb: Callable[[gym.Env], gym.Env] | None = None, check_finite: bool | None = None) -> VecEnv:
    """The vectorised env of a config.

    Args:
        cfg: resolved config.
        n_envs: number of envs (default ``env.n_envs``).
        seed: base seed; env i is seeded with ``seed + i``.
        training: VecNormalize updates its statistics (and normalises rewards) only when training.
        render_mode: e.g. "rgb_array" for videos.
        noise: Gaussian observation noise sigma (evaluation).
        normalization: VecNormalize statistics to load (:func:`normalization_to_json` form).
        subprocess: SubprocVecEnv (default: ``env.vec_env == "subproc"`` and n_envs > 1).
        perturb: wraps each raw env (see :func:`make_env_fn`).
        check_finite: stop with a :class:`UserError` at a NaN or infinite observation,
            reward or action (default: ``train.check_finite`` when training, on otherwise).
    """
    env_cfg = cfg["env"]
    n = int(n_envs or env_cfg["n_envs"])
    fns = [make_env_fn(env_cfg, None if seed is None else seed + i, render_mode, noise, perturb=perturb)
           for i in range(n)]
    use_subproc = (env_cfg["vec_env"] == "subproc" and n > 1) if subprocess is None else subprocess
    try:
        venv: VecEnv = SubprocVecEnv(fns) if use_subproc else DummyVecEnv(fns)
    except (ValueError, TypeError, gym.error.Error) as e:
        raise ConfigError(f"'env' {env_cfg['id']}: {_one_line(e)}") from None
    if seed is not None:
        venv.seed(seed)
    if check_finite if check_finite is not None else (cfg["train"]["check_finite"] or not training):
        venv = FiniteCheck(venv, env_cfg["id"])
    previous = extras(cfg["policy"].get("core_inputs") or ())
    if previous:  # the previous action and reward travel in the observation (liquid_rl.core_inputs)
        try:
            venv = PreviousActionReward(venv, previous)
        except ValueError as e:
            venv.close()
            raise ConfigError(f"'policy.core_inputs': {e}") from None
    norm = env_cfg["normalize"]
    if norm["obs"] or norm["reward"]:
        space = venv.observation_space
        if norm["obs"] and is_image_space(space, check_channels=False):
            venv.close()
            raise ConfigError("'env.normalize.obs' cannot normalise image observations; set it to false")
        keys = None
        if isinstance(space, spaces.Dict):
            # never rescale the elapsed time of IrregularTime nor images
            keys = [k for k, s in space.spaces.items() if k != "dt" and not is_image_space(s, check_channels=False)]
        venv = VecNormalize(venv, training=training, norm_obs=norm["obs"], norm_reward=norm["reward"] and training,
                            clip_obs=norm["clip_obs"], clip_reward=norm["clip_reward"],
                            gamma=float(cfg["algo"]["hyperparams"].get("gamma", 0.99)), norm_obs_keys=keys)
        if normalization is not None:
            normalization_from_json(venv, normalization)
            venv.training = training
            venv.norm_reward = norm["reward"] and training
    elif normalization is not None:
        raise ConfigError("the model has normalisation statistics but its config has env.normalize off")
    if env_cfg["frame_stack"] > 1:
        venv = VecFrameStack(venv, n_stack=env_cfg["frame_stack"])
    return venv


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def find_vecnormalize(venv: VecEnv | None) -> VecNormalize | None:
    """The VecNormalize inside a chain of VecEnv wrappers, if any."""
    while venv is not None:
        if isinstance(venv, VecNormalize):
            return venv
        venv = venv.venv if isinstance(venv, VecEnvWrapper) else None
    return None


def sync_normalization(train_env: VecEnv, eval_env: VecEnv) -> None:
    """Copy the training env's VecNormalize statistics into the eval env's, wherever each
    sits in its chain of wrappers (SB3 puts VecTransposeImage above the training env's;
    ``sync_envs_normalization`` needs the same chains and observation statistics)."""
    src, dst = find_vecnormalize(train_env), find_vecnormalize(eval_env)
    if src is None or dst is None:
        return
    if src.norm_obs and dst.norm_obs:
        dst.obs_rms = copy.deepcopy(src.obs_rms)
    dst.ret_rms = copy.deepcopy(src.ret_rms)


def _rms_to_json(rms: RunningMeanStd) -> dict[str, Any]:
    return {"mean": np.asarray(rms.mean, dtype=np.float64).tolist(),
            "var": np.asarray(rms.var, dtype=np.float64).tolist(), "count": float(rms.count)}


def _rms_from_json(rms: RunningMeanStd, data: Mapping[str, Any], what: str) -> None:
    mean = np.asarray(data["mean"], dtype=np.float64)
    var = np.asarray(data["var"], dtype=np.float64)
    if mean.shape != np.shape(rms.mean) or var.shape != np.shape(rms.var):
        raise ConfigError(f"normalisation statistics of {what} have shape {mean.shape}, the env has {np.shape(rms.mean)}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
        raise ConfigError(f"normalisation statistics of {what} are not finite")
    rms.mean, rms.var, rms.count = mean, var, float(data["count"])


def normalization_to_json(venv: VecNormalize) -> dict[str, Any]:
    """VecNormalize statistics as plain JSON data (SB3 pickles them; we do not).
    ``obs_rms`` is None where only rewards are normalised (VecNormalize keeps no
    observation statistics then)."""
    obs: Any = None
    if venv.norm_obs:
        if isinstance(venv.obs_rms, dict):
            obs = {k: _rms_to_json(r) for k, r in venv.obs_rms.items()}
        else:
            obs = _rms_to_json(venv.obs_rms)
    return {"obs_rms": obs, "ret_rms": _rms_to_json(venv.ret_rms), "norm_obs": bool(venv.norm_obs),
            "norm_reward": bool(venv.norm_reward), "clip_obs": float(venv.clip_obs),
            "clip_reward": float(venv.clip_reward), "gamma": float(venv.gamma), "epsilon": float(venv.epsilon)}


def normalization_from_json(venv: VecNormalize, data: Mapping[str, Any]) -> None:
    """Load statistics written by :func:`normalization_to_json` into ``venv``."""
    try:
        if venv.norm_obs:
            if data["obs_rms"] is None:
                raise ConfigError("the saved normalisation has no observation statistics (trained with "
                                  "env.normalize.obs false) but the env normalises observations")
            if isinstance(venv.obs_rms, dict):
                for k, r in venv.obs_rms.items():
                    _rms_from_json(r, data["obs_rms"][k], f"observation {k!r}")
            else:
                _rms_from_json(venv.obs_rms, data["obs_rms"], "observations")
        _rms_from_json(venv.ret_rms, data["ret_rms"], "returns")
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"invalid normalisation statistics ({_one_line(e)})") from None


# --- policy ----------------------------------------------------------------------------------


def _space_kind(space: spaces.Space) -> str:
    if isinstance(space, spaces.Dict):
        return "MultiInput"
    if is_image_space(space, check_channels=False):
        return "Cnn"
    return "Mlp"


def policy_spec(cfg: Mapping[str, Any], observation_space: spaces.Space) -> tuple[str | type, dict[str, Any]]:
    """The policy (class or SB3 name) and ``policy_kwargs`` of a config, for an env whose
    (vectorised, stacked) observation space is ``observation_space``."""
    p = cfg["policy"]
    kind = _space_kind(observation_space)
    kwargs: dict[str, Any] = {}
    if p["net_arch"] is not None:
        kwargs["net_arch"] = p["net_arch"]
    if p["activation_fn"] is not None:
        kwargs["activation_fn"] = getattr(nn, ACTIVATIONS[p["activation_fn"]])
    liquid = {k: p[k] for k in ("cell", "wiring", "units", "output_size", "ode_unfolds", "solver", "mode")
              if p[k] is not None}
    if isinstance(p["wiring"], Mapping):  # an explicit NCP: build it (the cell wires it to its inputs)
        from liquid_rl.wirings import NCP

        liquid["wiring"] = NCP(**p["wiring"])
        liquid["units"] = liquid["wiring"].units
    ptype = p["type"]
    if ptype == "mlp":
        kwargs.update(p["kwargs"])
        return f"{kind}Policy", kwargs
    if ptype == "lstm":
        if p["units"] is not None:
            kwargs["lstm_hidden_size"] = p["units"]
        kwargs.update(p["kwargs"])
        return f"{kind}LstmPolicy", kwargs
    if ptype == "liquid_recurrent":
        if cfg["algo"]["name"] == "recurrent_sac":
            policy = _recurrent_sac_policy(kind)
        else:
            from liquid_rl import policies

            policy = getattr(policies, f"{'' if kind == 'Mlp' else kind}LiquidRecurrentPolicy")
        kwargs.update(liquid)
        if p.get("core_inputs") is not None:
            kwargs["core_inputs"] = tuple(p["core_inputs"])
        kwargs.update(p["kwargs"])
        return policy, kwargs
    # liquid_history: the usual policy of the algorithm with the history extractor in front
    try:
        from liquid_rl.extractors import LiquidHistoryExtractor
    except ImportError as e:
        raise ConfigError(f"'policy.type' liquid_history is not available in this installation ({e})") from None
    extractor = dict(liquid, history=p["history"])
    extractor.update(p["kwargs"])
    kwargs["features_extractor_class"] = LiquidHistoryExtractor
    kwargs["features_extractor_kwargs"] = extractor
    return ("MultiInputPolicy" if kind == "MultiInput" else "MlpPolicy"), kwargs


def _recurrent_sac_policy(kind: str) -> Any:
    cls = get_algorithm("recurrent_sac")
    aliases = getattr(cls, "policy_aliases", {})
    name = f"{kind}Policy"
    if name not in aliases:
        raise ConfigError(f"algo 'recurrent_sac' has no policy for this observation space ({name}); "
                          f"it has {', '.join(aliases) or 'none'}")
    return name


# --- model -----------------------------------------------------------------------------------


def linear_schedule(start: float) -> Callable[[float], float]:
    """``lin_<start>``: decays linearly from ``start`` to 0 over training, then stays at 0.

    SB3 counts progress as ``1 - num_timesteps / total_timesteps``, which goes below 0 on
    the last update when the last rollout ends past the budget (e.g. 4 envs x 1024 steps
    into 150k); unclamped, that update would run with a negative learning rate (gradient
    ascent) or clip range.
    """

    def schedule(progress_remaining: float) -> float:
        return max(progress_remaining, 0.0) * start

    return schedule


def _hyperparams(cfg: Mapping[str, Any], action_space: spaces.Space) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in cfg["algo"]["hyperparams"].items():
        if isinstance(value, str) and value.startswith("lin_"):
            value = linear_schedule(float(value[4:]))
        elif name == "train_freq" and isinstance(value, list):
            value = (int(value[0]), str(value[1]))
        elif name == "action_noise" and value is not None:
            if not isinstance(action_space, spaces.Box):
                raise ConfigError("'algo.hyperparams.action_noise' needs a continuous (Box) action space")
            n = int(np.prod(action_space.shape))
            mean, sigma = np.zeros(n), value["sigma"] * np.ones(n)
            value = (NormalActionNoise(mean, sigma) if value["type"] == "normal"
                     else OrnsteinUhlenbeckActionNoise(mean, sigma, theta=value["theta"], dt=value["dt"]))
        out[name] = value
    return out


def build_model(cfg: Mapping[str, Any], venv: VecEnv, device: str | None = None,
                tensorboard_log: str | None = None, small_buffer: bool = False,
                seed: int | None = None) -> BaseAlgorithm:
    """A fresh algorithm instance for a config on ``venv``.

    Args:
        cfg: resolved config.
        venv: the (vectorised) env; only its spaces matter when the model is loaded.
        device: torch device (default ``train.device``).
        tensorboard_log: TensorBoard folder, or None.
        small_buffer: off-policy: a one-transition replay buffer (loading for evaluation
            only; saves allocating ``buffer_size`` transitions).
        seed: random seed (default ``train.seed``).

    Raises:
        ConfigError: the algorithm or policy rejects the config (message from the library).
    """
    name = cfg["algo"]["name"]
    cls = get_algorithm(name)
    policy, policy_kwargs = policy_spec(cfg, venv.observation_space)
    hyper = _hyperparams(cfg, venv.action_space)
    if not small_buffer:
        check_memory(cls, hyper, venv.num_envs, venv.observation_space, venv.action_space, is_off_policy(name))
    if small_buffer and is_off_policy(name):
        # the fewest rows the algorithm accepts (recurrent SAC needs one window of steps)
        rows = int(hyper.get("burn_in", 8)) + int(hyper.get("sequence_length", 32)) + 1 if name == "recurrent_sac" else 1
        hyper["buffer_size"] = min(int(hyper.get("buffer_size", 1_000_000)), rows * venv.num_envs)
    try:
        return cls(policy, venv, policy_kwargs=policy_kwargs, tensorboard_log=tensorboard_log,
                   verbose=cfg["train"]["verbose"], seed=cfg["train"]["seed"] if seed is None else seed,
                   device=device or cfg["train"]["device"], **hyper)
    except (ValueError, TypeError, KeyError, AssertionError, NotImplementedError) as e:
        raise ConfigError(f"cannot build {name} with policy.type {cfg['policy']['type']!r} on "
                          f"{cfg['env']['id']}: {_one_line(e)}") from None


def apply_threads(cfg: Mapping[str, Any]) -> None:
    """Set torch's CPU threads to ``train.threads`` (if set). Small policies run fastest
    on one thread; several threads spin against each other on a busy machine."""
    if cfg["train"]["threads"]:
        torch.set_num_threads(cfg["train"]["threads"])


def check_buildable(cfg: Mapping[str, Any]) -> None:
    """Build one env and the model on it (small buffer), then throw them away: catches
    what only construction can (env kwargs, wrapper values, policy options, spaces)."""
    venv = make_vec_env(cfg, seed=0, subprocess=False)
    try:
        name = cfg["algo"]["name"]
        check_memory(get_algorithm(name), _hyperparams(cfg, venv.action_space), cfg["env"]["n_envs"],
                     venv.observation_space, venv.action_space, is_off_policy(name))
        build_model(cfg, venv, device="cpu", small_buffer=True)
    finally:
        venv.close()


def config_json(cfg: Mapping[str, Any]) -> str:
    """The config as canonical JSON text (for metadata and comparisons)."""
    return json.dumps(cfg, sort_keys=True)
