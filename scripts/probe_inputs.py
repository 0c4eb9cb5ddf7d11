"""Which observation entries a trained agent relies on: deterministic returns with one
entry (or a group of entries) set to 0 at every step, against the plain evaluation on
the same episode seeds. Agents are run directories (or model files) of ``liquid-rl
train`` or ``liquid-rl sweep``, loaded without pickle; the zeroing is
``liquid_rl.envs.wrappers.MaskObservation(mode="zero")`` around the raw env::

    python scripts/probe_inputs.py runs/lane_keeping/lane_keeping_ncp_s0 runs/lane_keeping/lane_keeping_lstm_s1 \
        --groups offset=0 heading=1 speed=2 curvature=3-10 --episodes 5

Prints a markdown table: one row per agent, one column per group.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from gymnasium import spaces

from liquid_rl.agents.errors import UserError
from liquid_rl.agents.evaluate import evaluate
from liquid_rl.agents.safe_load import load_agent
from liquid_rl.envs.wrappers import MaskObservation


def parse_group(text: str) -> tuple[str, list[int]]:
    """``"curvature=3-10"`` -> ``("curvature", [3, ..., 10])``; ``"speed=2"``, ``"a=0,4"``."""
    name, sep, rest = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        indices: list[int] = []
        for part in rest.split(","):
            lo, dash, hi = part.partition("-")
            indices += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    except ValueError:
        raise UserError(f"--groups {text!r}: expected NAME=I[,J][-K], e.g. speed=2 or curvature=3-10") from None
    return name, indices


def returns_without(agent, drop: list[int] | None, episodes: int, seed: int) -> list[float]:
    """Deterministic returns with the entries ``drop`` of the (dim,) observation zeroed
    (None: plain evaluation)."""
    perturb = None
    if drop is not None:
        keep = [i for i in range(agent.model.observation_space.shape[0]) if i not in drop]
        perturb = lambda env: MaskObservation(env, keep, mode="zero")  # noqa: E731
    return list(evaluate(agent, episodes=episodes, deterministic=True, seed=seed, perturb=perturb)["returns"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agents", nargs="+", metavar="RUN_OR_MODEL")
    parser.add_argument("--groups", nargs="+", default=None,
                        help="NAME=INDICES to zero together (default: each entry on its own)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (as liquid-rl eval)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    try:
        agents = [(path, load_agent(path, device=args.device)) for path in args.agents]
        for path, agent in agents:
            space = agent.model.observation_space
            if not isinstance(space, spaces.Box) or len(space.shape) != 1:
                raise UserError(f"{path}: needs a 1-D Box observation, got {space}")
        dim = agents[0][1].model.observation_space.shape[0]
        groups = [parse_group(g) for g in args.groups] if args.groups else [(str(i), [i]) for i in range(dim)]
        bad = [name for name, drop in groups if any(not 0 <= i < dim for i in drop)]
        if bad:
            raise UserError(f"--groups {', '.join(bad)}: entries must be in [0, {dim})")
        print("| agent | none zeroed | " + " | ".join(name for name, _ in groups) + " |")
        print("|---|---:|" + "---:|" * len(groups))
        for path, agent in agents:
            cells = [np.mean(returns_without(agent, drop, args.episodes, args.seed)) for _, drop in [("", None), *groups]]
            print(f"| {path} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)
    except UserError as e:
        parser.exit(2, f"probe_inputs.py: error: {e}\n")


if __name__ == "__main__":
    main()
