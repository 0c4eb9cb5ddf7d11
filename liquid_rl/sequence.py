"""Shared sequence handling for the liquid RNNs (LTC, CfC): shapes, elapsed times,
resets, mixed memory. Subclasses only say how a cell runs over a time-major sequence.

Conventions (as ncps.torch): ``input`` is (B, T, I) when ``batch_first`` (the default),
(T, B, I) otherwise, or (T, I) unbatched. ``hx`` is (B, N), or ``(h, c)`` with mixed
memory. Inside, everything is time-major: x (T, B, I), elapsed (T, B, 1), keep (T, B, 1).
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor, nn

State = Union[Tensor, "tuple[Tensor, Tensor]"]


class LSTMCell(nn.Module):
    """The memory cell of ncps' ``mixed_memory`` (same parameters and gate layout).

    input_map: Linear(I, 4H) with bias; recurrent_map: Linear(H, 4H) without; the forget
    gate gets +1. ``forward(x (B, I), (h, c)) -> (h, c)``, each (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.input_map = nn.Linear(input_size, 4 * hidden_size, bias=True)
        self.recurrent_map = nn.Linear(hidden_size, 4 * hidden_size, bias=False)
        for w in self.input_map.parameters():
            nn.init.uniform_(w, -0.1, 0.1) if w.dim() == 1 else nn.init.xavier_uniform_(w)
        nn.init.orthogonal_(self.recurrent_map.weight)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h, c = state
        z = torch.addmm(self.input_map(x), h, self.recurrent_map.weight.t())
        i, ig, fg, og = z.chunk(4, 1)
        c = c * torch.sigmoid(fg + 1.0) + torch.tanh(i) * torch.sigmoid(ig)
        return torch.tanh(c) * torch.sigmoid(og), c


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


class LiquidSequence(nn.Module):
    """Base of :class:`~liquid_rl.LTC` and :class:`~liquid_rl.CfC`.

    Subclasses set ``input_size``, ``state_size``, ``output_size``, ``batch_first``,
    ``return_sequences``, ``use_mixed`` (and ``lstm`` when mixed) and implement
    :meth:`_run` (the fast whole-sequence path) and :meth:`_step` (one step).
    """

    input_size: int
    state_size: int
    output_size: int
    batch_first: bool
    return_sequences: bool
    use_mixed: bool

    def _run(self, x: Tensor, h0: Tensor, elapsed: Tensor | None, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        """x (T, B, I), h0 (B, N), elapsed (T, B, 1) or None (unit steps), keep (T, B, 1)
        or None -> (outputs (T, B, O) before projection, final state (B, N))."""
        raise NotImplementedError

    def _step(self, x: Tensor, h: Tensor, elapsed: Tensor | float) -> tuple[Tensor, Tensor]:
        """One step: x (B, I), h (B, N), elapsed (B, 1) or float -> (output (B, O), h)."""
        raise NotImplementedError

    def _project(self, y: Tensor) -> Tensor:
        return y

    # --- argument normalisation ------------------------------------------------------
    def _elapsed(self, timespans: Tensor | float | None, T: int, B: int, batched: bool,
                 ref: Tensor) -> Tensor | None:
        return elapsed_time_major(timespans, T, B, batched, self.batch_first, ref)

    def _keep(self, resets: Tensor | None, T: int, B: int, batched: bool, ref: Tensor) -> Tensor | None:
        return keep_time_major(resets, T, B, batched, self.batch_first, ref)

    def _initial_state(self, hx: State | None, B: int, batched: bool, ref: Tensor) -> tuple[Tensor, Tensor | None]:
        if hx is None:
            h = ref.new_zeros((B, self.state_size))
            return h, (ref.new_zeros((B, self.state_size)) if self.use_mixed else None)
        if self.use_mixed:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError("With mixed_memory=True the state must be a tuple (h, c), "
                                 f"each of shape (B, {self.state_size})")
            h, c = hx
        else:
            if not isinstance(hx, Tensor):
                raise ValueError(f"hx must be a tensor of shape (B, {self.state_size}) (mixed_memory is off)")
            h, c = hx, None
        want = (B, self.state_size) if batched else (self.state_size,)
        for name, t in (("hx", h), ("cx", c)):
            if t is not None and tuple(t.shape) != want:
                raise ValueError(f"{name} must have shape {want}; got {_shape(t)}")
        if not batched:
            h = h.unsqueeze(0)
            c = c.unsqueeze(0) if c is not None else None
        return h, c

    # --- forward ---------------------------------------------------------------------
    def forward(self, input: Tensor, hx: State | None = None, timespans: Tensor | float | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, State]:
        """Run the RNN over a sequence.

        Args:
            input: (B, T, I) if batch_first, (T, B, I) if not, or (T, I) unbatched.
            hx: initial state (B, N), or (h, c) with mixed memory; zeros if None.
            timespans: elapsed time of each step: scalar, (B,), (B, T) or (B, T, 1)
                (time-major forms when not batch_first); None = 1.0 per step.
            resets: bool (B, T): True zeroes the state before that step (an episode start
                inside the sequence). Equivalent to starting a new sequence there.

        Returns:
            (output, hx): output (B, T, O) (or (B, O) if not return_sequences) and the
            final state, same layout as ``hx``.
        """
        if input.dim() not in (2, 3):
            raise ValueError(f"input must be (B, T, {self.input_size}) or unbatched (T, {self.input_size}); "
                             f"got {_shape(input)}")
        if input.shape[-1] != self.input_size:
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(f"input has {input.shape[-1]} features but the model expects "
                             f"input_size={self.input_size}: shape {layout} with I={self.input_size}, "
                             f"got {_shape(input)}")
        batched = input.dim() == 3
        x = input if not batched else (input.transpose(0, 1) if self.batch_first else input)
        if not batched:
            x = x.unsqueeze(1)
        T, B = x.shape[0], x.shape[1]
        elapsed = self._elapsed(timespans, T, B, batched, x)
        keep = self._keep(resets, T, B, batched, x)
        h, c = self._initial_state(hx, B, batched, x)

        if not self.use_mixed:
            ys, h = self._run(x, h, elapsed, keep)
        else:
            outs = []
            for t, x_t in enumerate(x.unbind(0)):
                if keep is not None:
                    h, c = h * keep[t], c * keep[t]
                h, c = self.lstm(x_t, (h, c))
                y, h = self._step(x_t, h, 1.0 if elapsed is None else elapsed[t])
                outs.append(y)
            ys = torch.stack(outs)

        if self.return_sequences:
            out = self._project(ys)
            out = out.transpose(0, 1) if (batched and self.batch_first) else out
            if not batched:
                out = out.squeeze(1)
        else:
            out = self._project(ys[-1])
            if not batched:
                out = out.squeeze(0)
        if not batched:
            h = h.squeeze(0)
            c = c.squeeze(0) if c is not None else None
        return out, ((h, c) if self.use_mixed else h)


def check_timespans(ts: Tensor) -> None:
    """Raise ValueError unless every elapsed time is finite and >= 0 (0 keeps the state;
    a negative time runs the ODE backwards, where the states grow without bound).

    Checked for CPU tensors, where reading the answer costs nothing; on an accelerator
    it would stall the stream every step, so there the caller's data is trusted."""
    if ts.device.type != "cpu" or not ts.numel():
        return
    low = ts.min()  # NaN if any is NaN
    if not torch.is_nonzero(low >= 0):
        raise ValueError(f"timespans must be >= 0 and not NaN (0 keeps the state), got {float(low):g}")


def elapsed_time_major(timespans: Tensor | float | None, T: int, B: int, batched: bool, batch_first: bool,
                       ref: Tensor) -> Tensor | None:
    """Any accepted ``timespans`` form -> (T, B, 1) time-major (ref's dtype and device), or
    None for unit steps.

    Accepted: a scalar; (B,) one value per sample; (B, T) or (B, T, 1) per sample and
    step ((T, B) / (T, B, 1) when not batch_first); unbatched input takes (T,) or (T, 1).
    """
    if timespans is None:
        return None
    if isinstance(timespans, (int, float)):
        if not timespans >= 0:
            raise ValueError(f"timespans must be >= 0 and not NaN (0 keeps the state), got {timespans:g}")
    ts = torch.as_tensor(timespans, dtype=ref.dtype, device=ref.device)
    if not isinstance(timespans, (int, float)):
        check_timespans(ts)
    if ts.dim() == 0:
        return ts.reshape(1, 1, 1).expand(T, B, 1)
    if not batched:
        if ts.shape in ((T,), (T, 1)):
            return ts.reshape(T, 1, 1)
        raise ValueError(f"timespans for an unbatched input of length {T} must be a scalar, (T,) or (T, 1); "
                         f"got shape {_shape(ts)}")
    if ts.dim() == 1 and ts.shape[0] == B:
        return ts.reshape(1, B, 1).expand(T, B, 1)
    if ts.dim() == 3 and ts.shape[-1] == 1:
        ts = ts[..., 0]
    expect = (B, T) if batch_first else (T, B)
    if ts.dim() == 2 and tuple(ts.shape) == expect:
        ts = ts.t() if batch_first else ts
        return ts.unsqueeze(-1)
    layout = "(B, T) or (B, T, 1)" if batch_first else "(T, B) or (T, B, 1)"
    raise ValueError(f"timespans must be a scalar, (B,)=({B},) or {layout} with B={B}, T={T}; "
                     f"got shape {_shape(ts)}")


def keep_time_major(resets: Tensor | None, T: int, B: int, batched: bool, batch_first: bool,
                    ref: Tensor) -> Tensor | None:
    """``resets`` (B, T) bool (or (T, B) when not batch_first; (T,) unbatched) -> keep
    factors (T, B, 1) in ref's dtype: 0 where the state is zeroed before the step, else 1."""
    if resets is None:
        return None
    r = torch.as_tensor(resets, device=ref.device)
    if not batched:
        if r.shape != (T,):
            raise ValueError(f"resets for an unbatched input of length {T} must have shape ({T},); got {_shape(r)}")
        r = r.reshape(T, 1)
    else:
        expect = (B, T) if batch_first else (T, B)
        if tuple(r.shape) != expect:
            raise ValueError(f"resets must be a bool tensor of shape {expect} "
                             f"({'(B, T)' if batch_first else '(T, B)'}); got {_shape(r)}")
        r = r.t() if batch_first else r
    return (~r.bool()).to(ref.dtype).unsqueeze(-1)
