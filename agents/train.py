"""Train an agent from a config into a run directory, and resume a killed run.

Run directory::

    config.yaml            the resolved config (every key, defaults filled in)
    run.json               status, step count, starts and resumes
    tb/                    TensorBoard: stable-baselines3's scalars, eval/*, liquid/*
    checkpoints/           atomic checkpoints, the newest ``train.keep_checkpoints`` kept
    best/                  best model by periodic evaluation (model.zip, vecnormalize.json, eval.json)
    final/                 final model (model.zip, vecnormalize.json)
    episodes.csv           step, return, length of every finished training episode
    evaluations.json       periodic evaluations
    learning_curve.png     training and evaluation returns against env steps
    wiring.png             the liquid cell's wiring (liquid policies)

Checkpoints (and the periodic best-model evaluation) happen between two rollouts of the
algorithm (``on_rollout_start``), where parameters, optimizer, normalisation and replay
buffer are consistent; a resumed run continues from the latest one with
``learn(remaining, reset_num_timesteps=False)``, so step counts and TensorBoard curves
continue.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure, make_output_format
from torch.utils.tensorboard import SummaryWriter
from stable_baselines3.common.vec_env import VecEnv

from liquid_rl.agents.algorithms import is_off_policy
from liquid_rl.agents.build import (
    apply_threads,
    build_model,
    check_buildable,
    find_vecnormalize,
    make_vec_env,
    normalization_to_json,
    sync_normalization,
)
from liquid_rl.agents.checkpoints import latest_checkpoint, write_checkpoint
from liquid_rl.agents.config import apply_overrides, dump_config, load_config, validate_config
from liquid_rl.agents.diagnostics import LiquidDiagnosticsCallback, core_wiring, find_cores
from liquid_rl.agents.errors import UserError
from liquid_rl.agents.evaluate import run_episodes, summarize
from liquid_rl.agents.plots import plot_learning_curve, read_episodes, read_evaluations
from liquid_rl.agents.progress import ProgressCallback, budget_note
from liquid_rl.agents.output_paths import check_output_dir
from liquid_rl.agents.run_dir import (
    BEST_DIR,
    BEST_MODEL,
    CONFIG,
    EPISODES,
    EVALUATIONS,
    FINAL_DIR,
    FINAL_MODEL,
    LOCK,
    MODEL,
    RUN_FILES,
    STATUS,
    TENSORBOARD,
    RunLock,
    in_use_message,
    is_run_dir,
)
from liquid_rl.agents.safe_load import (
    atomic_write_text,
    load_agent,
    load_replay_buffer,
    read_metadata,
    save_agent,
)

__all__ = ["train", "resume", "check_config", "default_run_dir", "RUN_FILES"]

EVAL_SEED_OFFSET = 10_000  # evaluation envs never replay the training envs' seeds


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- run directory ------------------------------------------------------------------------------------


def default_run_dir(config_path: str | Path | None, seed: int) -> Path:
    """``runs/<config name>-seed<seed>``."""
    stem = Path(config_path).stem if config_path is not None else "run"
    return Path("runs") / f"{stem}-seed{seed}"


def _prepare_run_dir(run_dir: Path, overwrite: bool, locked_by_us: bool = False) -> None:
    """Raise unless ``run_dir`` may be (re)created (a lock file alone does not count)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a directory")
    owner = None if locked_by_us else RunLock.holder(run_dir)
    if owner is not None:
        raise UserError(in_use_message(run_dir, owner))
    if run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir()):
        if not overwrite:
            hint = (f"; continue it with --resume {run_dir}" if is_run_dir(run_dir) else "")
            raise UserError(f"run directory {run_dir} exists; pass --overwrite to replace it{hint}")
        if not is_run_dir(run_dir):
            raise UserError(f"--out {run_dir} is a non-empty directory that is not a liquid-rl run; "
                            "refusing to delete it: choose another --out")


def _write_status(run_dir: Path, **update: Any) -> dict[str, Any]:
    path = run_dir / STATUS
    status: dict[str, Any] = {}
    if path.is_file():
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            status = {}
    history = update.pop("event", None)
    status.update(update)
    if history is not None:
        status.setdefault("history", []).append(history)
    atomic_write_text(path, json.dumps(status, indent=1))
    return status


# --- callbacks ------------------------------------------------------------------------------------------


