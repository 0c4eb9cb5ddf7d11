"""Saving and loading agents without running code from the file.

A stable-baselines3 ``.zip`` holds ``data`` (JSON in which the observation and action
spaces, the policy class, the learning-rate schedule and more are cloudpickled, base64
encoded) and the tensors (``policy.pth``, optimizer states, ``pytorch_variables.pth``)
saved with ``torch.save``, which pickles as well. ``PPO.load`` unpickles all of it, so a
crafted file runs any code it likes when loaded.

Our files are ordinary stable-baselines3 files (``PPO.load`` still reads them, for those
who trust them) with one more entry, ``liquid_rl.json``: the resolved config, the spaces
as plain JSON, the counters and the normalisation statistics. :func:`load_agent` reads
only that JSON and the tensors, with ``torch.load(..., weights_only=True)`` (which
refuses anything but tensors and plain containers), and never touches ``data``: the
algorithm and policy are rebuilt from the config, as at training time.

Replay buffers (SB3 pickles the whole buffer object) are saved here as ``.npz`` arrays and
loaded with ``allow_pickle=False``; normalisation statistics are JSON.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from liquid_rl.agents.build import build_model, find_vecnormalize, make_vec_env, normalization_to_json
from liquid_rl.agents.config import ConfigError, UserError, validate_config

__all__ = [
    "Agent",
    "load_agent",
    "save_agent",
    "resolve_model_path",
    "read_metadata",
    "space_to_json",
    "space_from_json",
    "save_replay_buffer",
    "load_replay_buffer",
    "atomic_write_bytes",
    "atomic_write_text",
    "METADATA_NAME",
]

METADATA_NAME = "liquid_rl.json"
FORMAT = "liquid-rl-model"
FORMAT_VERSION = 1
_COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp makes 0600 files


# --- atomic files -----------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a reader (or a kill) sees the old file or the new
    one, never a part: a temporary file in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


# --- spaces as JSON -----------------------------------------------------------------------------


def _array_or_scalar(a: np.ndarray) -> Any:
    a = np.asarray(a)
    if a.size and np.all(a == a.flat[0]):
        return a.flat[0].item()
    return a.tolist()


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Gymnasium space as plain JSON data (Box, Discrete, MultiDiscrete, MultiBinary, Dict)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _array_or_scalar(space.low), "high": _array_or_scalar(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(),
                "start": np.asarray(space.start).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise ValueError(f"cannot describe the space {space} as JSON")


_DTYPES = {"float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32",
           "uint64", "bool"}


def space_from_json(data: Mapping[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_json`."""
    kind = data["type"]
    if kind == "Box":
        if data["dtype"] not in _DTYPES:
            raise ValueError(f"unsupported dtype {data['dtype']!r}")
        shape = tuple(int(n) for n in data["shape"])
        dtype = np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], dtype=np.float64), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], dtype=np.float64), shape).astype(dtype)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64),
                                    start=np.asarray(data.get("start", 0), dtype=np.int64))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({str(k): space_from_json(v) for k, v in data["spaces"].items()})
    raise ValueError(f"unsupported space type {kind!r}")


# --- saving ---------------------------------------------------------------------------------------


def save_agent(model: BaseAlgorithm, path: str | Path, config: Mapping[str, Any]) -> Path:
    """Save ``model`` to ``path`` (atomically): stable-baselines3's zip plus ``liquid_rl.json``.

    The normalisation statistics of the model's env (if it has VecNormalize) go into the
    metadata, so that a model file is complete on its own.
    """
    import liquid_rl

    vecnorm = find_vecnormalize(model.get_env())
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "liquid_rl_version": liquid_rl.__version__,
        "algo": config["algo"]["name"],
        "config": config,
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "counters": {k: int(getattr(model, k, 0)) for k in _COUNTERS},
        "normalization": normalization_to_json(vecnorm) if vecnorm is not None else None,
    }
    buffer = io.BytesIO()
    model.save(buffer)
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr(METADATA_NAME, json.dumps(meta, indent=1))
    return atomic_write_bytes(path, buffer.getvalue())


# --- loading ----------------------------------------------------------------------------------------


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
            if (parent / "config.yaml").is_file() and (parent / "run.json").is_file():
                return parent
        return None

    def make_env(self, n_envs: int = 1, seed: int | None = None, noise: float = 0.0,
                 render_mode: str | None = None) -> VecEnv:
        """The env of the config as the agent saw it (frozen normalisation statistics),
        optionally with Gaussian observation noise ``noise``."""
        return make_vec_env(self.config, n_envs=n_envs, seed=seed, training=False, render_mode=render_mode,
                            noise=noise, normalization=self.normalization, subprocess=False)


