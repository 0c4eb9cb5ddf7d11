"""Closed-form continuous-time (CfC) cells and RNN, parameterised as ncps 1.0.1.

    x_b = backbone([input, h])                 (B, backbone_units), lecun_tanh by default
    ff1, ff2, t_a, t_b = linear heads of x_b   (B, H) each
    g   = sigmoid(t_a * t + t_b)               t = elapsed time
    h'  = tanh(ff1) * (1 - g) + g * tanh(ff2)  mode "default"
    h'  = tanh(ff1) + g * tanh(ff2)            mode "no_gate"
    h'  = -A exp(-t (|w_tau| + |ff1|)) ff1 + A mode "pure"

A wired CfC (NCP wiring) runs one CfC block without backbone per layer (inter,
command, motor), ff1/ff2 masked by the wiring. Module and parameter names equal ncps'.

The sequence path computes the input part of the first linear map for all steps in one
matrix product, so a step costs one (B, H) x (H, U) product plus the heads.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_rl.cfc_fused import FusedCfC, recurrence
from liquid_rl.inference_cache import cached
from liquid_rl.sequence import LiquidSequence, LSTMCell, check_timespans
from liquid_rl.threads import one_thread_if_small
from liquid_rl.wirings import WiredSizes, Wiring, as_wiring

MODES = ("default", "pure", "no_gate")


class LeCun(nn.Module):
    """lecun_tanh(x) = 1.7159 tanh(0.666 x)."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "lecun_tanh": LeCun, "tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU,
}