class _Every:
    """Fires once each time the step count passes a multiple of ``every``."""

    def __init__(self, every: int, start: int) -> None:
        self.every = int(every)
        self.last = start // self.every if self.every > 0 else 0

    def __call__(self, step: int) -> bool:
        if self.every <= 0:
            return False
        k = step // self.every
        if k > self.last:
            self.last = k
            return True
        return False


class CheckpointCallback(BaseCallback):
    """Writes an atomic checkpoint (model, normalisation, replay buffer) every
    ``train.checkpoint_every`` steps, between rollouts."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.run_dir, self.config = run_dir, config
        self.due: _Every | None = None

    def _on_training_start(self) -> None:
        self.due = _Every(self.config["train"]["checkpoint_every"], self.num_timesteps)

    def _on_rollout_start(self) -> None:
        assert self.due is not None
        if self.due(self.num_timesteps):
            self.save()

    def save(self) -> None:
        write_checkpoint(self.run_dir, self.model, self.config, keep=self.config["train"]["keep_checkpoints"],
                         replay_buffer=is_off_policy(self.config["algo"]["name"]))
        _write_status(self.run_dir, num_timesteps=int(self.num_timesteps), checkpoint_step=int(self.num_timesteps))

    def _on_step(self) -> bool:
        return True


class EpisodeLogCallback(BaseCallback):
    """Appends (step, return, length) of every finished training episode to ``episodes.csv``."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file: Any = None

    def _on_training_start(self) -> None:
        new = not self.path.is_file()
        self._file = self.path.open("a", newline="")
        if new:
            self._file.write("step,return,length\n")

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            ep = info.get("episode")
            if ep is not None:
                self._file.write(f"{self.num_timesteps},{float(ep['r']):.6g},{int(ep['l'])}\n")
                self._file.flush()
        return True

    def _on_training_end(self) -> None:
        if self._file is not None:
            self._file.close()


