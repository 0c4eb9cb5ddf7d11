"""The semi-implicit LTC update in its reference form: plain, readable PyTorch with autograd.

This is the definition the fast kernels of :mod:`liquid_rl.kernels` implement and the
tests compare them against (values and gradients). With synapses grouped by destination
(neuron j has K presynaptic sources ``src[j, k]``; padding entries have zero weight), one
unfold of step size h is, for a state v (B, N):

    s[b, j, k] = sigmoid(sig[j, k] * v[b, src[j, k]] + nsmu[j, k])      nsmu = -sigma * mu
    a[b, j]    = sum_k M2[j, 0, k] s[b, j, k]                             M2[j, 0] = w * erev
    g[b, j]    = sum_k M2[j, 1, k] s[b, j, k]                             M2[j, 1] = w
    v_next     = (cm v + num0 + h a) / (den0 + h g)

where ``num0 = h (gleak vleak + sensory a)`` and ``den0 = cm + h (gleak + sensory g + eps)``
hold the terms that do not depend on v (ncps' fused semi-implicit Euler, written so that
h = 0 leaves v unchanged). A step is ``unfolds`` such updates; ``keep`` multiplies the
state before a step (0 = reset).
"""

from __future__ import annotations

import torch
from torch import Tensor


def unfold(v: Tensor, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor,
           M2: Tensor, src: Tensor) -> Tensor:
    """One semi-implicit update. v, num0, den0 (B, N); h (B, 1) or (1, 1); cm (N,);
    sig, nsmu (N, K); M2 (N, 2, K); src (N, K) long. Returns v_next (B, N)."""
    s = torch.sigmoid(sig * v[:, src] + nsmu)                        # (B, N, K)
    a = (s * M2[:, 0]).sum(-1)
    g = (s * M2[:, 1]).sum(-1)
    return (cm * v + num0 + h * a) / (den0 + h * g)


def sequence(v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor,
             nsmu: Tensor, M2: Tensor, src: Tensor, unfolds: int) -> Tensor:
    """The recurrence over a sequence. v0 (B, N); keep (T, B, 1) or None; num0, den0
    (T, B, N); h (T, B, 1) or (T, 1, 1); cm (N,); sig, nsmu (N, K); M2 (N, 2, K);
    src (N*K,) or (N, K) long. Returns V (T, B, N), the state after each step."""
    src = src.reshape(sig.shape)
    v, outs = v0, []
    for t in range(num0.shape[0]):
        if keep is not None:
            v = v * keep[t]
        for _ in range(unfolds):
            v = unfold(v, num0[t], den0[t], h[t], cm, sig, nsmu, M2, src)
        outs.append(v)
    return torch.stack(outs)