class CfCCell(nn.Module):
    """One CfC step: ``forward(input (B, I), hx (B, H), ts) -> (h (B, H), h (B, H))``.

    Args:
        input_size: I; hidden_size: H.
        mode: "default", "no_gate" or "pure".
        backbone_activation: one of ``ACTIVATIONS``.
        backbone_units, backbone_layers, backbone_dropout: the shared backbone over [x, h];
            0 layers feeds [x, h] to the heads directly.
        sparsity_mask: (I + H, H) array masking ff1/ff2 (wired CfC), or None.
    """

    def __init__(self, input_size: int, hidden_size: int, mode: str = "default",
                 backbone_activation: str = "lecun_tanh", backbone_units: int = 128,
                 backbone_layers: int = 1, backbone_dropout: float = 0.0,
                 sparsity_mask: np.ndarray | None = None) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Unknown CfC mode {mode!r}; choose one of {list(MODES)}")
        if backbone_activation not in ACTIVATIONS:
            raise ValueError(f"Unknown backbone activation {backbone_activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if backbone_layers < 0 or (backbone_layers > 0 and backbone_units < 1):
            raise ValueError(f"backbone_layers must be >= 0 and backbone_units >= 1; got {backbone_layers}, {backbone_units}")
        if not 0.0 <= backbone_dropout < 1.0:
            raise ValueError(f"backbone_dropout must be in [0, 1), got {backbone_dropout}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.mode = mode
        self.fused = True  # use the fused recurrence where it applies (same numbers)
        self.backbone_layers = int(backbone_layers)
        self.sparsity_mask = None if sparsity_mask is None else nn.Parameter(
            torch.from_numpy(np.abs(np.asarray(sparsity_mask).T).astype(np.float32)), requires_grad=False)
        act = ACTIVATIONS[backbone_activation]
        self.backbone = None
        if backbone_layers > 0:
            layers: list[nn.Module] = [nn.Linear(input_size + hidden_size, backbone_units), act()]
            for _ in range(1, backbone_layers):
                layers += [nn.Linear(backbone_units, backbone_units), act()]
                if backbone_dropout > 0.0:
                    layers.append(nn.Dropout(backbone_dropout))
            self.backbone = nn.Sequential(*layers)
        width = hidden_size + input_size if backbone_layers == 0 else backbone_units
        self.ff1 = nn.Linear(width, hidden_size)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(1, hidden_size))
            self.A = nn.Parameter(torch.ones(1, hidden_size))
        else:
            self.ff2 = nn.Linear(width, hidden_size)
            self.time_a = nn.Linear(width, hidden_size)
            self.time_b = nn.Linear(width, hidden_size)
        for w in self.parameters():
            if w.dim() == 2 and w.requires_grad:
                nn.init.xavier_uniform_(w)

    @property
    def state_size(self) -> int:
        return self.hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def _fused_scales(self) -> tuple[float, float] | None:
        """(inner, outer) scales of the backbone activation ``outer * tanh(inner * z)`` when
        the fused kernel applies (modes default/no_gate, no backbone or one tanh-like
        layer), else None."""
        if not self.fused or self.mode == "pure":
            return None
        if self.backbone is None:
            return 1.0, 1.0
        if self.backbone_layers == 1:
            act = self.backbone[1]
            if isinstance(act, LeCun):
                return 0.666, 1.7159
            if isinstance(act, nn.Tanh):
                return 1.0, 1.0
        return None

    def _heads(self) -> tuple[Tensor, Tensor]:
        """Stacked head weights (nheads*H, width) and biases, ff1/ff2 masked."""
        w1 = self.ff1.weight if self.sparsity_mask is None else self.ff1.weight * self.sparsity_mask
        if self.mode == "pure":
            return w1, self.ff1.bias
        w2 = self.ff2.weight if self.sparsity_mask is None else self.ff2.weight * self.sparsity_mask
        weight = torch.cat([w1, w2, self.time_a.weight, self.time_b.weight])
        bias = torch.cat([self.ff1.bias, self.ff2.bias, self.time_a.bias, self.time_b.bias])
        return weight, bias

    def _combine(self, heads: Tensor, ts: Tensor | float) -> Tensor:
        """Heads (B, nheads*H) and elapsed time -> new hidden state (B, H)."""
        if self.mode == "pure":
            ff1 = heads
            return -self.A * torch.exp(-ts * (torch.abs(self.w_tau) + torch.abs(ff1))) * ff1 + self.A
        H = self.hidden_size
        # One split (not several slices): its backward is a single concatenation.
        ff, t_a, t_b = heads.split([2 * H, H, H], dim=1)
        ff1, ff2 = torch.tanh(ff).chunk(2, dim=1)
        if isinstance(ts, Tensor):
            gate = torch.sigmoid(torch.addcmul(t_b, t_a, ts))
        else:
            gate = torch.sigmoid(t_a * ts + t_b)
        if self.mode == "no_gate":
            return torch.addcmul(ff1, gate, ff2)
        return torch.addcmul(ff1, gate, ff2 - ff1)

    def _fused_weights(self, inner: float, outer: float) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
        """Weights of the fused recurrence with the activation's scales folded in:
        (input map weight, its bias, w_h (H, Z), heads W (4H, Z) or None, heads b or None)."""
        I = self.input_size
        heads_w, heads_b = self._heads()
        if self.backbone is None:
            return heads_w[:, :I], heads_b, heads_w[:, I:].t(), None, None
        first = self.backbone[0]
        return (inner * first.weight[:, :I], inner * first.bias, (inner * first.weight[:, I:]).t(),
                outer * heads_w, heads_b)

    def _cached_fused_weights(self, inner: float, outer: float) -> tuple[Tensor, ...]:
        """:meth:`_fused_weights` without grad, cached until a parameter changes or moves."""
        return cached(self, self.parameters(), lambda: tuple(
            t.contiguous() if t is not None else None for t in self._fused_weights(inner, outer)))

    def sequence(self, x: Tensor, h0: Tensor, elapsed: Tensor | None,
                 keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run over a time-major sequence.

        Args:
            x: (T, B, I); h0: (B, H); elapsed: (T, B, 1) or None (1.0 per step);
            keep: (T, B, 1) state factors before each step (0 = reset) or None.
        Returns:
            (hidden states (T, B, H), final state (B, H)).
        """
        I = self.input_size
        scales = self._fused_scales()
        if scales is not None:
            gpu = triton_recurrence(x.device)
            if gpu is not None:  # one launch per sequence each way, state on chip
                weights = self._fused_weights(*scales) if torch.is_grad_enabled() else self._cached_fused_weights(*scales)
                w_x, b_x, w_h, W, b = weights
                hs = gpu.apply(F.linear(x, w_x, b_x), h0, keep, elapsed, w_h, W, b, self.mode == "no_gate")
            elif torch.is_grad_enabled():
                w_x, b_x, w_h, W, b = self._fused_weights(*scales)
                hs = FusedCfC.apply(F.linear(x, w_x, b_x), h0, keep, elapsed, w_h, W, b, self.mode == "no_gate")
            else:  # rollouts: cached weights, no autograd bookkeeping
                w_x, b_x, w_h, W, b = self._cached_fused_weights(*scales)
                with one_thread_if_small(x.shape[1] * w_x.shape[0]):     # batch x widest layer
                    hs, _ = recurrence(F.linear(x, w_x, b_x), h0, keep, elapsed, w_h, W, b, self.mode == "no_gate")
            return hs, hs[-1]
        heads_w, heads_b = self._heads()
        if self.backbone is not None:
            first: nn.Linear = self.backbone[0]
            pre = F.linear(x, first.weight[:, :I], first.bias)           # (T, B, U)
            w_h = first.weight[:, I:].t()
            rest = self.backbone[1:]
        else:
            pre = F.linear(x, heads_w[:, :I], heads_b)                   # (T, B, nheads*H)
            w_h = heads_w[:, I:].t()
        h = h0
        outs = []
        # unbind once: indexing pre[t] per step would make the backward allocate a full
        # (T, B, U) gradient for every step.
        for t, pre_t in enumerate(pre.unbind(0)):
            if keep is not None:
                h = h * keep[t]
            z = torch.addmm(pre_t, h, w_h)
            heads = F.linear(rest(z), heads_w, heads_b) if self.backbone is not None else z
            h = self._combine(heads, 1.0 if elapsed is None else elapsed[t])
            outs.append(h)
        return torch.stack(outs), h

    def forward(self, input: Tensor, hx: Tensor, ts: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        """One step: input (B, I), hx (B, H), ts scalar or (B, 1) -> (h, h), each (B, H)."""
        if input.dim() != 2 or input.shape[1] != self.input_size:
            raise ValueError(f"CfCCell input must have shape (B, {self.input_size}); got {tuple(input.shape)}")
        if hx.shape != (input.shape[0], self.hidden_size):
            raise ValueError(f"CfCCell state must have shape ({input.shape[0]}, {self.hidden_size}); got {tuple(hx.shape)}")
        _, h = self.sequence(input.unsqueeze(0), hx, _step_elapsed(ts, input))
        return h, h


def triton_recurrence(device: torch.device) -> type[torch.autograd.Function] | None:
    """The Triton CfC recurrence (:class:`liquid_rl.kernels.triton_cfc.TritonCfC`, same
    arguments and numbers as :class:`~liquid_rl.cfc_fused.FusedCfC`) for CUDA tensors where
    Triton runs; None elsewhere, where the PyTorch recurrence runs."""
    if device.type != "cuda":
        return None
    from liquid_rl.kernels import triton_cfc  # imports Triton, an optional extra: only on CUDA

    return triton_cfc.TritonCfC if triton_cfc.triton_ltc.available() else None


def _step_elapsed(ts: Tensor | float, ref: Tensor) -> Tensor | None:
    """One step's elapsed time (scalar, (B,) or (B, 1)) -> (1, B or 1, 1), None for 1.0."""
    if not isinstance(ts, Tensor) and float(ts) == 1.0:
        return None
    e = torch.as_tensor(ts, dtype=ref.dtype, device=ref.device)
    check_timespans(e)
    return e.reshape(1, 1, 1) if e.numel() == 1 else e.reshape(1, -1, 1)


class WiredCfCCell(WiredSizes, nn.Module):
    """CfC over a layered wiring (e.g. NCP): one backbone-free CfC block per layer.

    The state (B, N) concatenates the layers in order (inter, command, motor); the
    output is the last layer's state (B, motor). ``forward(input, hx, timespans)``.
    """

    def __init__(self, input_size: int | None, wiring: Wiring, mode: str = "default") -> None:
        super().__init__()
        if input_size is not None:
            wiring.build(input_size)
        if not wiring.is_built():
            raise ValueError("The wiring has no input size: pass input_size or call wiring.build(input_dim)")
        self._wiring = wiring
        self._layers: list[CfCCell] = []
        in_features = wiring.input_dim
        for layer in range(wiring.num_layers):
            neurons = wiring.get_neurons_of_layer(layer)
            if layer == 0:
                mask = wiring.sensory_adjacency_matrix[:, neurons]
            else:
                prev = wiring.get_neurons_of_layer(layer - 1)
                mask = wiring.adjacency_matrix[:, neurons][prev, :]
            mask = np.concatenate([mask, np.ones((len(neurons), len(neurons)))], axis=0)
            cell = CfCCell(in_features, len(neurons), mode, backbone_activation="lecun_tanh",
                           backbone_units=0, backbone_layers=0, backbone_dropout=0.0, sparsity_mask=mask)
            self.register_module(f"layer_{layer}", cell)
            self._layers.append(cell)
            in_features = len(neurons)

    @property
    def layer_sizes(self) -> list[int]:
        return self._wiring.layer_sizes

    @property
    def num_layers(self) -> int:
        return self._wiring.num_layers

    def sequence(self, x: Tensor, h0: Tensor, elapsed: Tensor | None, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (T, B, I), h0 (B, N) -> (motor outputs (T, B, O), final state (B, N)).

        Layer by layer over the whole sequence: layer l's outputs for all steps are the
        inputs of layer l+1, so each layer's input map is one matrix product."""
        states = torch.split(h0, self.layer_sizes, dim=1)
        finals = []
        # +-inf -> the largest finite value: the sparsity mask's zeros would make 0 * inf = NaN,
        # where a fully connected CfC saturates (NaN stays NaN)
        big = torch.finfo(x.dtype).max
        inputs = torch.nan_to_num(x, nan=float("nan"), posinf=big, neginf=-big)
        for cell, h in zip(self._layers, states):
            inputs, h = cell.sequence(inputs, h, elapsed, keep)
            finals.append(h)
        return inputs, torch.cat(finals, dim=1)

    def forward(self, input: Tensor, hx: Tensor, timespans: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        """One step: input (B, I), hx (B, N), timespans scalar or (B, 1) -> (output (B, O), hx (B, N))."""
        if input.dim() != 2 or input.shape[1] != self.sensory_size:
            raise ValueError(f"WiredCfCCell input must have shape (B, {self.sensory_size}); got {tuple(input.shape)}")
        if hx.shape != (input.shape[0], self.state_size):
            raise ValueError(f"WiredCfCCell state must have shape ({input.shape[0]}, {self.state_size}); got {tuple(hx.shape)}")
        y, h = self.sequence(input.unsqueeze(0), hx, _step_elapsed(timespans, input))
        return y[0], h


class CfC(LiquidSequence):
    """Closed-form continuous-time RNN; a drop-in for ``ncps.torch.CfC``.

    Args:
        input_size: I.
        units: hidden size H, or a wiring (wired CfC, outputs = motor neurons).
        proj_size: if set, a linear map of the outputs to this size.
        return_sequences, batch_first, mixed_memory: as :class:`~liquid_rl.LTC`.
        mode: "default", "no_gate" or "pure".
        activation: backbone activation (not for wired).
        backbone_units, backbone_layers, backbone_dropout: defaults 128, 1, 0.0 (not for wired).

    ``forward(input, hx=None, timespans=None, resets=None) -> (output, hx)``.
    """

    def __init__(self, input_size: int, units: int | Wiring, proj_size: int | None = None,
                 return_sequences: bool = True, batch_first: bool = True, mixed_memory: bool = False,
                 mode: str = "default", activation: str = "lecun_tanh", backbone_units: int | None = None,
                 backbone_layers: int | None = None, backbone_dropout: float | None = None) -> None:
        super().__init__()
        units = as_wiring(units)  # an ncps wiring is converted
        self.input_size = int(input_size)
        self.wiring_or_units = units
        self.proj_size = proj_size
        self.batch_first = batch_first
        self.return_sequences = return_sequences
        if isinstance(units, Wiring):
            self.wired_mode = True
            for name, value in (("backbone_units", backbone_units), ("backbone_layers", backbone_layers),
                                ("backbone_dropout", backbone_dropout)):
                if value is not None:
                    raise ValueError(f"Cannot use {name} with a wiring: a wired CfC has no backbone")
            self.wiring = units
            self.state_size = units.units
            self.rnn_cell: nn.Module = WiredCfCCell(self.input_size, units, mode)
            self.output_size = units.output_dim
        else:
            self.wired_mode = False
            self.state_size = int(units)
            self.rnn_cell = CfCCell(self.input_size, self.state_size, mode, activation,
                                    128 if backbone_units is None else backbone_units,
                                    1 if backbone_layers is None else backbone_layers,
                                    0.0 if backbone_dropout is None else backbone_dropout)
            self.output_size = self.state_size
        self.use_mixed = mixed_memory
        if mixed_memory:
            self.lstm = LSTMCell(self.input_size, self.state_size)
        self.fc: nn.Module = nn.Identity() if proj_size is None else nn.Linear(self.output_size, proj_size)

    def _run(self, x: Tensor, h0: Tensor, elapsed: Tensor | None, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.rnn_cell.sequence(x, h0, elapsed, keep)

    def _step(self, x: Tensor, h: Tensor, elapsed: Tensor | float) -> tuple[Tensor, Tensor]:
        return self.rnn_cell(x, h, elapsed)

    def _project(self, y: Tensor) -> Tensor:
        return self.fc(y)
