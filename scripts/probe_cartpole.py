"""Train one CartPoleNoVel policy from its config and look inside it.

Prints, for the final policy: where each deterministic evaluation episode ends (cart
position and pole angle of the last observation, and whether the time limit ended it),
and for LTC policies the actor cell's time constants along the first episode
(``LTCCell.time_constants``, in env steps) and how far the sensory synapse slopes moved
from their initial values. This is how docs/benchmarks.md's "How the episodes end" and
"Two LTC properties" were measured::

    python scripts/probe_cartpole.py --config configs/cartpole_novel_ltc.yaml --seed 0
    python scripts/probe_cartpole.py --seed 3 --set algo.hyperparams.gamma=0.995 --set algo.hyperparams.n_epochs=10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from liquid_rl.agents.build import apply_threads, build_model, find_vecnormalize, make_vec_env, sync_normalization
from liquid_rl.agents.config import load_config
from liquid_rl.agents.diagnostics import core_neurons

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_novel_ltc.yaml"
EVAL_SEED_OFFSET = 10_000  # as training's evaluations


def ltc_cell(model: object) -> torch.nn.Module | None:
    """The actor's LTCCell, or None for other cells."""
    actor = getattr(getattr(model, "policy", None), "lstm_actor", None)
    cell = getattr(getattr(getattr(actor, "core", None), "rnn", None), "rnn_cell", None)
    return cell if cell is not None and hasattr(cell, "time_constants") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG), help="a CartPoleNoVel config (default the LTC's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as liquid-rl train --set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training budget (default: the config's)")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    steps = [f"train.total_timesteps={args.steps}"] if args.steps else []
    cfg = load_config(args.config, args.overrides + steps, seed=args.seed)
    apply_threads(cfg)
    torch.manual_seed(args.seed)
    env = make_vec_env(cfg, seed=args.seed)
    model = build_model(cfg, env, seed=args.seed)
    cell = ltc_cell(model)
    sigma0 = None if cell is None else cell.sensory_sigma.detach().clone()
    model.learn(cfg["train"]["total_timesteps"])

    eval_env = make_vec_env(cfg, n_envs=1, seed=args.seed + EVAL_SEED_OFFSET, training=False)
    sync_normalization(env, eval_env)
    eval_norm = find_vecnormalize(eval_env)
    states_seen: list[np.ndarray] = []
    inputs_seen: list[np.ndarray] = []
    for episode in range(args.episodes):
        obs, state, start = eval_env.reset(), None, np.ones((1,), dtype=bool)
        steps = 0
        while True:
            raw = (eval_norm.get_original_obs() if eval_norm is not None else obs)[0].copy()
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
