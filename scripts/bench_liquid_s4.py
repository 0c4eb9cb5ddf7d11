"""Benchmarks of the Liquid-S4 sequence model.

Speed (default task):
    python scripts/bench_liquid_s4.py --task speed
  convolution mode forward+backward at batch 32, length 1024, 64 channels, state 64, 2 layers;
  step-mode latency of one step at batch 1; inference time of both modes at short lengths (where
  "auto" switches); on CPU and, if present, CUDA.

Synthetic long-range task:
    python scripts/bench_liquid_s4.py --task recall
  delayed recall: a token (one of K=8, one-hot) is shown at t=0, then L-1=511 steps in which K
  separate distractor channels carry Gaussian noise (optionally the token channels too, --noise),
  and a query flag at the last step; the model classifies the token from its last output.
  Trains Liquid-S4, the same model without liquid terms (S4D), CfC and LTC on the same data with
  the same optimiser (AdamW, one-cycle schedule, gradient clipping) for a fixed number of steps
  (LTC: fewer steps and a smaller test set, it is ~20x slower per step over 512 steps); results
  go to a JSON file incrementally (runs already there are skipped when rerun).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from liquid_rl.liquid_s4 import LiquidS4


# ----------------------------------------------------------------------------- speed
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timeit(fn, device: torch.device, min_time: float = 2.0, min_iters: int = 3, warmup: int = 2) -> float:
    """Seconds per call: the minimum over repeated calls of the process CPU time on CPU (stays
    comparable on a busy machine; one thread), of the wall-clock time on CUDA."""
    for _ in range(warmup):
        fn()
    _sync(device)
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    best, n, start = math.inf, 0, time.perf_counter()
    while True:
        t0 = clock()
        fn()
        _sync(device)
        best = min(best, clock() - t0)
        n += 1
        if n >= min_iters and time.perf_counter() - start >= min_time:
            return best


def bench_speed(device: torch.device, args) -> dict:
    torch.manual_seed(0)
    B, T, H, N, L = 32, 1024, 64, 64, 2
    out: dict = {"device": str(device), "batch": B, "length": T, "d_model": H, "d_state": N, "n_layers": L}
    for name, degree in (("liquid_s4", 2), ("s4d", 1)):
        m = LiquidS4(H, d_model=H, d_state=N, n_layers=L, liquid_degree=degree).to(device)
        x = torch.randn(B, T, H, device=device)

        def fwd_bwd():
            m.zero_grad(set_to_none=True)
            y, _ = m(x, mode="conv")
            y.square().mean().backward()

        sec = _timeit(fwd_bwd, device, min_time=args.min_time)
        out[f"{name}_conv_fwd_bwd_s"] = sec
        out[f"{name}_conv_fwd_bwd_per_s"] = 1.0 / sec
        out[f"{name}_conv_tokens_per_s"] = B * T / sec
        print(f"[{device}] {name}: conv fwd+bwd B={B} T={T} H={H} N={N} L={L}: "
              f"{sec * 1e3:.1f} ms ({1 / sec:.2f}/s, {B * T / sec:,.0f} tokens/s)", flush=True)

        m.eval()
        x1 = torch.randn(1, H, device=device)
        with torch.no_grad():
            hx = m.initial_state(1)
            state = {"hx": hx}

            def one_step():
                _, state["hx"] = m.step(x1, state["hx"])

            lat = _timeit(one_step, device, min_time=args.min_time / 2, min_iters=50, warmup=10)
            x1t = x1[:, None]

            def one_forward():
                _, state["hx"] = m(x1t, state["hx"])

            lat_fwd = _timeit(one_forward, device, min_time=args.min_time / 2, min_iters=50, warmup=10)
        out[f"{name}_step_latency_ms"] = lat * 1e3
        out[f"{name}_forward_T1_latency_ms"] = lat_fwd * 1e3
        print(f"[{device}] {name}: step latency B=1: {lat * 1e3:.3f} ms (forward with T=1: {lat_fwd * 1e3:.3f} ms)",
              flush=True)

    # Where the step loop stops paying off (no grad, batch 16): picks the "auto" threshold.
    m = LiquidS4(H, d_model=H, d_state=N, n_layers=L).to(device).eval()
    rows = []
    with torch.no_grad():
        for t in (1, 2, 4, 8, 16, 32, 64):
            x = torch.randn(16, t, H, device=device)
            ts = _timeit(lambda: m(x, mode="step"), device, min_time=args.min_time / 4, min_iters=5)
            tc = _timeit(lambda: m(x, mode="conv"), device, min_time=args.min_time / 4, min_iters=5)
            rows.append({"T": t, "step_ms": ts * 1e3, "conv_ms": tc * 1e3})
            print(f"[{device}] inference B=16 T={t:3d}: step {ts * 1e3:7.2f} ms  conv {tc * 1e3:7.2f} ms", flush=True)
    out["short_sequences_b16"] = rows
    return out


# ----------------------------------------------------------------------------- recall task
def make_recall(
    n: int, length: int, n_tokens: int, noise: float, seed: int, distractor: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Delayed recall data: x (n, length, 2 * n_tokens + 1), labels (n,).

    Channels: [token one-hot (n_tokens) | distractor (n_tokens) | query flag]. The token is shown
    at t=0; afterwards the token channels carry Gaussian noise of std ``noise`` and the distractor
    channels Gaussian noise of std ``distractor``; the query flag is set at the last step.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(n_tokens, (n,), generator=g)
    x = torch.zeros(n, length, 2 * n_tokens + 1)
    x[:, 1:, :n_tokens] = noise * torch.randn(n, length - 1, n_tokens, generator=g)
    x[:, :, n_tokens : 2 * n_tokens] = distractor * torch.randn(n, length, n_tokens, generator=g)
    x[:, 0, :n_tokens] = F.one_hot(labels, n_tokens).float()
    x[:, -1, 2 * n_tokens] = 1.0  # query flag
    return x, labels


class RNNClassifier(nn.Module):
    """ncps-style RNN (LTC / CfC) + linear head on the last output."""

    def __init__(self, rnn: nn.Module, features: int, n_classes: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        return self.head(y[:, -1] if y.dim() == 3 else y)


class S4Classifier(nn.Module):
    def __init__(self, model: LiquidS4) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.model(x)
        return y if y.dim() == 2 else y[:, -1]


def _ltc_cfc():
    """LTC and CfC of this package, or ncps' as a stand-in while they are not exported."""
    try:
        from liquid_rl import CfC, LTC  # type: ignore[attr-defined]

        return LTC, CfC, "liquid_rl"
    except ImportError:
        from ncps.torch import CfC, LTC

        return LTC, CfC, "ncps 1.0.1 (liquid_rl.LTC/CfC not importable)"


