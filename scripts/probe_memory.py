"""How far back a trained recurrent agent's memory matters: deterministic returns with the
policy's state reset every N steps (0: never, as the agent is meant to run). The agent is
a run directory (or a model file) of ``liquid-rl train`` or ``liquid-rl sweep``, loaded
without pickle (``liquid_rl.agents.safe_load``)::

    python scripts/probe_memory.py sweeps/recurrent_sac_inputs/runs/halfcheetah_p_recurrent_sac_ltc-seed1 \
        --reset-every 0 2 8 24 --episodes 10
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from liquid_rl.agents.safe_load import load_agent

EVAL_SEED = 10_000  # never a training seed


def returns_with_resets(agent, every: int, episodes: int) -> list[float]:
    """Returns of ``episodes`` deterministic episodes, the state reset every ``every`` steps."""
    env = agent.make_env(n_envs=1, seed=EVAL_SEED)
    out = []
    try:
        for _ in range(episodes):
            obs, state, start, total, t, done = env.reset(), None, np.ones(1, dtype=bool), 0.0, 0, False
            while not done:
                if every and t % every == 0:
                    start = np.ones(1, dtype=bool)
                action, state = agent.model.predict(obs, state=state, episode_start=start, deterministic=True)
                obs, _, dones, infos = env.step(action)
                done, t, start = bool(dones[0]), t + 1, dones.copy()
                if done:  # the raw return (the env may normalise rewards)
                    total = float(infos[0].get("episode", {}).get("r", np.nan))
            out.append(total)
    finally:
        env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("agent", metavar="RUN_OR_MODEL")
    parser.add_argument("--reset-every", nargs="+", type=int, default=[0, 2, 8, 24], help="0: never")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.agent, device=args.device)
    task = agent.config["env"]["id"]
    for every in args.reset_every:
        r = returns_with_resets(agent, every, args.episodes)
        print(f"{task}: reset every {every or 'never'}: {np.mean(r):.1f} +- {np.std(r):.1f} "
              f"over {args.episodes} episodes", flush=True)


if __name__ == "__main__":
    main()
