"""One-step latency at batch 1 of an exported actor in onnxruntime, against
``model.predict`` and against the bare torch module (the same actor, untraced).

Models: RecurrentPPO with an NCP-19 LTC (AutoNCP(19, 1), 6 semi-implicit unfolds) and
with a CfC-32, on PendulumNoVel-v1 (3 observations, 1 action), with VecNormalize; the
weights are a fresh initialisation (latency does not depend on training). Each row is
the minimum over repeats of the mean CPU time per step (one torch thread, one
onnxruntime thread) over ``--steps`` steps::

    python scripts/bench_deploy.py                       # prints a Markdown table
    python scripts/bench_deploy.py --json results.json

Columns: ``model.predict`` (SB3's predict with state and episode start, as evaluation
calls it); ``torch module`` (the exported actor's torch module under no_grad, native LTC
kernel where the policy has one: what predict runs minus SB3's conversions); the same
module as exported (reference kernels); ``onnxruntime`` (``session.run``) and
``OnnxPolicy.act`` (with its input checks and state carrying).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from liquid_rl.agents.build import build_model, make_vec_env
from liquid_rl.agents.config import validate_config
from liquid_rl.agents.safe_load import load_agent, save_agent
from liquid_rl.deploy import OnnxPolicy
from liquid_rl.export import build_actor, export_agent
from liquid_rl.export.actor import example_inputs

MODELS = {
    "NCP-19 (LTC)": {"cell": "ltc", "wiring": "ncp", "units": 19, "ode_unfolds": 6},
    "CfC-32": {"cell": "cfc", "units": 32},
}


def per_step(fn: Callable[[], None], steps: int, repeats: int) -> float:
    """Minimum over ``repeats`` of the mean CPU seconds per call over ``steps`` calls."""
    for _ in range(min(steps, 50)):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(steps):
            fn()
        best = min(best, (time.process_time() - t0) / steps)
    return best


def make_agent(policy: dict, directory: Path):
    cfg = validate_config({"env": {"id": "liquid_rl/PendulumNoVel-v1", "n_envs": 1, "normalize": {"obs": True}},
                           "algo": {"name": "recurrent_ppo", "hyperparams": {"n_steps": 16, "batch_size": 16}},
                           "policy": {"type": "liquid_recurrent", **policy}, "train": {"total_timesteps": 16}})
    venv = make_vec_env(cfg, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, venv, device="cpu")
    path = directory / "model.zip"
    save_agent(model, path, cfg)
    venv.close()
    return load_agent(path, device="cpu")


def bench(name: str, policy: dict, steps: int, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        agent = make_agent(policy, Path(tmp))
        onnx_path = Path(tmp) / "actor.onnx"
        export_agent(agent, onnx_path, "onnx")
        deployed = OnnxPolicy(onnx_path, threads=1)
        obs = np.zeros((1, 3), dtype=np.float32)
        starts = np.zeros(1, dtype=bool)
        state = {"s": None}

        def predict() -> None:
            _, state["s"] = agent.model.predict(obs, state=state["s"], episode_start=starts, deterministic=True)

        exported = build_actor(agent)
        inputs = example_inputs(exported.spec, batch=1)
        native = build_actor(agent)
        for m in native.modules():  # the policy's own kernels (native LTC, fused CfC)
            if isinstance(getattr(m, "kernel", None), str):
                m.kernel = "auto"
            if isinstance(getattr(m, "fused", None), bool):
                m.fused = True

        def run(module: torch.nn.Module) -> Callable[[], None]:
            def step() -> None:
                with torch.no_grad():
                    module(*inputs)
            return step

        feeds = {"obs": obs, "state": np.zeros((1, deployed.state_size), np.float32),
                 "episode_start": np.zeros(1, np.float32), "dt": np.full((1, 1), deployed.dt_default, np.float32)}
        row = {
            "model.predict": per_step(predict, steps, repeats),
            "torch module": per_step(run(native), steps, repeats),
            "torch module (as exported)": per_step(run(exported), steps, repeats),
            "onnxruntime": per_step(lambda: deployed.session.run(None, feeds), steps, repeats),
            "OnnxPolicy.act": per_step(lambda: deployed.act(obs), steps, repeats),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per timing (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per column; the minimum is kept")
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {name: bench(name, policy, args.steps, args.repeats) for name, policy in MODELS.items()}
    cols = list(next(iter(results.values())))
    print("| model | " + " | ".join(cols) + " | ONNX / predict |")
    print("|---" * (len(cols) + 2) + "|")
    for name, row in results.items():
        cells = " | ".join(f"{row[c] * 1e6:.0f} us" for c in cols)
        print(f"| {name} | {cells} | {row['onnxruntime'] / row['model.predict']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
