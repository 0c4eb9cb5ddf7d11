"""Loading agents without running code from the file.

``PPO.load`` unpickles the ``data`` entry and the tensors of a stable-baselines3 ``.zip``,
so a crafted file runs any code it likes when loaded. :func:`load_agent` reads only
``liquid_rl.json`` (see :mod:`liquid_rl.agents.model_file`) and the tensors, with
``torch.load(..., weights_only=True)`` (which refuses anything but tensors and plain
containers), and never touches ``data``: the algorithm and policy are rebuilt from the
config, as at training time. Tensors are checked against the rebuilt model (names,
shapes, dtypes) and must be finite.

The names this module exported before the split (saving, spaces, replay buffers, atomic
writes) are imported here too, so ``from liquid_rl.agents.safe_load import ...`` keeps
working.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from liquid_rl.agents.atomic_files import atomic_write_bytes, atomic_write_text
from liquid_rl.agents.build import build_model, make_vec_env
from liquid_rl.agents.checkpoints import latest_checkpoint
from liquid_rl.agents.config import validate_config
from liquid_rl.agents.errors import ConfigError, UserError
from liquid_rl.agents.model_file import COUNTERS, METADATA_NAME, read_metadata, save_agent
from liquid_rl.agents.replay_buffer_files import load_replay_buffer, save_replay_buffer
from liquid_rl.agents.run_dir import BEST_MODEL, FINAL_MODEL, MODEL, RUN_FILES
from liquid_rl.agents.space_json import space_from_json, space_to_json

__all__ = [
    "Agent",
    "load_agent",
    "save_agent",
    "resolve_model_path",
    "MODEL_CHOICES",
    "read_metadata",
    "space_to_json",
    "space_from_json",
    "save_replay_buffer",
    "load_replay_buffer",
    "atomic_write_bytes",
    "atomic_write_text",
    "METADATA_NAME",
]


@dataclass
class Agent:
    """A loaded agent: the algorithm instance and what is needed to run it.

    Attributes:
        model: the stable-baselines3 algorithm (``model.predict`` acts).
        config: the resolved config it was trained with.
        path: the model file.
        normalization: VecNormalize statistics (JSON form) or None.
        metadata: the file's ``liquid_rl.json``.
    """

    model: BaseAlgorithm
    config: dict[str, Any]
    path: Path
    normalization: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path | None:
        """The run directory the model belongs to, if it lies in one."""
        for parent in (self.path.parent, self.path.parent.parent, self.path.parent.parent.parent):
            if all((parent / name).is_file() for name in RUN_FILES):
                return parent
        return None

    def make_env(self, n_envs: int = 1, seed: int | None = None, noise: float = 0.0,
                 render_mode: str | None = None,
                 perturb: Callable[[gym.Env], gym.Env] | None = None, check_finite: bool = True) -> VecEnv:
        """The env of the config as the agent saw it (frozen normalisation statistics),
        optionally with Gaussian observation noise ``noise`` or a ``perturb`` wrapper
        around the raw env; ``check_finite``: a NaN or infinite value stops it with a
        :class:`UserError`."""
        return make_vec_env(self.config, n_envs=n_envs, seed=seed, training=False, render_mode=render_mode,
                            noise=noise, normalization=self.normalization, subprocess=False,
                            perturb=perturb, check_finite=check_finite)


class _SpacesEnv(gym.Env):
    """An env that only has spaces: lets an algorithm be built without the real env."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any):
        raise RuntimeError("this agent was loaded without an environment; use agent.make_env()")


#: Which model of a run directory ``--model`` picks.
MODEL_CHOICES = ("final", "best", "checkpoint")


def resolve_model_path(path: str | Path, model: str | None = None) -> Path:
    """A model file, or the model of a run directory: ``final/model.zip``, else the latest
    checkpoint, else ``best/model.zip``; ``model`` ("final", "best", "checkpoint": the
    latest) asks for one of them.

    Raises:
        UserError: no such file or directory, a run directory without a model (or
            without the one asked for), or ``model`` given with a model file.
    """
    p = Path(path)
    if model is not None and model not in MODEL_CHOICES:
        raise UserError(f"--model must be one of {', '.join(MODEL_CHOICES)}, got {model!r}")
    if p.is_file():
        if model is not None:
            raise UserError(f"--model {model} picks a model of a run directory; {p} is a model file")
        return p
    if not p.exists():
        raise UserError(f"no such model file or run directory: {p}")
    if not p.is_dir():
        raise UserError(f"not a model file or run directory: {p}")
    if model is not None:
        ckpt = latest_checkpoint(p) if model == "checkpoint" else None
        chosen = {"final": p / FINAL_MODEL, "best": p / BEST_MODEL}.get(model, ckpt.model_path if ckpt else None)
        if chosen is None or not chosen.is_file():
            where = "checkpoints/" if model == "checkpoint" else (FINAL_MODEL if model == "final" else BEST_MODEL)
            raise UserError(f"run directory {p} has no {model} model (nothing in {where})")
        return chosen
    final = p / FINAL_MODEL
    if final.is_file():
        return final
    ckpt = latest_checkpoint(p)
    if ckpt is not None:
        return ckpt.model_path
    best = p / BEST_MODEL
    if best.is_file():
        return best
    if (p / MODEL).is_file():
        return p / MODEL
    raise UserError(f"run directory {p} has no model (no final/model.zip, checkpoint or best/model.zip)")


def _load_tensors(z: zipfile.ZipFile, name: str, device: torch.device, source: Path) -> Any:
    try:
        return torch.load(io.BytesIO(z.read(name)), map_location=device, weights_only=True)
    except KeyError:
        raise UserError(f"{source} is incomplete: {name} is missing") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, AttributeError) as e:
        # PyTorch's own message advises weights_only=False, which would run the file's code: never repeat it
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f"it names {found.group(1)}" if found else type(e).__name__
        raise UserError(f"{source}: {name} holds more than tensors or is corrupt ({what}); refused to load it, "
                        "since loading it could run code from the file") from None
    except OSError as e:
        raise UserError(f"{source}: {name} is truncated or corrupt ({e})") from None


