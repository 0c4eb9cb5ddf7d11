"""Train one CartPoleNoVel policy of ``bench_rl.py``'s suite and look inside it.

Prints, for the final policy: where each deterministic evaluation episode ends (cart
position and pole angle of the last observation, and whether the time limit ended it),
and for LTC policies the actor cell's time constants along the first episode
(``LTCCell.time_constants``, in env steps) and how far the sensory synapse slopes moved
from their initial values. This is how docs/benchmarks.md's "How the episodes end" and
"Two LTC properties" were measured::

    python scripts/probe_cartpole.py --policy ltc-32 --seed 0
    python scripts/probe_cartpole.py --policy ltc-32 --seed 3 --hyper gamma=0.995 n_steps=128 n_epochs=10
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_rl  # noqa: E402  (the suite's settings and env wrappers)

from liquid_rl.agents.diagnostics import core_neurons  # noqa: E402


def ltc_cell(model: object) -> torch.nn.Module | None:
    """The actor's LTCCell, or None for other cells."""
    actor = getattr(getattr(model, "policy", None), "lstm_actor", None)
    cell = getattr(getattr(getattr(actor, "core", None), "rnn", None), "rnn_cell", None)
    return cell if cell is not None and hasattr(cell, "time_constants") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="ltc-32", help="a recurrent_ppo policy of bench_rl.py (ltc-32, cfc-32, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training budget (default: the suite's 100k)")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--hyper", nargs="*", default=[], metavar="KEY=VALUE", help="as bench_rl.py --hyper")
    parser.add_argument("--cell", nargs="*", default=[], metavar="KEY=VALUE", help="as bench_rl.py --cell")
    args = parser.parse_args()
    bench_rl.HYPER_OVERRIDES.update(bench_rl._parse_overrides(args.hyper))
    bench_rl.CELL_OVERRIDES.update(bench_rl._parse_overrides(args.cell))
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    specs = [s for s in bench_rl.recurrent_ppo_specs() if s.task == bench_rl.CARTPOLE and s.policy == args.policy]
    if not specs:
        raise SystemExit(f"probe_cartpole: unknown policy {args.policy!r}")
    spec = specs[0]
    env = bench_rl.make_env(spec, args.seed, training=True)
    model = spec.build(env, args.seed)
    cell = ltc_cell(model)
    sigma0 = None if cell is None else cell.sensory_sigma.detach().clone()
    model.learn(args.steps or spec.steps)

    eval_env = bench_rl.make_env(spec, args.seed + 10_000, training=False, train_env=env)
    states_seen: list[np.ndarray] = []
    inputs_seen: list[np.ndarray] = []
    for episode in range(args.episodes):
        obs, state, start = eval_env.reset(), None, np.ones((1,), dtype=bool)
        steps = 0
        while True:
            raw = eval_env.get_original_obs()[0].copy()
            action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
            if episode == 0 and isinstance(state, tuple):
                states_seen.append(state)          # (h, c), each (1, 1, hidden): the packed flat state
                inputs_seen.append(obs.reshape(-1).copy())
            obs, _, done, info = eval_env.step(action)
            start, steps = done, steps + 1
            if done[0]:
                print(f"episode {episode}: {steps} steps, last x {raw[0]:+.3f}, theta {raw[2]:+.3f}, "
                      f"time limit {bool(info[0].get('TimeLimit.truncated', False))}")
                break
    if cell is not None and sigma0 is not None:
        actor = model.policy.lstm_actor
        flat = torch.cat([actor.unpack((torch.as_tensor(h), torch.as_tensor(c))) for h, c in states_seen])
        h = core_neurons(actor.core, flat).float()
        x = torch.tensor(np.array(inputs_seen)).float()
        with torch.no_grad():
            tau = cell.time_constants(h, x).numpy().ravel()
        q = np.quantile(tau, [0.1, 0.5, 0.9])
        print(f"actor LTC time constants along episode 0 (env steps): 10% {q[0]:.3f}, median {q[1]:.3f}, 90% {q[2]:.3f}")
        moved = (cell.sensory_sigma.detach() - sigma0).abs().mean().item()
        print(f"sensory slopes: mean {cell.sensory_sigma.mean().item():.2f}, mean change {moved:.4f}")


if __name__ == "__main__":
    main()
