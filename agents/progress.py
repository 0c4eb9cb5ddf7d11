"""Training progress as a user sees it: a bar on a terminal, a plain line every tenth of
the run otherwise (a log file gets whole lines), counted from the step a run resumes at.

stable-baselines3 stops at the end of a whole rollout, so a run can go past its budget:
:func:`rounded_budget` says where it really ends, and the bar counts to that.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

__all__ = ["rounded_budget", "budget_note", "ProgressCallback"]


def _chunk(model: BaseAlgorithm) -> tuple[int, str]:
    """Env steps of one unit of collection, and what that unit is in words."""
    n_envs = model.get_env().num_envs if model.get_env() is not None else model.n_envs
    if isinstance(model, OnPolicyAlgorithm):
        return model.n_steps * n_envs, f"rollouts of {model.n_steps * n_envs:,} steps ({model.n_steps} x {n_envs} envs)"
    freq = getattr(model, "train_freq", None)
    if freq is not None and getattr(freq.unit, "value", "step") == "step" and freq.frequency * n_envs > 1:
        return freq.frequency * n_envs, f"collections of {freq.frequency * n_envs:,} steps (train_freq " \
                                        f"{freq.frequency} x {n_envs} envs)"
    return max(n_envs, 1), f"steps of all {n_envs} envs"


def rounded_budget(model: BaseAlgorithm, total_timesteps: int) -> int:
    """The step count at which ``model.learn`` really stops when asked to run from its
    current step to ``total_timesteps``: the remainder rounded up to whole rollouts."""
    start = int(model.num_timesteps)
    if start >= total_timesteps:
        return start
    chunk, _ = _chunk(model)
    return start + math.ceil((total_timesteps - start) / chunk) * chunk


def budget_note(model: BaseAlgorithm, total_timesteps: int) -> str | None:
    """A line saying the budget is rounded up, or None when it is not."""
    end = rounded_budget(model, total_timesteps)
    if end == total_timesteps or int(model.num_timesteps) >= total_timesteps:
        return None
    _, unit = _chunk(model)
    return f"liquid-rl: the budget of {total_timesteps:,} steps is rounded up to {end:,}: training runs whole {unit}"


class ProgressCallback(BaseCallback):
    """Progress of ``model.learn``, from the step it starts at to :func:`rounded_budget`.

    Args:
        total_timesteps: the run's budget (absolute, as ``train.total_timesteps``).
        stream: where to write (default ``sys.stderr``); a bar if it is a terminal, else
            one line per tenth of the run.
    """

    def __init__(self, total_timesteps: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self.budget = int(total_timesteps)
        self.stream = stream if stream is not None else sys.stderr
        self.bar: Any = None
        self.start = self.end = self.next_line = 0
        self.last_line = -1  # step of the last plain line written
        self.t0 = 0.0

    def _on_training_start(self) -> None:
        self.start = int(self.model.num_timesteps)
        self.end = rounded_budget(self.model, self.budget)
        self.t0 = time.perf_counter()
        label = "steps" if self.end == self.budget else f"steps (budget {self.budget:,}, rounded up to whole rollouts)"
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=self.end, initial=self.start, unit="step", desc=label, file=self.stream,
                            dynamic_ncols=True, leave=True)
        else:
            self.next_line = self.start + max((self.end - self.start) // 10, 1)

    def _on_step(self) -> bool:
        step = int(self.num_timesteps)
        if self.bar is not None:
            if step > self.bar.total:  # an algorithm that collects more than predicted
                self.bar.total = step
            self.bar.update(step - self.bar.n)
        elif step >= self.next_line:
            self._line(step)
            self.next_line = step + max((self.end - self.start) // 10, 1)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.update(int(self.num_timesteps) - self.bar.n)
            self.bar.close()  # ends the bar's line, so what follows starts on its own
            self.bar = None
        elif int(self.num_timesteps) > self.start and int(self.num_timesteps) != self.last_line:
            self._line(int(self.num_timesteps))

    def _line(self, step: int) -> None:
        elapsed = time.perf_counter() - self.t0
        rate = (step - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.end - step) / rate if rate > 0 and step < self.end else 0.0
        self.last_line = step
        print(f"liquid-rl: step {step:,}/{self.end:,} ({100 * step / max(self.end, 1):.0f}%), "
              f"{rate:,.0f} steps/s, {_clock(elapsed)} elapsed, {_clock(eta)} left", file=self.stream, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
