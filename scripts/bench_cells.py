"""Speed of liquid_rl's LTC and CfC against ncps and torch.nn.LSTM, in one run.

For each model: forward and forward+backward time per batch (and sequence steps per
second, batch*steps/time), one-step latency at batch 1 without gradients (what a
rollout pays), and the largest output difference to the ncps module it was copied from.

    python scripts/bench_cells.py                      # CPU, batch 64, 64 steps, 32 units
    python scripts/bench_cells.py --device cuda --batch 1024 --units 64

ncps runs twice on CPU: as shipped (denormal floats not flushed, which is how users run
it) and with denormals flushed, the same setting liquid_rl enables for itself.

Timing: the minimum over repeated calls, in CPU time of this process on CPU with one
thread (stable on a shared machine; it equals wall time on an idle core), wall time with
``--threads`` above 1 (run it on otherwise idle cores: liquid_rl's LTC kernel splits the
batch over torch's threads) and wall time with synchronisation on CUDA. ``--kernel`` picks liquid_rl's LTC kernels to time
(default: native and eager; ``compiled`` adds the torch.compile'd step, compilation
excluded; ``triton`` the fused Triton kernel, on CUDA). On CUDA "native" runs as "eager"
(the native kernel is CPU only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Callable

import torch

import ncps.torch as nt
import ncps.wirings as nw
from liquid_rl import native
from liquid_rl.compat import from_ncps


CLOCK = time.process_time


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timeit(fn: Callable[[], None], min_time: float, sync: Callable[[], None], repeat: int = 1) -> float:
    """Minimum seconds per call (``repeat`` calls per sample) over at least ``min_time``
    seconds and 3 samples, after one warm-up."""
    fn()
    sync()
    best = float("inf")
    start, samples = time.perf_counter(), 0
    while samples < 3 or time.perf_counter() - start < min_time:
        t0 = CLOCK()
        for _ in range(repeat):
            fn()
        sync()
        best = min(best, (CLOCK() - t0) / repeat)
        samples += 1
    return best


def measure(model: torch.nn.Module, x: torch.Tensor, x1: torch.Tensor, min_time: float,
            sync: Callable[[], None]) -> dict[str, float]:
    def fwd() -> None:
        with torch.no_grad():
            model(x)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        y = model(x)[0]
        y.square().mean().backward()

    state: dict[str, object] = {"h": None}

    def one_step() -> None:
        with torch.no_grad():
            _, state["h"] = model(x1, state["h"])

    return {"fwd_s": timeit(fwd, min_time, sync), "fwd_bwd_s": timeit(fwd_bwd, min_time, sync),
            "step_s": timeit(one_step, min_time, sync, repeat=50)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--inputs", type=int, default=8)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per measurement")
    p.add_argument("--skip-unflushed", action="store_true", help="skip ncps without denormal flushing (slow)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--kernel", nargs="+", choices=["native", "eager", "compiled", "triton"], default=["native", "eager"],
                   help="liquid_rl LTC kernel(s) to time")
    p.add_argument("--isa", choices=sorted(native.ISA_FLAGS), default=None,
                   help="build the native kernel for this instruction set (default: $LIQUID_RL_NATIVE_ISA or native)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    if args.isa is not None:
        if not native.cpu_runs(args.isa):
            p.error(f"this CPU cannot run code built for --isa {args.isa}")
        os.environ["LIQUID_RL_NATIVE_ISA"] = args.isa   # read at the first (lazy) build
    global CLOCK
    torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    if device.type == "cuda" or args.threads > 1:   # CPU time would add up the threads
        CLOCK = time.perf_counter
    torch.manual_seed(0)
    B, T, N, I = args.batch, args.steps, args.units, args.inputs
    x = torch.randn(B, T, I, device=device)
    x1 = torch.randn(1, 1, I, device=device)
    motor = max(1, N // 8)
    refs = {
        "LTC full": nt.LTC(I, N),
        "LTC AutoNCP": nt.LTC(I, nw.AutoNCP(N, motor)),
        "CfC": nt.CfC(I, N),
        "CfC AutoNCP (wired)": nt.CfC(I, nw.AutoNCP(N, motor)),
    }
    rows = []
    for name, ref in refs.items():
        ref = ref.to(device)
        ours = from_ncps(ref)
        with torch.no_grad():
            diff = (ours(x)[0] - ref(x)[0]).abs().max().item()
        if device.type == "cpu" and not args.skip_unflushed and name.startswith("LTC"):
            torch.set_flush_denormal(False)
            rows.append({"model": name, "impl": "ncps (as shipped)", **measure(ref, x, x1, 0.0, sync)})
        torch.set_flush_denormal(True)
        rows.append({"model": name, "impl": "ncps (flushed)", **measure(ref, x, x1, args.min_time, sync)})
        for kernel in args.kernel if name.startswith("LTC") else ["eager"]:
            if name.startswith("LTC"):
                ours.rnn_cell.kernel = kernel
                with torch.no_grad():
                    diff = (ours(x)[0] - ref(x)[0]).abs().max().item()
            label = "liquid_rl" + (f" ({kernel})" if name.startswith("LTC") else "")
            rows.append({"model": name, "impl": label, "max_abs_diff": diff,
                         **measure(ours, x, x1, args.min_time, sync)})
    lstm = torch.nn.LSTM(I, N, batch_first=True).to(device)
    rows.append({"model": "LSTM", "impl": "torch.nn.LSTM", **measure(lstm, x, x1, args.min_time, sync)})

    clock = "cpu time" if CLOCK is time.process_time else "wall time"
    print(f"device={device} batch={B} steps={T} units={N} inputs={I} threads={torch.get_num_threads()} "
          f"torch={torch.__version__} timing={clock}")
    print(f"cpu={cpu_model()} native kernel: isa={native.isa()} flags={' '.join(native.build_flags())}")
    header = f"{'model':<20} {'implementation':<22} {'fwd ms':>9} {'fwd+bwd ms':>11} {'fwd+bwd steps/s':>16} " \
             f"{'1-step ms':>10} {'x ncps(fl) f+b':>15} {'x ncps(fl) 1-step':>18} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))
    flushed = {r["model"]: r for r in rows if r["impl"] == "ncps (flushed)"}
    for r in rows:
        base = flushed.get(r["model"])
        speed_fb = f"{base['fwd_bwd_s'] / r['fwd_bwd_s']:.1f}x" if base else ""
        speed_step = f"{base['step_s'] / r['step_s']:.1f}x" if base else ""
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
        print(f"{r['model']:<20} {r['impl']:<22} {r['fwd_s'] * 1e3:9.2f} {r['fwd_bwd_s'] * 1e3:11.2f} "
              f"{B * T / r['fwd_bwd_s']:16.0f} {r['step_s'] * 1e3:10.3f} {speed_fb:>15} {speed_step:>18} {diff:>10}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "cpu": cpu_model(), "isa": native.isa(), "flags": native.build_flags(),
                   "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
