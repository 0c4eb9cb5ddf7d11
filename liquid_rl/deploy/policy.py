"""``OnnxPolicy``: an exported actor in onnxruntime, its recurrent state carried inside.

Imports numpy and onnxruntime only, so that a robot (or any machine without PyTorch) can
run the file that ``liquid-rl export`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

__all__ = ["OnnxPolicy"]

METADATA_KEY = "liquid_rl"  # as liquid_rl.export.files.METADATA_KEY (not imported: it needs torch)


class OnnxPolicy:
    """An exported liquid-rl actor (``liquid-rl export --format onnx``).

    ``act(obs, dt=None, episode_start=None) -> action``: ``obs`` is one observation
    ``obs_shape`` or a batch (B, *obs_shape) of B envs (numbers of any real dtype, cast
    to float32); ``dt`` the elapsed time since each env's previous step (None: the run's
    nominal step; a number, or (B,) / (B, 1)); ``episode_start`` (B,) bool marks envs whose
    episode starts with this observation (their state is zeroed). Returns the action the
    env takes: (B, *action_shape) float32 or (B,) int64, without the batch axis for one
    unbatched observation. :meth:`reset` starts new episodes in every env.

    Attributes:
        metadata: the file's metadata (spaces, state size, dt unit, names, version, config hash).
        obs_shape, state_size, uses_dt: read from it.

    Raises:
        ValueError: the file is not a readable liquid-rl ONNX actor (on construction), or an
            input has the wrong shape or dtype (naming the expected shape).
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for missing, corrupt or invalid files
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(f"{path} is not a readable ONNX model: {first}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ValueError(f"{path} is an ONNX model but not a liquid-rl actor (no {METADATA_KEY!r} metadata); "
                             "write one with `liquid-rl export RUN --format onnx`")
        try:
            self.metadata: dict[str, Any] = json.loads(props[METADATA_KEY])
            self.obs_shape: tuple[int, ...] = tuple(int(n) for n in self.metadata["obs_shape"])
            self.state_size: int = int(self.metadata["state_size"])
            self.inputs: list[str] = list(self.metadata["inputs"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: bad liquid-rl metadata ({e})") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != self.inputs:
            raise ValueError(f"{path}: the model's inputs {names} differ from its metadata's {self.inputs}")
        dt = self.metadata.get("dt")
        self.uses_dt: bool = dt is not None
        self.dt_default: float = float(dt["default"]) if dt else 0.0
        self._state: np.ndarray | None = None
        self._pending_reset = True

    # --- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new episode in every env: the next :meth:`act` begins from the zero state
        (and may take a different number of envs)."""
        self._state = None
        self._pending_reset = True

    @property
    def state(self) -> np.ndarray | None:
        """A copy of the carried state (B, state_size), or None before the first step."""
        return None if self._state is None else self._state.copy()

    # --- acting --------------------------------------------------------------------------
    def _observation(self, obs: Any) -> tuple[np.ndarray, bool]:
        a = np.asarray(obs)
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
                or a.dtype == np.bool_):
            raise ValueError(f"obs must be a real numeric array of shape {self.obs_shape} or (B, "
                             f"{', '.join(map(str, self.obs_shape))}), got dtype {a.dtype}")
        if a.shape == self.obs_shape:
            return a.astype(np.float32)[None], False
        if a.ndim == len(self.obs_shape) + 1 and a.shape[1:] == self.obs_shape and a.shape[0] >= 1:
            return a.astype(np.float32), True
        raise ValueError(f"obs must have shape {self.obs_shape} or (B, {', '.join(map(str, self.obs_shape))}), "
                         f"got {a.shape}")

    def _dt(self, dt: Any, batch: int) -> np.ndarray:
        if dt is None:
            return np.full((batch, 1), self.dt_default, dtype=np.float32)
        if not self.uses_dt:
            raise ValueError("this policy's cells do not integrate the elapsed time; pass dt=None")
        d = np.asarray(dt)
        if not (np.issubdtype(d.dtype, np.integer) or np.issubdtype(d.dtype, np.floating)):
            raise ValueError(f"dt must be a number or a real array of shape ({batch}, 1), got dtype {d.dtype}")
        if d.ndim == 0:
            return np.full((batch, 1), float(d), dtype=np.float32)
        if d.shape in ((batch,), (batch, 1)):
            return d.astype(np.float32).reshape(batch, 1)
        raise ValueError(f"dt must be a number or have shape ({batch},) or ({batch}, 1), got {d.shape}")

    def act(self, obs: Any, dt: Any = None, episode_start: Any = None) -> np.ndarray:
        """The action for ``obs`` (see the class docstring); advances the carried state."""
        x, batched = self._observation(obs)
        batch = x.shape[0]
        feeds: dict[str, np.ndarray] = {"obs": x}
        if self.state_size:
            if self._state is None:
                self._state = np.zeros((batch, self.state_size), dtype=np.float32)
            elif self._state.shape[0] != batch:
                raise ValueError(f"obs holds {batch} envs but the carried state has {self._state.shape[0]}; "
                                 "call reset() to change the number of envs")
            starts = np.full(batch, self._pending_reset, dtype=bool)
            if episode_start is not None:
                s = np.asarray(episode_start)
                if s.shape not in ((batch,), ()):
                    raise ValueError(f"episode_start must be a bool or have shape ({batch},), got {s.shape}")
                starts |= np.broadcast_to(s.astype(bool), (batch,))
            feeds["state"] = self._state
            feeds["episode_start"] = starts.astype(np.float32)
        if self.uses_dt:
            feeds["dt"] = self._dt(dt, batch)
        elif dt is not None:
            self._dt(dt, batch)  # raises
        out = self.session.run(None, feeds)
        if self.state_size:
            self._state = out[1]
        self._pending_reset = False
        action = out[0]
        return action if batched else action[0]

    def __repr__(self) -> str:
        return (f"OnnxPolicy({self.metadata.get('algo')}/{self.metadata.get('policy_type')} on "
                f"{self.metadata.get('env_id')}, obs {self.obs_shape}, state {self.state_size})")