def _check_finite(params: dict[str, Any], source: Path) -> None:
    """Every floating tensor of the policy and optimizer states must be finite."""
    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise UserError(f"{source}: {prefix} holds NaN or infinite values; the model is broken "
                                "(retrain it or take an earlier checkpoint)")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
    for name, value in params.items():
        walk(name, value)


def _check_policy_tensors(saved: Any, expected: dict[str, torch.Tensor], source: Path) -> None:
    """``policy.pth`` against the policy rebuilt from the config: same entries, shapes, dtypes."""
    if not isinstance(saved, dict):
        raise UserError(f"{source}: policy.pth is not a mapping of tensors")
    for name, want in expected.items():
        got = saved.get(name)
        if got is None:
            raise UserError(f"{source}: policy.pth lacks {name!r}, which the policy of its config has")
        if not isinstance(got, torch.Tensor):
            raise UserError(f"{source}: policy.pth entry {name!r} is not a tensor")
        if got.shape != want.shape:
            raise UserError(f"{source}: policy.pth entry {name!r} has shape {tuple(got.shape)}, "
                            f"the policy of its config needs {tuple(want.shape)}")
        if got.dtype != want.dtype:
            raise UserError(f"{source}: policy.pth entry {name!r} has dtype {got.dtype}, expected {want.dtype}")
    extra = sorted(set(saved) - set(expected))
    if extra:
        raise UserError(f"{source}: policy.pth has {extra[0]!r}, which the policy of its config does not")


def load_agent(path: str | Path, device: str = "auto", env: VecEnv | None = None,
               keep_buffer: bool = False, model: str | None = None) -> Agent:
    """Load a model saved by liquid-rl, running no code from the file.

    Args:
        path: a model ``.zip`` or a run directory (see :func:`resolve_model_path`).
        device: torch device ("auto", "cpu", "cuda").
        env: the env to attach (its spaces must match the model's); default: none, the
            model is built on its saved spaces (use :meth:`Agent.make_env` to act).
        keep_buffer: allocate the full replay buffer (off-policy, for resuming training).
        model: with a run directory, "final", "best" or "checkpoint" (the latest); default
            the first that exists in that order.

    Raises:
        UserError: missing, corrupt or foreign file; tensors that are not plain tensors;
            parameters that do not fit the policy of the saved config.
    """
    source = resolve_model_path(path, model)
    meta = read_metadata(source)
    try:
        saved = dict(meta["config"])
        if isinstance(saved.get("train"), dict):
            # the device it was trained on need not exist here: ``device`` decides
            saved["train"] = {**saved["train"], "device": "auto"}
        cfg = validate_config(saved)
    except ConfigError as e:
        raise UserError(f"{source}: its saved {e}") from None
    try:
        obs_space = space_from_json(meta["observation_space"])
        act_space = space_from_json(meta["action_space"])
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{source}: bad space description in {METADATA_NAME} ({e})") from None
    torch_device = get_device(device)

    if env is None:
        venv: VecEnv = DummyVecEnv([lambda: _SpacesEnv(obs_space, act_space)])
    else:
        venv = env
    try:
        with warnings.catch_warnings():  # e.g. PPO's batch-size advice for the one-env spaces stand-in
            warnings.simplefilter("ignore", UserWarning)
            model = build_model(cfg, venv, device=str(torch_device), small_buffer=not keep_buffer)
    except ConfigError as e:
        raise UserError(f"{source}: {e}") from None
    if space_to_json(model.observation_space) != space_to_json(obs_space) or \
            space_to_json(model.action_space) != space_to_json(act_space):
        raise UserError(f"{source}: the env's spaces ({model.observation_space}, {model.action_space}) differ "
                        f"from the model's ({obs_space}, {act_space})")

    state_names, variable_names = model._get_torch_save_params()
    with zipfile.ZipFile(source) as z:
        names = set(z.namelist())
        params = {}
        for name in state_names:
            if f"{name}.pth" in names:
                params[name] = _load_tensors(z, f"{name}.pth", torch_device, source)
        if "policy" not in params:
            raise UserError(f"{source} is incomplete: policy.pth is missing")
        variables = (_load_tensors(z, "pytorch_variables.pth", torch_device, source)
                     if "pytorch_variables.pth" in names else {})
    _check_finite(params, source)
    _check_policy_tensors(params["policy"], model.policy.state_dict(), source)
    try:
        model.set_parameters(params, exact_match=True, device=torch_device)
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{source}: its parameters do not fit the policy of its config ({first})") from None
    if not isinstance(variables, dict):
        raise UserError(f"{source}: pytorch_variables.pth is not a mapping of tensors")
    for name, value in variables.items():
        if name not in variable_names or not isinstance(value, torch.Tensor):
            raise UserError(f"{source}: unexpected entry {name!r} in pytorch_variables.pth")
        target = getattr(model, name)
        if target.shape != value.shape:
            raise UserError(f"{source}: {name} has shape {tuple(value.shape)}, expected {tuple(target.shape)}")
        target.data = value.data.to(target.device)
    counters = meta.get("counters", {})
    for k in COUNTERS:
        v = counters.get(k, 0)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            setattr(model, k, v)
    norm = meta.get("normalization")
    if norm is not None and not isinstance(norm, dict):
        raise UserError(f"{source}: bad normalisation statistics in {METADATA_NAME}")
    return Agent(model=model, config=cfg, path=source, normalization=norm, metadata=meta)
