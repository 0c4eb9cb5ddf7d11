"""A one-minute check that the models learn: a small LTC (NCP wiring) learns to predict
a noisy sine wave's next value from irregularly sampled observations.

    python scripts/demo.py [--epochs 40] [--cell ltc|cfc]

Prints the training loss falling and the final test error against a zero predictor.
"""

from __future__ import annotations

import argparse

import torch

from liquid_rl import CfC, LTC, wirings


def make_data(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Irregularly sampled sine waves: inputs (n, T, 2) [value, elapsed], elapsed (n, T),
    targets (n, T, 1) the value at the next sample time."""
    dt = 0.05 + 0.25 * torch.rand(n, T + 1, generator=generator)
    t = dt.cumsum(1)
    freq = 0.5 + torch.rand(n, 1, generator=generator)
    phase = 6.28 * torch.rand(n, 1, generator=generator)
    wave = torch.sin(freq * t + phase)
    x = torch.stack([wave[:, :-1] + 0.05 * torch.randn(n, T, generator=generator), dt[:, 1:]], -1)
    return x, dt[:, :-1], wave[:, 1:, None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--cell", choices=["ltc", "cfc"], default="ltc")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x, elapsed, y = make_data(256, 48, g)
    x_test, elapsed_test, y_test = make_data(64, 48, g)
    wiring = wirings.AutoNCP(16, 1)
    model = LTC(2, wiring) if args.cell == "ltc" else CfC(2, wiring)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    print(f"{args.cell.upper()} with an NCP wiring: {wiring.units} neurons, "
          f"{sum(p.numel() for p in model.parameters() if p.requires_grad)} parameters")
    for epoch in range(1, args.epochs + 1):
        for batch in torch.randperm(256).split(64):
            pred, _ = model(x[batch], timespans=elapsed[batch])
            loss = (pred - y[batch]).square().mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch == 1 or epoch % 5 == 0:
            print(f"epoch {epoch:3d}  train mse {loss.item():.4f}")
    with torch.no_grad():
        test = (model(x_test, timespans=elapsed_test)[0] - y_test).square().mean().item()
    baseline = y_test.square().mean().item()
    print(f"test mse {test:.4f} (predicting zero: {baseline:.4f})")


if __name__ == "__main__":
    main()