class _SpacesEnv(gym.Env):
    """An env that only has spaces: lets an algorithm be built without the real env."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any):
        raise RuntimeError("this agent was loaded without an environment; use agent.make_env()")


def resolve_model_path(path: str | Path) -> Path:
    """A model file, or the model of a run directory: ``final/model.zip``, else the latest
    checkpoint, else ``best/model.zip``.

    Raises:
        UserError: no such file or directory, or a run directory without a model.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise UserError(f"no such model file or run directory: {p}")
    if not p.is_dir():
        raise UserError(f"not a model file or run directory: {p}")
    final = p / "final" / "model.zip"
    if final.is_file():
        return final
    from liquid_rl.agents.checkpoints import latest_checkpoint

    ckpt = latest_checkpoint(p)
    if ckpt is not None:
        return ckpt.model_path
    best = p / "best" / "model.zip"
    if best.is_file():
        return best
    if (p / "model.zip").is_file():
        return p / "model.zip"
    raise UserError(f"run directory {p} has no model (no final/model.zip, checkpoint or best/model.zip)")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``liquid_rl.json`` of a model file (plain JSON; nothing is unpickled).

    Raises:
        UserError: not a zip archive, or not saved by liquid-rl.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            if METADATA_NAME not in names:
                raise UserError(f"{p} was not saved by liquid-rl (no {METADATA_NAME} inside); liquid-rl loads "
                                "only its own files because stable-baselines3's pickled data can run code")
            meta = json.loads(z.read(METADATA_NAME))
    except zipfile.BadZipFile:
        raise UserError(f"{p} is not a model file (not a zip archive, or truncated)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: {METADATA_NAME} is not valid JSON ({e})") from None
    except (OSError, zipfile.LargeZipFile) as e:
        raise UserError(f"cannot read model file {p}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{p}: {METADATA_NAME} is not liquid-rl model metadata")
    if not isinstance(meta.get("format_version"), int) or not isinstance(meta.get("config"), dict):
        raise UserError(f"{p}: {METADATA_NAME} lacks its format version or config")
    if meta["format_version"] > FORMAT_VERSION:
        raise UserError(f"{p} was saved by a newer liquid-rl (format {meta.get('format_version')}); upgrade liquid-rl")
    return meta


def _load_tensors(z: zipfile.ZipFile, name: str, device: torch.device, source: Path) -> Any:
    try:
        return torch.load(io.BytesIO(z.read(name)), map_location=device, weights_only=True)
    except KeyError:
        raise UserError(f"{source} is incomplete: {name} is missing") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{source}: {name} holds more than tensors or is corrupt; refused to load it "
                        f"(loading it could run code from the file): {first}") from None


def load_agent(path: str | Path, device: str = "auto", env: VecEnv | None = None,
               keep_buffer: bool = False) -> Agent:
    """Load a model saved by liquid-rl, running no code from the file.

    Args:
        path: a model ``.zip`` or a run directory (see :func:`resolve_model_path`).
        device: torch device ("auto", "cpu", "cuda").
        env: the env to attach (its spaces must match the model's); default: none, the
            model is built on its saved spaces (use :meth:`Agent.make_env` to act).
        keep_buffer: allocate the full replay buffer (off-policy, for resuming training).

    Raises:
        UserError: missing, corrupt or foreign file; tensors that are not plain tensors;
            parameters that do not fit the policy of the saved config.
    """
    source = resolve_model_path(path)
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
    for k in _COUNTERS:
        v = counters.get(k, 0)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            setattr(model, k, v)
    norm = meta.get("normalization")
    if norm is not None and not isinstance(norm, dict):
        raise UserError(f"{source}: bad normalisation statistics in {METADATA_NAME}")
    return Agent(model=model, config=cfg, path=source, normalization=norm, metadata=meta)


# --- replay buffers as arrays -------------------------------------------------------------------

_STRUCTURE = ("buffer_size", "n_envs")  # must match, never overwritten


def _filled(buffer: Any) -> int:
    return int(buffer.buffer_size) if getattr(buffer, "full", False) else int(getattr(buffer, "pos", 0))


def save_replay_buffer(buffer: Any, path: str | Path) -> Path:
    """Save a replay buffer's arrays (only the filled rows) and counters to ``.npz``, atomically.

    Works for any buffer that keeps its data as numpy arrays (or dicts of them) with the
    row index first, as stable-baselines3's ``ReplayBuffer`` and ``DictReplayBuffer`` do.
    """
    size, n = int(buffer.buffer_size), _filled(buffer)
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            arrays[name] = value[:n] if value.ndim and value.shape[0] == size else value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for k, v in value.items():
                arrays[f"{name}/{k}"] = v[:n] if v.ndim and v.shape[0] == size else v
        elif isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
            scalars[name] = value.item() if hasattr(value, "item") else value
    arrays["__scalars__"] = np.frombuffer(json.dumps(scalars).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return atomic_write_bytes(path, out.getvalue())


def load_replay_buffer(buffer: Any, path: str | Path) -> None:
    """Fill ``buffer`` (already allocated, same size) from :func:`save_replay_buffer` output.

    Raises:
        UserError: unreadable file or arrays that do not fit the buffer.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            scalars = json.loads(bytes(data["__scalars__"]).decode())
            for k in _STRUCTURE:
                if k in scalars and int(scalars[k]) != int(getattr(buffer, k)):
                    raise UserError(f"{p}: replay buffer {k} is {scalars[k]}, the algorithm has {getattr(buffer, k)}")
            size = int(buffer.buffer_size)
            for key in data.files:
                if key == "__scalars__":
                    continue
                name, _, sub = key.partition("/")
                target = getattr(buffer, name, None)
                if sub:
                    target = target.get(sub) if isinstance(target, dict) else None
                if isinstance(target, torch.Tensor):
                    target = target.numpy() if target.device.type == "cpu" else None
                if not isinstance(target, np.ndarray):
                    raise UserError(f"{p}: unexpected array {key!r} for this replay buffer")
                value = data[key]
                if target.ndim and target.shape[0] == size and value.shape[1:] == target.shape[1:] \
                        and value.shape[0] <= size:
                    target[: value.shape[0]] = value
                elif value.shape == target.shape:
                    target[...] = value
                else:
                    raise UserError(f"{p}: array {key!r} has shape {value.shape}, the buffer has {target.shape}")
            for k, v in scalars.items():
                if k not in _STRUCTURE and isinstance(getattr(buffer, k, None), (bool, int, float)):
                    setattr(buffer, k, type(getattr(buffer, k))(v))
    except UserError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise UserError(f"cannot read replay buffer {p}: {e}") from None
