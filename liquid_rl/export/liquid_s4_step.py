"""Liquid-S4's step form in real arithmetic, for the exporters (ONNX has no complex type).

``LiquidS4`` keeps its SSM state as complex modes and steps it with complex products;
:class:`RealLiquidS4Step` runs the same recurrence on (real, imaginary) pairs with the
discrete system (``Abar``, ``Bbar``, ``C`` and the liquid coefficients) computed once by
the model itself for a constant elapsed time per step (``step_time``), so the flat state
layout, and the numbers, are the model's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RealLiquidS4Step"]


class RealLiquidS4Step(nn.Module):
    """``forward(input (T, B, I), hx (B, S), timespans=None, resets=None) -> (y (T, B, O), hx)``,
    time-major, as ``LiquidS4(batch_first=False, return_sequences=True)`` at a fixed step.

    Args:
        model: a ``liquid_rl.liquid_s4.LiquidS4`` (time-major, returning sequences).
        step_time: the elapsed time of one step in the model's units (its dt scale).
    """

    def __init__(self, model: nn.Module, step_time: float = 1.0) -> None:
        super().__init__()
        if model.batch_first or not model.return_sequences:
            raise ValueError("RealLiquidS4Step needs a time-major LiquidS4 that returns sequences")
        self.model = model
        self.input_size, self.output_size, self.state_size = model.input_size, model.output_size, model.state_size
        self.step_time = float(step_time)
        scale = None if step_time == 1.0 else torch.full((1, 1, 1), float(step_time))
        self.n_x: list[int] = []
        for i, layer in enumerate(model.layers):
            with torch.no_grad():
                Abar, Bbar, C, kappas = layer.ssm._step_params(scale)
            for name, z in (("A", Abar), ("B", Bbar), ("C", C)):
                self.register_buffer(f"{name}r{i}", z.real.float().contiguous())
                self.register_buffer(f"{name}i{i}", z.imag.float().contiguous())
            for p, k in enumerate(kappas):
                self.register_buffer(f"kappa{i}_{p}", (k[..., None, :] if k.dim() > 1 else k).float().contiguous())
            self.n_x.append(layer.ssm.d_model * 2 * layer.ssm.n_modes)

    def _layer(self, i: int, z: Tensor, flat: Tensor) -> tuple[Tensor, Tensor]:
        layer = self.model.layers[i]
        ssm = layer.ssm
        B, H, N2 = z.shape[0], ssm.d_model, ssm.n_modes
        n_x = self.n_x[i]
        xr, xi = flat[:, :n_x].reshape(B, H, N2, 2).unbind(-1)
        buf = flat[:, n_x:].reshape(B, ssm.buffer_len, H)
        Ar, Ai, Br, Bi = (getattr(self, f"{n}{i}") for n in ("Ar", "Ai", "Br", "Bi"))
        Cr, Ci = getattr(self, f"Cr{i}"), getattr(self, f"Ci{i}")
        u = layer.norm(z) if layer.prenorm else z
        uc = u.unsqueeze(-1)
        xr, xi = Ar * xr - Ai * xi + Br * uc, Ar * xi + Ai * xr + Bi * uc       # Abar x + Bbar u
        y = 2 * (Cr * xr - Ci * xi).sum(-1) + ssm.D * u                          # 2 Re(C x) + D u
        if ssm.liquid_degree > 1:
            kappas = [getattr(self, f"kappa{i}_{p}") for p in range(ssm.liquid_degree - 1)]
            liq, buf = ssm._liquid(u[:, None], buf, kappas)
            y = y + liq[:, 0]
        state = torch.cat([torch.stack([xr, xi], -1).reshape(B, -1), buf.reshape(B, -1)], dim=1)
        return layer._pointwise(z, y), state

    def forward(self, input: Tensor, hx: Tensor, timespans: Tensor | float | None = None,
                resets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        fixed = timespans is None or (isinstance(timespans, float) and timespans == self.step_time)
        if not fixed or resets is not None:
            raise ValueError(f"RealLiquidS4Step runs at its fixed step_time={self.step_time} without resets "
                             "(zero hx instead)")
        n = self.model.layer_state_size
        outs = []
        for x_t in input.unbind(0):
            z = self.model.encoder(x_t)
            states = []
            for i in range(len(self.model.layers)):
                z, s = self._layer(i, z, hx[:, i * n: (i + 1) * n])
                states.append(s)
            hx = torch.cat(states, dim=1)
            outs.append(self.model.decoder(self.model.final_norm(z)))
        return torch.stack(outs), hx