class BestModelCallback(BaseCallback):
    """Every ``train.eval_every`` steps (between rollouts), evaluates the policy on its own
    env for ``train.eval_episodes`` episodes, logs ``eval/*``, appends to
    ``evaluations.json``, redraws the learning curve and saves ``best/`` when the mean
    return improves."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], eval_env: VecEnv,
                 on_evaluation: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__()
        self.run_dir, self.config, self.eval_env = run_dir, config, eval_env
        self.on_evaluation = on_evaluation
        self.last_step = -1
        self.due: _Every | None = None
        self.best = -np.inf
        best = run_dir / BEST_DIR / "eval.json"
        if best.is_file():
            try:
                self.best = float(json.loads(best.read_text())["mean_return"])
            except (OSError, ValueError, KeyError):
                pass

    def _on_training_start(self) -> None:
        self.due = _Every(self.config["train"]["eval_every"], self.num_timesteps)

    def _on_rollout_start(self) -> None:
        assert self.due is not None
        if self.due(self.num_timesteps):
            self.evaluate()

    def _on_step(self) -> bool:
        return True

    def evaluate(self) -> dict[str, Any]:
        train_env = self.model.get_env()
        sync_normalization(train_env, self.eval_env)
        t = self.config["train"]
        returns, lengths = run_episodes(self.model, self.eval_env, t["eval_episodes"], t["eval_deterministic"])
        self.last_step = self.num_timesteps
        result = {"step": int(self.num_timesteps), **summarize(returns, lengths), "returns": returns,
                  "lengths": lengths}
        self.logger.record("eval/mean_reward", result["mean_return"])
        self.logger.record("eval/std_reward", result["std_return"])
        self.logger.record("eval/mean_ep_length", result["mean_length"])
        self.logger.dump(self.num_timesteps)  # as SB3's EvalCallback: stamped with this step
        evaluations = read_evaluations(self.run_dir / EVALUATIONS)
        evaluations.append(result)
        atomic_write_text(self.run_dir / EVALUATIONS, json.dumps(evaluations, indent=1))
        if self.on_evaluation is not None:  # e.g. a sweep reporting the curve to its scheduler
            self.on_evaluation(result)
        if result["mean_return"] > self.best:
            self.best = result["mean_return"]
            best = self.run_dir / BEST_DIR
            save_agent(self.model, best / MODEL, self.config)
            _write_normalization(self.model, best)
            atomic_write_text(best / "eval.json", json.dumps(result, indent=1))
        try:
            plot_learning_curve(self.run_dir, title=_title(self.config))
        except Exception as e:  # a plot must never stop training
            _say(f"liquid-rl: warning: learning curve not drawn ({e})")
        return result


def _write_normalization(model: BaseAlgorithm, folder: Path) -> None:
    vecnorm = find_vecnormalize(model.get_env())
    if vecnorm is not None:
        atomic_write_text(folder / "vecnormalize.json", json.dumps(normalization_to_json(vecnorm)))


def _title(cfg: Mapping[str, Any]) -> str:
    """e.g. "liquid_rl/LaneKeeping-v0 · recurrent_ppo · liquid_recurrent ltc NCP 12-6-1"."""
    p = cfg["policy"]
    wiring = p["wiring"]
    if isinstance(wiring, Mapping):
        wiring = f"NCP {wiring['inter_neurons']}-{wiring['command_neurons']}-{wiring['motor_neurons']}"
    what = " ".join(str(x) for x in (p["type"], p["cell"], wiring, p["units"] and f"{p['units']} units") if x)
    return f"{cfg['env']['id']} · {cfg['algo']['name']} · {what}"


# --- training ---------------------------------------------------------------------------------------------


def _resolve(config: str | Path | Mapping[str, Any], overrides: Sequence[str], seed: int | None,
             device: str | None) -> dict[str, Any]:
    if isinstance(config, Mapping):
        extra = list(overrides) + ([f"train.seed={int(seed)}"] if seed is not None else []) + \
            ([f"train.device={device}"] if device is not None else [])
        return validate_config(apply_overrides(config, extra))
    return load_config(config, overrides, seed=seed, device=device)


def train(config: str | Path | Mapping[str, Any], out: str | Path | None = None, *, overrides: Sequence[str] = (),
          seed: int | None = None, device: str | None = None, overwrite: bool = False,
          progress_bar: bool | None = None,
          on_evaluation: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Train an agent as a config says, into a new run directory.

    Args:
        config: a YAML file or a config mapping (validated in full before anything runs).
        out: run directory (default ``runs/<config name>-seed<seed>``).
        overrides: ``key.path=value`` settings, as ``--set``.
        seed, device: as ``--seed`` and ``--device``.
        overwrite: replace an existing run directory.
        progress_bar: override ``train.progress_bar``.
        on_evaluation: called with each periodic evaluation (step, mean_return, ...).

    Returns:
        The run directory.

    Raises:
        ConfigError, UserError: an invalid config or run directory; nothing is written then.
    """
    cfg = _resolve(config, overrides, seed, device)
    seed = cfg["train"]["seed"]
    run_dir = Path(out) if out is not None else default_run_dir(None if isinstance(config, Mapping) else config, seed)
    check_output_dir(run_dir, "--out")
    _prepare_run_dir(run_dir, overwrite)

    # Build everything before the first file is written: errors leave no trace.
    apply_threads(cfg)
    venv = make_vec_env(cfg, seed=seed)
    try:
        eval_env = make_vec_env(cfg, n_envs=1, seed=seed + EVAL_SEED_OFFSET, training=False,
                                check_finite=cfg["train"]["check_finite"])
        model = build_model(cfg, venv)
    except BaseException:
        venv.close()
        raise

    existed = run_dir.exists()
    lock = RunLock(run_dir)
    try:
        lock.acquire()
        # again, under the lock: another process may have started in the meantime
        _prepare_run_dir(run_dir, overwrite, locked_by_us=True)
    except UserError:
        venv.close()
        eval_env.close()
        if lock.held:
            lock.release()
            if not existed:
                shutil.rmtree(run_dir, ignore_errors=True)
        raise
    with lock:
        for entry in run_dir.iterdir():  # --overwrite: everything but the lock we hold
            if entry.name != LOCK:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        atomic_write_text(run_dir / CONFIG, dump_config(cfg))
        _write_status(run_dir, status="running", total_timesteps=cfg["train"]["total_timesteps"], num_timesteps=0,
                      liquid_rl_version=_version(), event={"event": "start", "step": 0, "time": time.time()})
        _draw_wiring(model, run_dir)
        _say(f"liquid-rl: training {_title(cfg)} for {cfg['train']['total_timesteps']} steps into {run_dir}")
        return _learn(run_dir, cfg, model, venv, eval_env, progress_bar, resumed=False, on_evaluation=on_evaluation)


