"""Neuron activity of a trained liquid policy over one evaluation episode.

Writes ``activity_heatmap.png`` (neurons x time), ``activity_traces.png`` (motor and
command neurons), ``wiring.png`` and ``activity.npz`` (the raw states, for your own
analysis) for the policy's acting core (the core called when the policy acts: the
actor's).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liquid_rl.agents.diagnostics import CoreRecorder, core_label, core_neurons, core_wiring
from liquid_rl.agents.errors import UserError
from liquid_rl.agents.plots import plot_activity
from liquid_rl.agents.safe_load import Agent, load_agent

__all__ = ["inspect_agent", "neuron_labels"]


def inspect_agent(source: Any, out_dir: str | Path | None = None, seed: int = 0, deterministic: bool = True,
                  max_steps: int | None = None, device: str = "auto") -> dict[str, Any]:
    """Run one episode and plot the acting core's neuron activity.

    Args:
        source: a run directory, a model file or a loaded ``Agent``.
        out_dir: output folder (default ``<run>/inspect`` or beside the model file).
        seed: seed of the episode.
        deterministic: act deterministically.
        max_steps: stop the episode after this many steps (default: its end).
        device: torch device.

    Returns:
        ``{"heatmap", "traces", "wiring" (or None), "activity", "steps", "return", "core"}``.

    Raises:
        UserError: a policy without a recurrent core, or a model that cannot be loaded.
    """
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise UserError(f"--max-steps must be a positive integer, got {max_steps!r}")
    agent = source if isinstance(source, Agent) else load_agent(source, device=device)
    recorder = CoreRecorder(agent.model.policy, keep_history=True)
    if not recorder.cores:
        recorder.remove()
        raise UserError(f"{agent.path}: its policy ({agent.config['policy']['type']}) has no recurrent core to "
                        "inspect; inspect works on liquid (and LSTM) policies")
    if out_dir is None:
        run = agent.run_dir
        out = (run / "inspect") if run is not None else agent.path.with_name(agent.path.stem + "_inspect")
    else:
        out = Path(out_dir)

    venv = agent.make_env(n_envs=1, seed=seed)
    states: list[np.ndarray] = []
    acting: str | None = None
    total, steps = 0.0, 0
    try:
        obs = venv.reset()
        state, start = None, np.ones((1,), dtype=bool)
        while True:
            recorder.clear()
            action, state = agent.model.predict(obs, state=state, episode_start=start, deterministic=deterministic)
            if acting is None and recorder.fired:
                acting = recorder.fired[0]
            if acting is not None and recorder.history[acting]:
                states.append(recorder.history[acting][-1][0])
            obs, reward, done, _ = venv.step(action)
            start = done
            total += float(reward[0])  # evaluation envs never normalise rewards
            steps += 1
            if done[0] or (max_steps is not None and steps >= max_steps):
                break
    finally:
        recorder.remove()
        venv.close()
    if acting is None or not states:
        raise UserError(f"{agent.path}: the policy's recurrent cores are not called when it acts; nothing to plot")

    core = recorder.cores[acting]
    neurons = core_neurons(core, torch.as_tensor(np.stack(states))).numpy()
    wiring = core_wiring(core)
    labels = neuron_labels(core, wiring, neurons.shape[1])
    cfg = agent.config
    title = f"{cfg['env']['id']} · {cfg['policy']['cell'] or cfg['policy']['type']} · {core_label(acting)} neurons"
    dt = _env_dt(agent)
    heatmap, traces = plot_activity(neurons, labels, out, title=title, dt=dt)
    wiring_png = wiring.draw(out / "wiring.png") if wiring is not None else None
    activity = out / "activity.npz"
    np.savez(activity, states=neurons, labels=np.asarray(labels))
    result = {"heatmap": str(heatmap), "traces": str(traces), "wiring": str(wiring_png) if wiring_png else None,
              "activity": str(activity), "steps": steps, "return": total, "core": core_label(acting)}
    (out / "inspect.json").write_text(json.dumps(result, indent=1))
    return result


def neuron_labels(core: Any, wiring: Any, n: int) -> list[str]:
    """The type of each of the ``n`` neurons ("motor", "command", "inter"), or "neuron"
    for all when they are all of one type (a fully connected LTC reads out every neuron).

    Without a wiring the core's outputs are its first ``output_size`` neurons.
    """
    if wiring is not None:
        labels = [wiring.get_type_of_neuron(i) for i in range(n)]
    else:
        motor = int(getattr(core, "output_size", 0) or 0)
        labels = ["motor" if i < motor else "inter" for i in range(n)]
    return ["neuron"] * n if len(set(labels)) == 1 else labels


def _env_dt(agent: Any) -> float | None:
    try:
        import gymnasium as gym

        from liquid_rl.envs.wrappers import find_base_dt

        env = gym.make(agent.config["env"]["id"], **agent.config["env"]["kwargs"])
        try:
            return find_base_dt(env)
        finally:
            env.close()
    except Exception:
        return None