def build_model(name: str, n_in: int, n_classes: int, args) -> tuple[nn.Module, str]:
    if name in ("liquid_s4", "s4d"):
        m = LiquidS4(n_in, d_model=args.d_model, d_state=args.d_state, n_layers=args.n_layers,
                     liquid_degree=args.liquid_degree if name == "liquid_s4" else 1,
                     output_size=n_classes, return_sequences=False, prenorm=True)
        return S4Classifier(m), "liquid_rl.liquid_s4"
    LTC, CfC, impl = _ltc_cfc()
    if name == "cfc":
        return RNNClassifier(CfC(n_in, args.rnn_units, return_sequences=False, batch_first=True),
                             args.rnn_units, n_classes), impl
    if name == "ltc":
        rnn = LTC(n_in, args.rnn_units, return_sequences=False, batch_first=True)
        return RNNClassifier(rnn, _rnn_out(rnn, args.rnn_units), n_classes), impl
    raise ValueError(f"unknown model {name!r}")


def _rnn_out(rnn: nn.Module, units: int) -> int:
    for attr in ("output_size", "motor_size"):
        v = getattr(rnn, attr, None)
        if isinstance(v, int):
            return v
    return units


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum().item()
    model.train()
    return correct / len(x)


def train_recall(name: str, seed: int, args, data) -> dict:
    """Train one model for a fixed number of steps (wall-clock cap as a safety net) and test it."""
    (xtr, ytr), (xte, yte) = data
    torch.manual_seed(seed)
    model, impl = build_model(name, xtr.shape[-1], args.n_tokens, args)
    steps_total = args.ltc_steps if name == "ltc" else args.steps
    n_eval = min(len(xte), args.ltc_eval if name == "ltc" else len(xte))
    lr = args.lr if name in ("liquid_s4", "s4d") or args.rnn_lr is None else args.rnn_lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps_total, pct_start=0.1)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"== {name} seed {seed} ({impl}): {n_params} parameters, {steps_total} steps, lr {lr}", flush=True)
    g = torch.Generator().manual_seed(seed)
    start, step, stopped, curve = time.perf_counter(), 0, "steps", []
    perm, pos = torch.randperm(len(xtr), generator=g), 0
    while step < steps_total:
        if pos + args.batch > len(xtr):
            perm, pos = torch.randperm(len(xtr), generator=g), 0
        idx = perm[pos : pos + args.batch]
        pos += args.batch
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        el = time.perf_counter() - start
        if step % args.log_every == 0 or step == steps_total:
            print(f"  step {step:4d}  loss {loss.item():.3f}  {el:6.1f} s", flush=True)
            curve.append({"step": step, "seconds": round(el, 1), "loss": round(loss.item(), 4)})
        if el > args.max_seconds:
            stopped = "time cap"
            break
    train_s = time.perf_counter() - start
    acc = evaluate(model, xte[:n_eval], yte[:n_eval], args.eval_batch)
    res = {
        "model": name, "seed": seed, "implementation": impl, "test_accuracy": acc, "eval_samples": n_eval,
        "train_steps": step, "train_samples_seen": step * args.batch, "stopped_by": stopped,
        "train_seconds": round(train_s, 1), "seconds_per_step": round(train_s / max(step, 1), 4),
        "parameters": n_params, "lr": lr, "final_loss": loss.item(), "curve": curve,
    }
    print(f"-> {name} seed {seed}: test accuracy {acc:.3f} on {n_eval} sequences after {step} steps / "
          f"{train_s:.0f} s", flush=True)
    return res