def resume(run_dir: str | Path, *, overrides: Sequence[str] = (), progress_bar: bool | None = None,
           device: str | None = None, on_evaluation: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Continue a run from its latest checkpoint (or from the start if it was killed before
    the first one): model, optimizer, normalisation statistics and, for off-policy
    algorithms, the replay buffer; the step count continues.

    Args:
        run_dir: the run directory.
        overrides: only ``train.total_timesteps`` may change (to extend a run).
        progress_bar: override ``train.progress_bar``.
        device: torch device (default: the config's).
        on_evaluation: called with each periodic evaluation, as in ``train``.

    Raises:
        UserError: not a run directory, or a checkpoint that cannot be loaded.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"--resume {run}: no such run directory")
    if not (run / CONFIG).is_file():
        raise UserError(f"--resume {run}: not a run directory (no config.yaml)")
    for item in overrides:
        if item.partition("=")[0].strip() != "train.total_timesteps":
            raise UserError(f"--resume takes only --set train.total_timesteps=N (to extend the run), not {item!r}")
    cfg = load_config(run / CONFIG, overrides, device=device)
    check_output_dir(run, "--resume")
    with RunLock(run):
        return _resume_locked(run, cfg, progress_bar, on_evaluation)


def _resume_locked(run: Path, cfg: dict[str, Any], progress_bar: bool | None,
                   on_evaluation: Callable[[dict[str, Any]], None] | None) -> Path:
    seed = cfg["train"]["seed"]
    ckpt = latest_checkpoint(run)
    start = ckpt.step if ckpt is not None else 0
    apply_threads(cfg)

    if ckpt is None:
        venv = make_vec_env(cfg, seed=seed)
        model = build_model(cfg, venv)
    else:
        meta = read_metadata(ckpt.model_path)
        venv = make_vec_env(cfg, seed=seed + start, normalization=meta.get("normalization"))
        try:
            agent = load_agent(ckpt.model_path, device=cfg["train"]["device"], env=venv, keep_buffer=True)
        except BaseException:
            venv.close()
            raise
        model = agent.model
        model.set_random_seed(seed + start)  # new episodes, not a replay of the first ones
        if is_off_policy(cfg["algo"]["name"]):
            if ckpt.replay_buffer_path is None:
                venv.close()
                raise UserError(f"checkpoint {ckpt.path} has no replay buffer")
            load_replay_buffer(model.replay_buffer, ckpt.replay_buffer_path)
    eval_env = make_vec_env(cfg, n_envs=1, seed=seed + EVAL_SEED_OFFSET + start, training=False,
                            check_finite=cfg["train"]["check_finite"])

    atomic_write_text(run / CONFIG, dump_config(cfg))
    _truncate_logs(run, start)
    total = cfg["train"]["total_timesteps"]
    _write_status(run, status="running", total_timesteps=total, num_timesteps=start,
                  event={"event": "resume", "step": start, "time": time.time()})
    _draw_wiring(model, run)
    if start >= total:
        _say(f"liquid-rl: {run} has reached its budget ({start} >= {total} steps); nothing to do")
        venv.close()
        eval_env.close()
        return _finish(run, cfg, model)
    _say(f"liquid-rl: resuming {run} at step {start} of {total}")
    return _learn(run, cfg, model, venv, eval_env, progress_bar, resumed=True, on_evaluation=on_evaluation)


def _truncate_logs(run: Path, step: int) -> None:
    """Forget episodes and evaluations after ``step`` (those steps are run again) and
    remove temporary files left by a killed process."""
    for folder in (run, run / BEST_DIR, run / FINAL_DIR):
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
    episodes = read_episodes(run / EPISODES)
    if len(episodes):
        keep = episodes[episodes[:, 0] <= step]
        lines = ["step,return,length"] + [f"{int(s)},{r:.6g},{int(n)}" for s, r, n in keep]
        atomic_write_text(run / EPISODES, "\n".join(lines) + "\n")
    evaluations = read_evaluations(run / EVALUATIONS)
    if evaluations:
        atomic_write_text(run / EVALUATIONS,
                          json.dumps([e for e in evaluations if e.get("step", 0) <= step], indent=1))


def _learn(run_dir: Path, cfg: dict[str, Any], model: BaseAlgorithm, venv: VecEnv, eval_env: VecEnv,
           progress_bar: bool | None, resumed: bool,
           on_evaluation: Callable[[dict[str, Any]], None] | None = None) -> Path:
    t = cfg["train"]
    formats = ["tensorboard"] + (["stdout"] if t["verbose"] else [])
    if resumed:
        folder = str(run_dir / TENSORBOARD)
        outputs = [_ResumedTensorBoard(folder, int(model.num_timesteps))]
        outputs += [make_output_format(f, folder) for f in formats if f != "tensorboard"]
        model.set_logger(Logger(folder, outputs))
    else:
        model.set_logger(configure(str(run_dir / TENSORBOARD), formats))
    progress = t["progress_bar"] if progress_bar is None else progress_bar
    checkpoints = CheckpointCallback(run_dir, cfg)
    callbacks: list[BaseCallback] = [checkpoints, EpisodeLogCallback(run_dir / EPISODES)]
    best = BestModelCallback(run_dir, cfg, eval_env, on_evaluation) if t["eval_every"] > 0 else None
    if best is not None:
        callbacks.append(best)
    if t["diagnostics_every"] > 0:
        callbacks.append(LiquidDiagnosticsCallback(t["diagnostics_every"]))
    remaining = t["total_timesteps"] - int(model.num_timesteps)
    note = budget_note(model, t["total_timesteps"])
    if note:
        _say(note)
    if progress:
        callbacks.append(ProgressCallback(t["total_timesteps"]))  # a bar on a terminal, lines in a log
    try:
        model.learn(remaining, callback=CallbackList(callbacks), progress_bar=False,
                    reset_num_timesteps=not resumed)
    except KeyboardInterrupt:
        checkpoints.save()
        _write_status(run_dir, status="interrupted", num_timesteps=int(model.num_timesteps))
        _say(f"\nliquid-rl: interrupted at step {model.num_timesteps}; checkpoint saved. "
             f"Continue with: liquid-rl train --resume {run_dir}")
        eval_env.close()
        raise
    if best is not None and best.last_step != model.num_timesteps:
        best.evaluate()  # the final policy competes for best/ too
    eval_env.close()
    checkpoints.save()
    path = _finish(run_dir, cfg, model)
    venv.close()
    return path


class _ResumedTensorBoard(TensorBoardOutputFormat):
    """stable-baselines3's TensorBoard output continuing a killed run at ``step``: events at
    or after ``step`` from the killed process are dropped (those steps are logged again),
    with ``SummaryWriter(purge_step=...)``."""

    def __init__(self, folder: str, step: int) -> None:  # not super().__init__: it would open a second file
        self.writer = SummaryWriter(log_dir=folder, purge_step=step)
        self._is_closed = False


def _finish(run_dir: Path, cfg: Mapping[str, Any], model: BaseAlgorithm) -> Path:
    final = run_dir / FINAL_DIR
    save_agent(model, final / MODEL, cfg)
    _write_normalization(model, final)
    curve = plot_learning_curve(run_dir, title=_title(cfg))
    _write_status(run_dir, status="finished", num_timesteps=int(model.num_timesteps), finished=time.time())
    _say(_summary(run_dir, curve))
    return run_dir


def _summary(run_dir: Path, curve: Path) -> str:
    lines = [f"liquid-rl: done. Results in {run_dir}/"]
    items = [("final model", run_dir / FINAL_MODEL), ("best model", run_dir / BEST_MODEL),
             ("learning curve", curve), ("wiring", run_dir / "wiring.png"),
             ("evaluations", run_dir / EVALUATIONS)]
    for label, p in items:
        if p.exists():
            lines.append(f"  {label + ':':16s}{p}")
    lines.append(f"  {'TensorBoard:':16s}tensorboard --logdir {run_dir / 'tb'}")
    lines.append(f"  {'evaluate:':16s}liquid-rl eval {run_dir} --episodes 10 --deterministic")
    return "\n".join(lines)


def _draw_wiring(model: BaseAlgorithm, run_dir: Path) -> Path | None:
    """Draw the first liquid core's wiring to ``wiring.png`` (liquid policies only)."""
    for core in find_cores(model.policy).values():
        wiring = core_wiring(core)
        if wiring is not None:
            try:
                return wiring.draw(run_dir / "wiring.png")
            except Exception as e:  # a plot must never stop training
                _say(f"liquid-rl: warning: wiring not drawn ({e})")
                return None
    return None


def _version() -> str:
    import liquid_rl

    return liquid_rl.__version__


def check_config(config: Mapping[str, Any]) -> None:
    """Validate a config and build its env and model once (see ``build.check_buildable``)."""
    cfg = validate_config(config)
    check_buildable(cfg)

