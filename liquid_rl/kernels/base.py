"""The interface every LTC kernel of the table implements, and the tensors it runs on.

A kernel runs the semi-implicit LTC recurrence of :mod:`liquid_rl.kernels.reference` over
a whole sequence, in three ways: with gradients (:meth:`LTCKernel.sequence`, an autograd
function), without (:meth:`LTCKernel.infer`, rollouts and evaluation, the sensory synapses
included) and one step (:meth:`LTCKernel.step`). The cell (``liquid_rl.ltc.LTCCell``)
owns the parameters and builds the tensors; the kernel only computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class InferenceTables:
    """Parameter-derived tensors of the no-grad path, neuron-major and contiguous.

    ssig, nssmu (N, I): sensory sigma and -sigma*mu; M2s (N, 2, I): sensory [w*erev; w]
    with the mask applied; glvl = gleak*vleak, gl_eps = gleak + eps, cm (N,); sig, nsmu
    (N, K), M2 (N, 2, K): recurrent synapses by destination; src (N, K) and src_flat
    (N*K,) long their sources; fanin (N,) long the real synapses per neuron (listed first);
    dense: the wiring is full (src[j] = 0..N-1), so v[src] is v broadcast.
    """

    ssig: Tensor
    nssmu: Tensor
    M2s: Tensor
    glvl: Tensor
    gl_eps: Tensor
    cm: Tensor
    sig: Tensor
    nsmu: Tensor
    M2: Tensor
    src: Tensor
    src_flat: Tensor
    fanin: Tensor
    dense: bool


def sensory_conductances(x: Tensor, sigma: Tensor, mu: Tensor, w: Tensor, erev: Tensor) -> tuple[Tensor, Tensor]:
    """Sensory synapse sums for mapped inputs x (..., I) -> (a, g), each (..., N);
    sigma, mu, erev (I, N) and w (I, N) with the sparsity mask applied."""
    s = torch.sigmoid(sigma * (x.unsqueeze(-1) - mu))
    return (s * (w * erev)).sum(-2), (s * w).sum(-2)


class LTCKernel:
    """One entry of the kernel table (see :mod:`liquid_rl.kernels`).

    Subclasses set ``name`` and implement :meth:`sequence`; :meth:`infer` and
    :meth:`sensory` have plain PyTorch defaults. ``flushes_denormals`` is True for a
    kernel that flushes denormals inside its own call (the cell then skips doing so).
    """

    name: str = ""
    flushes_denormals: bool = False

    def supports(self, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether this kernel runs tensors of this device and dtype here."""
        return True

    def sequence(self, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor,
                 sig: Tensor, nsmu: Tensor, M2: Tensor, src_flat: Tensor, unfolds: int, flush: bool,
                 fanin: Tensor | None) -> Tensor:
        """The recurrence with gradients: v0 (B, N); keep (T, B, 1) or None; num0, den0
        (T, B, N); h (T, B, 1) or (T, 1, 1); cm (N,); sig, nsmu (N, K); M2 (N, 2, K);
        src_flat (N*K,) long; fanin (N,) long or None (all K real). Returns V (T, B, N).
        Gradients flow to v0, num0, den0, cm, sig, nsmu and M2 (not to h or keep)."""
        raise NotImplementedError

    def step(self, v: Tensor, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor,
             M2: Tensor, src_flat: Tensor, unfolds: int, flush: bool, fanin: Tensor | None) -> Tensor:
        """One step (``unfolds`` updates) with gradients: v, num0, den0 (B, N); h (B, 1) or
        (1, 1); the rest as :meth:`sequence`. Returns v_next (B, N)."""
        return self.sequence(v, None, num0[None], den0[None], h[None], cm, sig, nsmu, M2, src_flat, unfolds,
                             flush, fanin)[0]

    def sensory(self, x: Tensor, sigma: Tensor, mu: Tensor, w: Tensor, erev: Tensor) -> tuple[Tensor, Tensor]:
        """Sensory synapse sums with gradients: x (T, B, I) mapped inputs; sigma, mu, erev
        (I, N), w (I, N) masked. Returns (a, g), each (T, B, N)."""
        return sensory_conductances(x, sigma, mu, w, erev)

    def infer(self, x: Tensor, v0: Tensor, h: Tensor, keep: Tensor | None, p: InferenceTables,
              unfolds: int) -> Tensor:
        """The recurrence without gradients, sensory synapses included: x (T, B, I) mapped
        inputs; v0 (B, N); h (T, B|1) step sizes (elapsed / unfolds); keep (T, B) or None.
        Returns V (T, B, N). Default: the sensory sums in PyTorch, then :meth:`sequence`."""
        s = torch.sigmoid(p.ssig * x.unsqueeze(-2) + p.nssmu)                 # (T, B, N, I)
        a, g = (s * p.M2s[:, 0]).sum(-1), (s * p.M2s[:, 1]).sum(-1)
        h3 = h.unsqueeze(-1)
        num0 = h3 * (p.glvl + a)
        den0 = p.cm + h3 * (p.gl_eps + g)
        return self.sequence(v0, None if keep is None else keep.unsqueeze(-1), num0, den0, h3, p.cm, p.sig,
                             p.nsmu, p.M2, p.src_flat, unfolds, False, p.fanin)
