"""``liquid-rl eval``: run episodes with a saved agent and write the results."""

from __future__ import annotations

import argparse
from pathlib import Path

from liquid_rl.cli.args import DEVICES, MODEL_HELP, MODELS, non_negative_float, positive_int, seed

HELP = "evaluate a run or model file"


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help=HELP,
                       description="Run episodes with a trained agent; print and save mean and std of "
                                   "return and episode length.")
    e.add_argument("source", metavar="RUN_OR_MODEL", help="run directory or model .zip")
    e.add_argument("--model", choices=MODELS, help=MODEL_HELP)
    e.add_argument("--episodes", type=positive_int, default=10, help="number of episodes (default 10)")
    e.add_argument("--deterministic", action="store_true", help="act with the mode of the action distribution")
    e.add_argument("--video", metavar="FILE.mp4", help="record the first episode (.mp4 or .gif)")
    e.add_argument("--noise", type=non_negative_float, default=0.0, metavar="SIGMA",
                   help="std of Gaussian noise added to each observation entry (robustness)")
    e.add_argument("--json", metavar="FILE", help="results file (default <run>/eval.json, or beside the model)")
    e.add_argument("--seed", type=seed, default=0, help="seed of the evaluation episodes (default 0)")
    e.add_argument("--device", choices=DEVICES, default="auto")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                   help="torch: model.predict; onnx: the exported actor in onnxruntime (with --deterministic)")
    e.add_argument("--no-finite-check", action="store_true",
                   help="do not stop at a NaN or infinite observation, reward or action")


def _default_json(source: str, noise: float, model: str | None = None) -> Path:
    from liquid_rl.agents.safe_load import resolve_model_path

    p = Path(source)
    name = "eval" + (f"_{model}" if model else "") + (f"_noise{noise:g}" if noise else "") + ".json"
    if p.is_dir():
        return p / name
    model = resolve_model_path(p)
    return model.with_name(f"{model.stem}_{name}")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import apply_threads
    from liquid_rl.agents.evaluate import evaluate
    from liquid_rl.agents.output_paths import check_output_file
    from liquid_rl.agents.safe_load import load_agent

    if args.json:
        check_output_file(args.json, "--json")
    if args.video:
        check_output_file(args.video, "--video")
    # Load (and so check) the model before choosing where to write.
    agent = load_agent(args.source, device=args.device, model=args.model)
    apply_threads(agent.config)
    json_path = Path(args.json) if args.json else _default_json(args.source, args.noise, args.model)
    if args.backend != "torch" and not args.json:
        json_path = json_path.with_name(f"{json_path.stem}_{args.backend}.json")
    result = evaluate(agent, episodes=args.episodes, deterministic=args.deterministic, video=args.video,
                      noise=args.noise, json_path=json_path, seed=args.seed, progress=not args.no_progress,
                      backend=args.backend, check_finite=not args.no_finite_check)
    noise = f", observation noise sigma={args.noise:g}" if args.noise else ""
    print(f"{result['env_id']}: {result['episodes']} episodes ({'deterministic' if args.deterministic else 'stochastic'}"
          f"{noise}) of {result['model']}")
    print(f"  return  {result['mean_return']:.2f} +- {result['std_return']:.2f}")
    print(f"  length  {result['mean_length']:.1f} +- {result['std_length']:.1f}")
    print(f"  results {json_path}")
    if "video" in result:
        print(f"  video   {result['video']}")
    return 0
