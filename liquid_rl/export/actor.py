"""The deterministic actor of a trained agent as one self-contained ``nn.Module``.

:func:`build_actor` turns a loaded agent (``liquid_rl.agents.safe_load.Agent``) into a
:class:`DeployActor` that maps what the env gives to what the env takes::

    forward(obs (B, *obs_shape), [state (B, S)], [episode_start (B,)], [dt (B, 1)])
        -> action (B, *action_shape) float32, or (B,) int64 for Discrete; [state (B, S)]

Folded in: the run's VecNormalize observation statistics (clip((obs - mean) / sqrt(var +
eps))), the frame stack (``VecFrameStack``: the window of the last K normalised frames is
part of the state, zeroed at episode starts, so the input is one raw frame), the
recurrent core (its flat state), the elapsed time of cells that integrate it, and the
action post-processing of ``model.predict`` (clip to the Box for PPO, tanh rescaled to the
Box for SAC/TD3, argmax for Discrete). ``state`` and ``episode_start`` exist only when S > 0,
``dt`` only for cells that integrate it (LTC, CfC).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

__all__ = ["DeployActor", "ExportError", "build_actor", "ActorSpec"]

# Cells whose dynamics take the elapsed time as an input of the exported file (LSTM has
# none; Liquid-S4's step is exported for its fixed step_time, see liquid_s4_step).
_DT_CELLS = ("ltc", "cfc")
_EXPORTABLE_CELLS = ("ltc", "cfc", "lstm", "liquid_s4")


class ExportError(ValueError):
    """The agent cannot be exported (unsupported policy, space or cell)."""


@dataclass
class ActorSpec:
    """What the exported file's inputs and outputs mean (written into its metadata)."""

    obs_shape: tuple[int, ...]
    state_size: int
    uses_dt: bool
    dt_unit: float = 1.0
    dt_default: float = 1.0
    discrete: bool = False
    kind: str = ""
    frame_stack: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        names = ["obs"]
        if self.state_size:
            names += ["state", "episode_start"]
        if self.uses_dt:
            names.append("dt")
        return names

    @property
    def output_names(self) -> list[str]:
        return ["action", "next_state"] if self.state_size else ["action"]


