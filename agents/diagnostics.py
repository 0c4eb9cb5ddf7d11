"""Looking inside a policy's recurrent cores while it runs.

:class:`CoreRecorder` puts forward hooks on the recurrent cores of a policy (the liquid
cores, ``liquid_rl.core.Core``, and ``nn.LSTM`` for the baselines) and keeps, per core, the
latest input and state; optionally every state (for activity plots). The
:class:`LiquidDiagnosticsCallback` turns those into TensorBoard scalars during training:
effective time constants of LTC neurons (``LTCCell.time_constants``) and state norms.
Policies without a recurrent core have nothing to hook, and the callback does nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from torch import Tensor, nn

from liquid_rl.core import Core
from liquid_rl.wirings import Wiring

__all__ = ["find_cores", "core_wiring", "core_neurons", "core_statistics", "core_label", "CoreRecorder",
           "LiquidDiagnosticsCallback"]


def _is_core(module: nn.Module) -> bool:
    """A flat-state core (``liquid_rl.core.Core``) or an ``nn.LSTM`` of the baselines."""
    return isinstance(module, (Core, nn.LSTM))


def find_cores(module: nn.Module) -> dict[str, nn.Module]:
    """The outermost recurrent cores inside ``module``, by qualified name."""
    found: dict[str, nn.Module] = {}
    for name, m in module.named_modules():
        if any(name.startswith(f"{k}.") for k in found):
            continue
        if _is_core(m):
            found[name or type(m).__name__] = m
    return found


def _rnn(core: nn.Module) -> Any:
    return getattr(core, "rnn", None)


def core_wiring(core: nn.Module) -> Wiring | None:
    """The wiring of an LTC or CfC core (None for LSTM, Liquid-S4 and unwired CfC)."""
    w = getattr(_rnn(core), "wiring", None)
    return w if isinstance(w, Wiring) else None


def core_neurons(core: nn.Module, state: Tensor) -> Tensor:
    """The neuron potentials (B, N) inside a core's flat state (B, S): an LTC/CfC with
    mixed memory keeps [v, c]; an LSTM core packs [h, c]; ``nn.LSTM`` is given h."""
    if isinstance(core, nn.LSTM):
        return state
    n = getattr(core, "hidden_size", None) or getattr(core, "state_size", state.shape[-1])
    return state[..., : int(n)]


@torch.no_grad()
def core_statistics(core: nn.Module, inputs: Tensor | None, state: Tensor) -> dict[str, float]:
    """Scalars describing a core at (inputs (B, I), state (B, S)): ``state_norm`` (mean L2
    norm of the neuron vector), ``state_absmax`` and, for LTC, ``tau_mean``, ``tau_min``,
    ``tau_max`` (effective time constants, in env steps)."""
    v = core_neurons(core, state).float()
    stats = {"state_norm": float(v.norm(dim=-1).mean()), "state_absmax": float(v.abs().max())}
    cell = getattr(_rnn(core), "rnn_cell", None)
    if cell is not None and hasattr(cell, "time_constants"):
        tau = cell.time_constants(v, inputs.float() if inputs is not None else None)
        tau = tau[torch.isfinite(tau)]
        if tau.numel():
            stats.update(tau_mean=float(tau.mean()), tau_min=float(tau.min()), tau_max=float(tau.max()))
    return stats


class CoreRecorder:
    """Forward hooks on the recurrent cores of ``module``.

    ``latest[name]`` is ``(inputs (B, I) of the last step, state (B, S) after it)`` of the
    core's latest call. With ``keep_history=True``, ``history[name]`` lists the state after
    every call (as numpy arrays) and ``fired`` the order of calls. Use as a context manager
    or call :meth:`remove`.
    """

    def __init__(self, module: nn.Module, keep_history: bool = False) -> None:
        self.cores = find_cores(module)
        self.keep_history = keep_history
        self.latest: dict[str, tuple[Tensor | None, Tensor]] = {}
        self.history: dict[str, list[np.ndarray]] = {name: [] for name in self.cores}
        self.fired: list[str] = []
        self._handles = [core.register_forward_hook(self._hook(name)) for name, core in self.cores.items()]

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            x = args[0] if args and isinstance(args[0], Tensor) else None
            if isinstance(module, nn.LSTM):
                state = output[1][0][-1]  # h of the last layer (B, H)
            else:
                state = output[1]
            if not isinstance(state, Tensor):
                return
            x_last = x[-1].detach() if x is not None and x.dim() == 3 else None
            self.latest[name] = (x_last, state.detach())
            if self.keep_history:
                self.history[name].append(state.detach().cpu().numpy().copy())
                self.fired.append(name)

        return hook

    def clear(self) -> None:
        self.latest.clear()
        self.fired.clear()
        for h in self.history.values():
            h.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "CoreRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class LiquidDiagnosticsCallback(BaseCallback):
    """Every ``every`` env steps, write ``liquid/<core>/<statistic>`` (see
    :func:`core_statistics`) for each recurrent core of the policy to TensorBoard (the
    SB3 logger's writer; ``liquid/<statistic>`` when there is one core). The statistics
    are those of the cores' latest call (acting in the env, or a training batch). Does
    nothing for policies without cores."""

    def __init__(self, every: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.every = int(every)
        self.recorder: CoreRecorder | None = None
        self._next = 0

    def _on_training_start(self) -> None:
        self.recorder = CoreRecorder(self.model.policy)
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.recorder is None or not self.recorder.cores or self.num_timesteps < self._next:
            return True
        self._next = (self.num_timesteps // self.every + 1) * self.every
        many = len(self.recorder.cores) > 1
        for name, (x, state) in list(self.recorder.latest.items()):
            core = self.recorder.cores[name]
            try:
                stats = core_statistics(core, x, state)
            except (RuntimeError, ValueError):  # shapes the cell does not take: skip, never break training
                continue
            tag = f"liquid/{core_label(name)}" if many else "liquid"
            for key, value in stats.items():
                self._write(f"{tag}/{key}", value)
        return True

    def _write(self, tag: str, value: float) -> None:
        """Straight to TensorBoard at the current step (SB3's ``record`` would stamp it
        with the step of the algorithm's next log dump, and keep only the last value)."""
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_scalar(tag, value, self.num_timesteps)
                return
        self.logger.record(tag, value)

    def _on_training_end(self) -> None:
        if self.recorder is not None:
            self.recorder.remove()


def core_label(name: str) -> str:
    """"lstm_actor.core" -> "actor"; "critic.qf0.core" -> "critic_qf0"."""
    parts = [p.removeprefix("lstm_") for p in name.split(".") if p not in ("core", "rnn", "features_extractor")]
    return "_".join(parts) or name
