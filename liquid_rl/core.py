"""Recurrent cores: the interface, the cells by name, and one spec that builds them.

A core maps ``forward(x (T, B, I), state (B, S), timespans (T, B, 1) | float | None,
resets (T, B) bool | None) -> (y (T, B, O), state (B, S))``, time-major. The state is
one flat tensor whatever the cell carries (an LSTM's (h, c) or a mixed-memory LTC's are
packed side by side), so that policies and replay buffers store one array per step.
Every core is a :class:`Core`; diagnostics find cores with ``isinstance``.

:class:`CoreSpec` is a core's description (cell, units, wiring, output size, cell
options, step time), checked once when it is made; ``spec.build(input_size)`` is the
one place a core is built. ``LiquidRecurrentPolicy``, ``LiquidHistoryExtractor`` and
``RecurrentSAC`` all build their cores through it. A new cell is one function
``f(input_size, units, wiring, output_size, **options) -> Core`` added to ``CELLS``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from liquid_rl.cfc import CfC
from liquid_rl.liquid_s4 import LiquidS4
from liquid_rl.ltc import LTC
from liquid_rl.wirings import AutoNCP, FullyConnected, Random, Wiring, as_wiring, is_ncps_wiring

__all__ = ["Core", "LiquidCore", "LSTMCore", "LiquidS4Core", "CELLS", "WIRINGS", "CoreSpec", "build_core",
           "make_wiring", "action_output_size", "check_cell", "check_wiring", "check_step_time", "step_timespan"]

WIRINGS = ("full", "ncp", "random")
WiringArg = str | Wiring | dict[str, Any]


class Core(nn.Module):
    """Base class of recurrent cores (see the module docstring for ``forward``).

    Attributes: ``input_size`` I, ``state_size`` S (flat state), ``output_size`` O.
    """

    input_size: int
    state_size: int
    output_size: int

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | float | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """The zero state, (batch, S)."""
        return torch.zeros(batch, self.state_size, device=device)


# --- checks (each error message is written here once) ---------------------------------
def check_cell(cell: Any) -> str:
    """``cell`` if it names a cell of ``CELLS``; ValueError otherwise."""
    if not isinstance(cell, str) or cell not in CELLS:
        raise ValueError(f"Unknown cell {cell!r}; choose one of {sorted(CELLS)}")
    return cell


def check_wiring(wiring: Any) -> WiringArg:
    """``wiring`` if it is a wiring name, a Wiring or a ``Wiring.to_config()`` dict."""
    if isinstance(wiring, (Wiring, dict)) or wiring in WIRINGS:
        return wiring
    raise ValueError(f"Unknown wiring {wiring!r}; choose one of {list(WIRINGS)} or pass a liquid_rl.wirings.Wiring")


def check_units(units: Any) -> int:
    """``units`` as an int; ValueError unless a positive integer."""
    if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
        raise ValueError(f"units must be a positive integer, got {units!r}")
    return int(units)


def check_step_time(step_time: Any) -> float:
    """``step_time`` (cell time of one env step without a dt entry) as a float; ValueError
    unless finite and > 0."""
    if isinstance(step_time, bool) or not isinstance(step_time, (int, float, np.number)) \
            or not (float(step_time) > 0 and np.isfinite(step_time)):
        raise ValueError(f"step_time must be a finite number > 0 (cell time per env step), got {step_time!r}")
    return float(step_time)


def step_timespan(step_time: float) -> float | None:
    """The cores' ``timespans`` argument for a constant ``step_time``: None for ncps' unit
    step (the cores' path without elapsed times), else the number."""
    return None if step_time == 1.0 else float(step_time)


def fresh_wiring(wiring: WiringArg) -> str | Wiring:
    """A wiring name, a copy of a Wiring (so that each core owns its own) or a Wiring
    rebuilt from its ``to_config()`` dict (which keeps policy_kwargs JSON-friendly)."""
    wiring = check_wiring(wiring)
    if isinstance(wiring, dict):
        return Wiring.from_config(wiring)
    if isinstance(wiring, Wiring):
        return copy.deepcopy(wiring)
    return wiring


def make_wiring(wiring: str | Wiring, units: int, output_size: int, seed: int = 22222,
                sparsity_level: float = 0.5) -> Wiring:
    """A wiring by name: "full" (FullyConnected, ``output_size`` motor neurons),
    "ncp" (AutoNCP(units, output_size, sparsity_level)) or "random"; a Wiring passes through."""
    if isinstance(wiring, Wiring) or is_ncps_wiring(wiring):
        return as_wiring(wiring)  # an ncps wiring is converted
    check_wiring(wiring)
    if wiring == "full":
        return FullyConnected(units, output_dim=output_size, erev_init_seed=seed)
    if wiring == "ncp":
        return AutoNCP(units, output_size, sparsity_level=sparsity_level, seed=seed)
    return Random(units, output_dim=output_size, sparsity_level=sparsity_level, random_seed=seed)


def action_output_size(action_space: spaces.Space) -> int:
    """Numbers a policy emits for ``action_space`` (Box: its size; Discrete: n logits;
    MultiDiscrete: sum of logits; MultiBinary: n): the default output size of a wired core."""
    if isinstance(action_space, spaces.Box):
        return int(np.prod(action_space.shape))
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return int(np.prod(action_space.shape))
    raise ValueError(f"Unsupported action space {action_space}")


# --- the cores ------------------------------------------------------------------------
class LiquidCore(Core):
    """Wraps an LTC or CfC (time-major) behind the flat-state core interface."""

    def __init__(self, rnn: LTC | CfC) -> None:
        super().__init__()
        if rnn.batch_first or not rnn.return_sequences:
            raise ValueError("A core needs a time-major RNN that returns sequences")
        self.rnn = rnn
        self.input_size = rnn.input_size
        self.hidden_size = rnn.state_size
        self.state_size = rnn.state_size * (2 if rnn.use_mixed else 1)
        self.output_size = getattr(rnn, "proj_size", None) or rnn.output_size
        # A wired CfC returns its whole last layer; with a one-layer wiring (random, full)
        # that is every neuron, of which the first output_size are the motor neurons.
        wiring = getattr(rnn, "wiring", None) if getattr(rnn, "wired_mode", False) else None
        self._motor_slice = wiring is not None and wiring.layer_sizes[-1] != self.output_size

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | float | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        hx: Any = state.chunk(2, dim=-1) if self.rnn.use_mixed else state
        y, hx = self.rnn(x, hx, timespans=timespans, resets=resets)
        if self._motor_slice:
            y = y[..., : self.output_size]
        return y, (torch.cat(hx, dim=-1) if self.rnn.use_mixed else hx)


class LSTMCore(Core):
    """``nn.LSTM`` (one layer) behind the core interface; the state packs [h, c]."""

    def __init__(self, input_size: int, units: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, units)
        self.input_size, self.hidden_size = input_size, units
        self.state_size, self.output_size = 2 * units, units

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | float | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h, c = (s.unsqueeze(0).contiguous() for s in state.chunk(2, dim=-1))
        if resets is None or not bool(resets[1:].any()):
            if resets is not None:
                keep = (~resets[0].bool()).to(x.dtype).view(1, -1, 1)
                h, c = h * keep, c * keep
            y, (h, c) = self.lstm(x, (h, c))
        else:  # episode starts inside the sequence: step so the state can be zeroed there
            keep = (~resets.bool()).to(x.dtype).unsqueeze(-1)
            ys = []
            for t in range(x.shape[0]):
                h, c = h * keep[t], c * keep[t]
                y_t, (h, c) = self.lstm(x[t: t + 1], (h, c))
                ys.append(y_t)
            y = torch.cat(ys)
        return y, torch.cat([h[0], c[0]], dim=-1)


class LiquidS4Core(Core):
    """``liquid_rl.liquid_s4.LiquidS4`` (time-major) behind the core interface; its state is
    already one flat vector per sample."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.batch_first or not model.return_sequences:
            raise ValueError("A core needs a time-major LiquidS4 that returns sequences")
        self.model = model
        self.input_size, self.output_size = model.input_size, model.output_size
        self.state_size = model.state_size

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | float | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.model(x, state, timespans=timespans, resets=resets)


def _ltc(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
         seed: int = 22222, sparsity_level: float = 0.5, **options: Any) -> Core:
    w = make_wiring(wiring, units, output_size or units, seed, sparsity_level)
    return LiquidCore(LTC(input_size, w, batch_first=False, **options))


def _cfc(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
         seed: int = 22222, sparsity_level: float = 0.5, **options: Any) -> Core:
    if wiring == "full" and output_size in (None, units):
        return LiquidCore(CfC(input_size, units, batch_first=False, **options))
    if wiring == "full":  # a fully connected CfC with fewer outputs: project
        return LiquidCore(CfC(input_size, units, proj_size=output_size, batch_first=False, **options))
    w = make_wiring(wiring, units, output_size or units, seed, sparsity_level)
    return LiquidCore(CfC(input_size, w, batch_first=False, **options))


def _lstm(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
          **options: Any) -> Core:
    if options:
        raise ValueError(f"Unknown option(s) for cell 'lstm': {sorted(options)}")
    if wiring != "full":
        raise ValueError("cell 'lstm' takes only wiring='full'")
    return LSTMCore(input_size, units)


def _liquid_s4(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
               **options: Any) -> Core:
    """Liquid-S4 with ``units`` channels (d_model); options: d_state, n_layers, liquid_degree, ..."""
    if wiring != "full":
        raise ValueError("cell 'liquid_s4' takes only wiring='full'")
    return LiquidS4Core(LiquidS4(input_size, d_model=units, output_size=output_size, batch_first=False,
                                 return_sequences=True, **options))


CELLS: dict[str, Callable[..., Core]] = {"ltc": _ltc, "cfc": _cfc, "lstm": _lstm, "liquid_s4": _liquid_s4}


def build_core(cell: str, input_size: int, units: int, wiring: str | Wiring = "full",
               output_size: int | None = None, **options: Any) -> Core:
    """Build a recurrent core by name (no defaults resolved; :meth:`CoreSpec.build` is the
    checked path the policies use).

    Args:
        cell: a key of ``CELLS`` ("ltc", "cfc", "lstm", ...).
        input_size: features per step I.
        units: neurons / hidden units.
        wiring: "full", "ncp", "random" or a Wiring (LTC, CfC).
        output_size: motor neurons O (default: units for "full").
        options: the cell's own options (ode_unfolds, solver, mode, mixed_memory, ...).
    """
    check_cell(cell)
    try:
        return CELLS[cell](input_size, units, wiring=wiring, output_size=output_size, **options)
    except TypeError as e:  # an unknown keyword reaches a constructor
        raise ValueError(f"Bad option for cell {cell!r}: {e}") from None


def _output_size(cell: str, units: int, wiring: WiringArg, output_size: Any, default_wired: int) -> int:
    """See :meth:`CoreSpec.create`."""
    if cell == "lstm":
        if output_size not in (None, units):
            raise ValueError(f"cell 'lstm' outputs its {units} units; drop output_size={output_size}")
        return units
    if output_size is not None:
        if isinstance(output_size, bool) or not isinstance(output_size, (int, np.integer)) or output_size < 1:
            raise ValueError(f"output_size must be a positive integer, got {output_size}")
        return int(output_size)
    if isinstance(wiring, dict):
        return int(wiring["output_dim"])
    if isinstance(wiring, Wiring):
        if wiring.output_dim is None:
            raise ValueError("The wiring has no output size: set its motor neurons (set_output_dim)")
        return int(wiring.output_dim)
    if wiring == "full":
        return units
    return max(1, min(default_wired, units - 3))


@dataclass(frozen=True)
class CoreSpec:
    """A checked description of a recurrent core; make it with :meth:`create`.

    Attributes:
        cell: a key of ``CELLS``.
        units: neurons / hidden units (Liquid-S4: d_model).
        wiring: "full", "ncp", "random", a Wiring or its ``to_config()`` dict (copied
            for each core built).
        output_size: outputs O (motor neurons), resolved.
        options: the cell's own options (ode_unfolds, solver, mode, seed, ...).
        step_time: cell time of one env step (1.0: ncps' unit step).
    """

    cell: str
    units: int
    wiring: WiringArg
    output_size: int
    options: dict[str, Any] = field(default_factory=dict)
    step_time: float = 1.0

    @classmethod
    def create(cls, cell: str, units: int, wiring: WiringArg = "full", output_size: int | None = None,
               options: dict[str, Any] | None = None, default_wired: int = 1,
               step_time: float = 1.0) -> "CoreSpec":
        """Check the arguments (ValueError, one line) and resolve ``output_size``: given;
        else all ``units`` for "full", ``default_wired`` for "ncp"/"random" (kept below
        ``units - 2`` as AutoNCP needs), the motor count of a Wiring; an LSTM outputs its units."""
        check_cell(cell)
        units = check_units(units)
        check_wiring(wiring)
        out = _output_size(cell, units, wiring, output_size, default_wired)
        return cls(cell, units, wiring, out, dict(options or {}), check_step_time(step_time))

    @property
    def timespan(self) -> float | None:
        """The cores' ``timespans`` argument for one env step (None: one unit)."""
        return step_timespan(self.step_time)

    def build(self, input_size: int) -> Core:
        """A fresh core reading ``input_size`` features per step."""
        core = build_core(self.cell, input_size, self.units, wiring=fresh_wiring(self.wiring),
                          output_size=None if self.cell == "lstm" else self.output_size, **self.options)
        if core.output_size != self.output_size:
            raise ValueError(f"cell {self.cell!r} outputs {core.output_size} features, "
                             f"expected output_size={self.output_size}")
        return core