def run_recall(args) -> dict:
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    config = {k: v for k, v in vars(args).items() if k not in ("out", "task", "models", "device", "min_time")}
    if results.get("config") and results["config"] != config:
        print("note: existing results were made with another configuration; runs already there are kept",
              file=sys.stderr)
    results.setdefault("config", config)
    results.setdefault("runs", {})
    results["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    data = (make_recall(args.n_train, args.length, args.n_tokens, args.noise, args.data_seed, args.distractor),
            make_recall(args.n_test, args.length, args.n_tokens, args.noise, args.data_seed + 1, args.distractor))
    print(f"delayed recall: length {args.length}, {args.n_tokens} tokens (chance {1 / args.n_tokens:.3f}), "
          f"noise std {args.noise} (token channels) / {args.distractor} (distractor channels), "
          f"{args.n_train} train / {args.n_test} test sequences", flush=True)
    for name in args.models:
        for seed in (args.rnn_seeds if name in ("cfc", "ltc") else args.seeds):
            key = f"{name}/seed{seed}"
            if key in results["runs"]:
                print(f"skip {key}: already in {out_path}", flush=True)
                continue
            results["runs"][key] = train_recall(name, seed, args, data)
            tmp = out_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            os.replace(tmp, out_path)
    print("\nmodel       runs  accuracy (mean, per seed)            steps  s/step")
    for name in args.models:
        runs = [r for r in results["runs"].values() if r["model"] == name]
        if runs:
            accs = [r["test_accuracy"] for r in runs]
            print(f"{name:10s}  {len(runs):4d}  {sum(accs) / len(accs):.3f}  {', '.join(f'{a:.3f}' for a in accs):24s}"
                  f"  {runs[0]['train_steps']:5d}  {sum(r['seconds_per_step'] for r in runs) / len(runs):.3f}")
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["speed", "recall"], default="speed")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="all", help="speed: cpu, cuda or all (cpu and cuda if present)")
    p.add_argument("--min-time", type=float, default=3.0, help="speed: seconds of timing per measurement")
    p.add_argument("--out", default="runs/bench_liquid_s4/recall.json")
    p.add_argument("--models", nargs="+", default=["liquid_s4", "s4d", "cfc", "ltc"])
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--n-tokens", type=int, default=8)
    p.add_argument("--noise", type=float, default=0.0, help="noise std on the token channels after t=0")
    p.add_argument("--distractor", type=float, default=1.0, help="noise std on the distractor channels")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--steps", type=int, default=500, help="training steps (batches) per run")
    p.add_argument("--ltc-steps", type=int, default=50, help="training steps for LTC (slow over long sequences)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the Liquid-S4 / S4D runs")
    p.add_argument("--rnn-seeds", type=int, nargs="+", default=[0], help="seeds of the CfC / LTC runs")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-batch", type=int, default=250)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--rnn-lr", type=float, default=None, help="lr of CfC/LTC (default: --lr)")
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--d-state", type=int, default=32)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--liquid-degree", type=int, default=2)
    p.add_argument("--rnn-units", type=int, default=32)
    p.add_argument("--max-seconds", type=float, default=3600.0, help="wall-clock cap on the training of one run")
    p.add_argument("--ltc-eval", type=int, default=250, help="test sequences for LTC (slow over long sequences)")
    p.add_argument("--log-every", type=int, default=25)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals slow the CPU path of recurrent cells a lot
    if args.task == "speed":
        devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
        if args.device in ("cuda", "all") and torch.cuda.is_available():
            devices.append(torch.device("cuda"))
        results = {"threads": torch.get_num_threads(), "torch": torch.__version__,
                   "load_average_before": os.getloadavg(), "runs": [bench_speed(d, args) for d in devices],
                   "load_average_after": os.getloadavg()}
        print(f"load average before/after: {results['load_average_before']} / {results['load_average_after']}")
        out = Path(args.out if args.out != p.get_default("out") else "runs/bench_liquid_s4/speed.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
        print(f"wrote {out}")
    else:
        run_recall(args)


if __name__ == "__main__":
    main()
