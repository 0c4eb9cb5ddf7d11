"""Recurrent cores by name: the one place where "ltc", "cfc", "lstm" (and later
"liquid_s4") become modules with a common, time-major interface.

A core maps ``forward(x (T, B, I), state (B, S), timespans (T, B, 1) | None,
resets (T, B) bool | None) -> (y (T, B, O), state (B, S))``. The state is one flat
tensor whatever the cell carries (an LSTM's (h, c) or a mixed-memory LTC's are packed
side by side), so that policies and replay buffers store one array per step.
Policies, history extractors and recurrent SAC build their cells here; a new cell is one
function ``f(input_size, units, wiring, output_size, **options) -> core`` added to ``CELLS``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from liquid_rl.cfc import CfC
from liquid_rl.ltc import LTC
from liquid_rl.wirings import NCP, AutoNCP, FullyConnected, Random, Wiring

WIRINGS = ("full", "ncp", "random")


def make_wiring(wiring: str | Wiring, units: int, output_size: int, seed: int = 22222,
                sparsity_level: float = 0.5) -> Wiring:
    """A wiring by name: "full" (FullyConnected, ``output_size`` motor neurons),
    "ncp" (AutoNCP(units, output_size, sparsity_level)) or "random"; a Wiring passes through."""
    if isinstance(wiring, Wiring):
        return wiring
    if wiring == "full":
        return FullyConnected(units, output_dim=output_size, erev_init_seed=seed)
    if wiring == "ncp":
        return AutoNCP(units, output_size, sparsity_level=sparsity_level, seed=seed)
    if wiring == "random":
        return Random(units, output_dim=output_size, sparsity_level=sparsity_level, random_seed=seed)
    raise ValueError(f"Unknown wiring {wiring!r}; choose one of {list(WIRINGS)} or pass a liquid_rl.wirings.Wiring")


class LiquidCore(nn.Module):
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

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        hx: Any = state.chunk(2, dim=-1) if self.rnn.use_mixed else state
        y, hx = self.rnn(x, hx, timespans=timespans, resets=resets)
        if self._motor_slice:
            y = y[..., : self.output_size]
        return y, (torch.cat(hx, dim=-1) if self.rnn.use_mixed else hx)


class LSTMCore(nn.Module):
    """``nn.LSTM`` (one layer) behind the core interface; the state packs [h, c]."""

    def __init__(self, input_size: int, units: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, units)
        self.input_size, self.hidden_size = input_size, units
        self.state_size, self.output_size = 2 * units, units

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | None = None,
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


def _ltc(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
         seed: int = 22222, sparsity_level: float = 0.5, **options: Any) -> nn.Module:
    w = make_wiring(wiring, units, output_size or units, seed, sparsity_level)
    return LiquidCore(LTC(input_size, w, batch_first=False, **options))


def _cfc(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
         seed: int = 22222, sparsity_level: float = 0.5, **options: Any) -> nn.Module:
    if wiring == "full" and output_size in (None, units):
        return LiquidCore(CfC(input_size, units, batch_first=False, **options))
    if wiring == "full":  # a fully connected CfC with fewer outputs: project
        return LiquidCore(CfC(input_size, units, proj_size=output_size, batch_first=False, **options))
    w = make_wiring(wiring, units, output_size or units, seed, sparsity_level)
    return LiquidCore(CfC(input_size, w, batch_first=False, **options))


def _lstm(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
          **options: Any) -> nn.Module:
    if options:
        raise ValueError(f"Unknown option(s) for cell 'lstm': {sorted(options)}")
    if wiring != "full":
        raise ValueError("cell 'lstm' takes only wiring='full'")
    return LSTMCore(input_size, units)


class LiquidS4Core(nn.Module):
    """``liquid_rl.liquid_s4.LiquidS4`` (time-major) behind the core interface; its state is
    already one flat vector per sample."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.batch_first or not model.return_sequences:
            raise ValueError("A core needs a time-major LiquidS4 that returns sequences")
        self.model = model
        self.input_size, self.output_size = model.input_size, model.output_size
        self.state_size = model.state_size

    def forward(self, x: Tensor, state: Tensor, timespans: Tensor | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.model(x, state, timespans=timespans, resets=resets)


def _liquid_s4(input_size: int, units: int, wiring: str | Wiring = "full", output_size: int | None = None,
               **options: Any) -> nn.Module:
    """Liquid-S4 with ``units`` channels (d_model); options: d_state, n_layers, liquid_degree, ..."""
    from liquid_rl.liquid_s4 import LiquidS4

    if wiring != "full":
        raise ValueError("cell 'liquid_s4' takes only wiring='full'")
    return LiquidS4Core(LiquidS4(input_size, d_model=units, output_size=output_size, batch_first=False,
                                 return_sequences=True, **options))


CELLS: dict[str, Callable[..., nn.Module]] = {"ltc": _ltc, "cfc": _cfc, "lstm": _lstm, "liquid_s4": _liquid_s4}


def build_core(cell: str, input_size: int, units: int, wiring: str | Wiring = "full",
               output_size: int | None = None, **options: Any) -> nn.Module:
    """Build a recurrent core by name.

    Args:
        cell: a key of ``CELLS`` ("ltc", "cfc", "lstm", ...).
        input_size: features per step I.
        units: neurons / hidden units.
        wiring: "full", "ncp", "random" or a Wiring (LTC, CfC).
        output_size: motor neurons O (default: units for "full").
        options: the cell's own options (ode_unfolds, solver, mode, mixed_memory, ...).
    """
    if cell not in CELLS:
        raise ValueError(f"Unknown cell {cell!r}; choose one of {sorted(CELLS)}")
    try:
        return CELLS[cell](input_size, units, wiring=wiring, output_size=output_size, **options)
    except TypeError as e:  # an unknown keyword reaches a constructor
        raise ValueError(f"Bad option for cell {cell!r}: {e}") from None