def _eager(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in eval mode whose LTC and CfC cells run their pure-PyTorch
    reference step: the native C++ kernel cannot be traced, and the fused no-grad paths
    write into preallocated buffers (``out=``, in-place slices), which the ONNX tracer
    records wrongly."""
    module = copy.deepcopy(module).cpu().eval().requires_grad_(False)
    for m in module.modules():
        if isinstance(getattr(m, "kernel", None), str):
            m.kernel = "eager"
        if isinstance(getattr(m, "fused", None), bool):
            m.fused = False
    return module


def _real_s4(owner: nn.Module, step_time: float) -> None:
    """Replace each Liquid-S4 model under ``owner`` by its real-arithmetic step form."""
    from liquid_rl.core import LiquidS4Core
    from liquid_rl.export.liquid_s4_step import RealLiquidS4Step

    for m in owner.modules():
        if isinstance(m, LiquidS4Core) and not isinstance(m.model, RealLiquidS4Step):
            m.model = RealLiquidS4Step(m.model, step_time)


class ObsNormalizer(nn.Module):
    """VecNormalize's observation transform with frozen statistics: obs (B, D) -> (B, D)."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, epsilon: float, clip: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(1.0 / np.sqrt(np.asarray(var) + epsilon), dtype=torch.float32))
        self.clip = float(clip)

    def forward(self, obs: Tensor) -> Tensor:
        return torch.clamp((obs - self.mean) * self.scale, -self.clip, self.clip)


class ActionHead(nn.Module):
    """Policy output -> env action: Box clip (PPO) or tanh rescale (SAC/TD3); Discrete argmax."""

    def __init__(self, action_space: spaces.Space, squashed: bool) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.squashed = squashed
        if isinstance(action_space, spaces.Box):
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
            self.shape = tuple(action_space.shape)
        elif self.discrete:
            self.start = int(action_space.start)
        else:
            raise ExportError(f"cannot export the action space {action_space}: only Box and Discrete are supported")

    def forward(self, out: Tensor) -> Tensor:
        if self.discrete:
            return torch.argmax(out, dim=-1) + self.start
        out = out.reshape(out.shape[0], *self.shape)
        if self.squashed:  # out is tanh(.) in [-1, 1]
            return self.low + 0.5 * (out + 1.0) * (self.high - self.low)
        return torch.maximum(torch.minimum(out, self.high), self.low)


class DeployActor(nn.Module):
    """``obs -> action`` of a trained agent, with its memory explicit (see module docstring).

    Parts: ``normalizer`` (or None), ``frame_stack`` K, ``body`` (a :class:`Body`: normalised
    stacked obs, core state, timespans -> policy output, core state) and ``head``.
    """

    def __init__(self, spec: ActorSpec, body: "Body", head: ActionHead, normalizer: ObsNormalizer | None,
                 step_time: float) -> None:
        super().__init__()
        self.spec, self.body, self.head, self.normalizer = spec, body, head, normalizer
        self.k = spec.frame_stack
        self.frame = int(np.prod(spec.obs_shape))
        self.window = (self.k - 1) * self.frame if self.k > 1 else 0  # older frames kept in the state
        self.dt_unit, self.step_time = float(spec.dt_unit), float(step_time)

    def forward(self, obs: Tensor, state: Tensor | None = None, episode_start: Tensor | None = None,
                dt: Tensor | None = None) -> tuple[Tensor, ...]:
        x = obs.float()
        if self.normalizer is not None:
            x = self.normalizer(x)
        core_state = None
        if self.spec.state_size:
            assert state is not None and episode_start is not None
            state = state * (1.0 - episode_start.float().reshape(-1, 1))
            if self.k > 1:
                # VecFrameStack: the window (oldest frame first) shifts by one frame
                x = torch.cat([state[:, : self.window], x.reshape(x.shape[0], -1)], dim=1)
                core_state = state[:, self.window:] if self.body.core_state_size else None
            else:
                core_state = state
        ts = None
        if self.spec.uses_dt:
            assert dt is not None
            dt = dt.reshape(-1, 1).float()
            ts = torch.where(dt > 0, dt / self.dt_unit, torch.full_like(dt, self.step_time))
        out, core_state = self.body(x, core_state, ts)
        action = self.head(out)
        if not self.spec.state_size:
            return (action,)
        parts = ([x[:, self.frame:]] if self.k > 1 else []) + ([core_state] if core_state is not None else [])
        return action, torch.cat(parts, dim=1)


class Body(nn.Module):
    """Normalised observation (B, ...), core state (B, S_core) or None, timespans (B, 1) or
    None -> (policy output (B, A), next core state or None)."""

    core_state_size = 0


class StatelessBody(Body):
    """An MLP-style policy: ``fn(obs)``, e.g. the actor's deterministic action."""

    def __init__(self, policy: nn.Module, kind: str, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.policy, self.kind, self.obs_shape = policy, kind, obs_shape

    def forward(self, x: Tensor, state: Tensor | None, ts: Tensor | None) -> tuple[Tensor, None]:
        x = x.reshape(x.shape[0], *self.obs_shape)
        p = self.policy
        if self.kind == "sac":
            mean, _, _ = p.actor.get_action_dist_params(x)
            return torch.tanh(mean), None
        if self.kind == "td3":
            return p.actor(x), None
        features = p.extract_features(x, p.pi_features_extractor) if hasattr(p, "pi_features_extractor") \
            else p.extract_features(x)
        latent = p.mlp_extractor.forward_actor(features)
        return p.action_net(latent), None


class RecurrentBody(Body):
    """RecurrentPPO (a liquid core or sb3-contrib's LSTM) or RecurrentSAC's actor."""

    def __init__(self, policy: nn.Module, kind: str, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.policy, self.kind, self.obs_shape = policy, kind, obs_shape
        if kind == "liquid_ppo":
            self.core = policy.lstm_actor.core
            self.core_state_size = int(self.core.state_size)
        elif kind == "lstm_ppo":
            lstm = policy.lstm_actor
            self.layers, self.hidden = int(lstm.num_layers), int(lstm.hidden_size)
            self.core_state_size = 2 * self.layers * self.hidden
        else:  # recurrent_sac
            self.core = policy.actor.core
            self.core_state_size = int(self.core.state_size)

    def forward(self, x: Tensor, state: Tensor | None, ts: Tensor | None) -> tuple[Tensor, Tensor]:
        assert state is not None
        x = x.reshape(x.shape[0], *self.obs_shape)
        p = self.policy
        if self.kind == "lstm_ppo":
            features = p.extract_features(x, p.pi_features_extractor)
            h, c = (s.reshape(-1, self.layers, self.hidden).transpose(0, 1).contiguous() for s in state.chunk(2, 1))
            y, (h, c) = p.lstm_actor(features.unsqueeze(0), (h, c))
            state = torch.cat([h.transpose(0, 1).flatten(1), c.transpose(0, 1).flatten(1)], dim=1)
            return p.action_net(p.mlp_extractor.forward_actor(y[0])), state
        tspans = None if ts is None else ts.unsqueeze(0)
        if self.kind == "liquid_ppo":
            features = p.extract_features(x, p.pi_features_extractor)
            y, state = self.core(features.unsqueeze(0), state, tspans, None)
            return p.action_net(p.mlp_extractor.forward_actor(y[0])), state
        actor = p.actor
        features = actor.extract_features(x, actor.features_extractor)
        y, state = self.core(features.unsqueeze(0), state, tspans, None)
        mean, _ = actor.dist_params(y[0])
        return torch.tanh(mean), state


def _normalizer(agent: Any) -> ObsNormalizer | None:
    norm = agent.normalization
    if not norm or not norm.get("norm_obs", True):
        return None
    rms = norm["obs_rms"]
    if not isinstance(rms, dict) or "mean" not in rms:
        raise ExportError("cannot export normalisation statistics of a Dict observation space")
    return ObsNormalizer(np.asarray(rms["mean"]), np.asarray(rms["var"]), float(norm["epsilon"]),
                         float(norm["clip_obs"]))


def _cell_of(module: nn.Module) -> str:
    """"ltc", "cfc", "lstm" or "liquid_s4" for a core of ``liquid_rl.cells``."""
    from liquid_rl.core import LiquidCore, LiquidS4Core, LSTMCore

    if isinstance(module, LSTMCore):
        return "lstm"
    if isinstance(module, LiquidS4Core):
        return "liquid_s4"
    if isinstance(module, LiquidCore):
        return "ltc" if type(module.rnn).__name__ == "LTC" else "cfc"
    return type(module).__name__


def build_actor(agent: Any) -> DeployActor:
    """The :class:`DeployActor` of a loaded agent (a copy; the agent is not changed).

    Raises:
        ExportError: a policy, space or cell that cannot be exported (one line saying why).
    """
    model, cfg = agent.model, agent.config
    algo = cfg["algo"]["name"]
    ptype = cfg["policy"]["type"]
    obs_space, act_space = model.observation_space, model.action_space
    if isinstance(obs_space, spaces.Dict):
        raise ExportError("cannot export a policy with a Dict observation space (export takes one Box observation)")
    if not isinstance(obs_space, spaces.Box):
        raise ExportError(f"cannot export the observation space {obs_space}: only Box observations are supported")
    from stable_baselines3.common.preprocessing import is_image_space

    if is_image_space(obs_space, check_channels=False):
        raise ExportError("cannot export a policy on image observations (vector Box observations only)")
    k = int(cfg["env"].get("frame_stack", 1) or 1)
    if k > 1 and len(obs_space.shape) != 1:
        raise ExportError(f"cannot export a frame stack over observations of shape {obs_space.shape}")
    frame_shape = (obs_space.shape[0] // k,) if k > 1 else tuple(obs_space.shape)
    policy = _eager(model.policy)
    step_time, dt_unit, uses_dt, cell = 1.0, 1.0, False, None
    if algo == "recurrent_ppo":
        if ptype == "liquid_recurrent":
            kind = "liquid_ppo"
            cell = _cell_of(policy.lstm_actor.core)
            if getattr(policy, "_dt_in_obs", False):
                raise ExportError("cannot export a policy that reads dt from a Dict observation")
            step_time, dt_unit = float(policy.step_time), float(policy.dt_unit)
            _real_s4(policy.lstm_actor, step_time)
        elif ptype == "lstm":
            kind, cell = "lstm_ppo", "lstm"
        else:
            raise ExportError(f"cannot export recurrent_ppo with policy.type {ptype!r}")
        squashed = False
    elif algo == "recurrent_sac":
        kind = "recurrent_sac"
        cell = _cell_of(policy.actor.core)
        step_time = float(policy.actor.core_spec.step_time)
        _real_s4(policy.actor, step_time)
        squashed = True
    elif algo in ("ppo", "a2c", "sac", "td3"):
        if ptype not in ("mlp", "liquid_history"):
            raise ExportError(f"cannot export {algo} with policy.type {ptype!r}")
        kind = {"sac": "sac", "td3": "td3"}.get(algo, "ppo")
        squashed = algo in ("sac", "td3")
        if ptype == "liquid_history":
            extractor = policy.actor.features_extractor if squashed else policy.pi_features_extractor
            hist_cell = _cell_of(extractor.core)
            _real_s4(extractor, float(extractor.step_time))
            if hist_cell not in _EXPORTABLE_CELLS:
                raise ExportError(f"cannot export the history extractor's cell {hist_cell!r}; "
                                  f"exportable cells: {', '.join(_EXPORTABLE_CELLS)}")
    else:
        raise ExportError(f"cannot export algo {algo!r}; exportable: ppo, a2c, sac, td3, recurrent_ppo, recurrent_sac")
    if cell is not None and cell not in _EXPORTABLE_CELLS:
        raise ExportError(f"cannot export cell {cell!r}; exportable cells: {', '.join(_EXPORTABLE_CELLS)}")
    if cell in _DT_CELLS:
        uses_dt = True
    if kind in ("sac", "td3") and not isinstance(act_space, spaces.Box):
        raise ExportError(f"{algo} needs a Box action space, got {act_space}")
    if getattr(policy, "squash_output", False) and kind in ("ppo", "liquid_ppo", "lstm_ppo"):
        raise ExportError("cannot export a PPO policy with squash_output=True")
    body: Body = RecurrentBody(policy, kind, tuple(obs_space.shape)) if kind in ("liquid_ppo", "lstm_ppo",
                                                                                  "recurrent_sac") \
        else StatelessBody(policy, kind, tuple(obs_space.shape))
    state_size = body.core_state_size + (k - 1) * int(np.prod(frame_shape))
    spec = ActorSpec(obs_shape=frame_shape, state_size=state_size, uses_dt=uses_dt, dt_unit=dt_unit,
                     dt_default=dt_unit * step_time, discrete=isinstance(act_space, spaces.Discrete), kind=kind,
                     frame_stack=k, details={"cell": cell, "core_state_size": body.core_state_size,
                                             "step_time": step_time})
    return DeployActor(spec, body, ActionHead(act_space, squashed), _normalizer(agent), step_time).eval()


def example_inputs(spec: ActorSpec, batch: int = 2) -> tuple[Tensor, ...]:
    """Inputs of the right shapes for tracing: (obs, [state, episode_start], [dt])."""
    args: list[Tensor] = [torch.zeros(batch, *spec.obs_shape)]
    if spec.state_size:
        args += [torch.zeros(batch, spec.state_size), torch.ones(batch)]
    if spec.uses_dt:
        args.append(torch.full((batch, 1), spec.dt_default))
    return tuple(args)
