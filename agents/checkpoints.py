"""Checkpoints that survive a kill at any moment.

Layout inside a run directory::

    checkpoints/
        step_000000012288/          one checkpoint, complete or absent
            model.zip               model + liquid_rl.json (config, spaces, counters, normalisation)
            vecnormalize.json       normalisation statistics (also inside model.zip)
            replay_buffer.npz       off-policy algorithms
        latest.json                 manifest: the last complete checkpoint, written last

A checkpoint is written into a hidden temporary folder, each file fsynced, then the
folder is renamed into place (atomic) and only then the manifest is replaced
(atomically). A kill before the rename leaves a temporary folder that is ignored and
removed later; a kill before the manifest leaves the previous manifest, which still
points at a complete checkpoint.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from liquid_rl.agents.atomic_files import atomic_write_text, fsync_dir
from liquid_rl.agents.build import find_vecnormalize, normalization_to_json
from liquid_rl.agents.errors import UserError
from liquid_rl.agents.model_file import save_agent
from liquid_rl.agents.replay_buffer_files import save_replay_buffer
from liquid_rl.agents.run_dir import MODEL

__all__ = ["Checkpoint", "write_checkpoint", "latest_checkpoint", "prune_checkpoints", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoints"
MANIFEST = "latest.json"
_NAME = re.compile(r"^step_(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its step count and files."""

    step: int
    path: Path

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def replay_buffer_path(self) -> Path | None:
        p = self.path / "replay_buffer.npz"
        return p if p.is_file() else None


def write_checkpoint(run_dir: str | Path, model: BaseAlgorithm, config: Mapping[str, Any], keep: int = 3,
                     replay_buffer: bool = False) -> Checkpoint:
    """Write a checkpoint of ``model`` at its current step and make it the latest."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    step = int(model.num_timesteps)
    final = root / f"step_{step:012d}"
    current = latest_checkpoint(run_dir)
    if current is not None and current.step == step and final.is_dir():
        return current  # this step is saved already
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    files = {"model": MODEL}
    save_agent(model, tmp / MODEL, config)
    vecnorm = find_vecnormalize(model.get_env())
    if vecnorm is not None:
        atomic_write_text(tmp / "vecnormalize.json", json.dumps(normalization_to_json(vecnorm)))
        files["vecnormalize"] = "vecnormalize.json"
    if replay_buffer and getattr(model, "replay_buffer", None) is not None:
        save_replay_buffer(model.replay_buffer, tmp / "replay_buffer.npz")
        files["replay_buffer"] = "replay_buffer.npz"
    if final.exists():  # left by a run killed after the rename and before its manifest
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(root)
    manifest = {"step": step, "dir": final.name, "files": files, "time": time.time()}
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1))
    prune_checkpoints(run_dir, keep)
    return Checkpoint(step, final)


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """The checkpoint named by the manifest, or None if there is none yet.

    Raises:
        UserError: a manifest naming a checkpoint that is not there.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    manifest = root / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
        step, name = int(data["step"]), str(data["dir"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{manifest} is unreadable ({e})") from None
    path = root / name
    if not _NAME.match(name) or not (path / MODEL).is_file():
        raise UserError(f"{manifest} names checkpoint {name!r}, which is missing")
    return Checkpoint(step, path)


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (never the latest) and leftovers of
    interrupted writes."""
    root = Path(run_dir) / CHECKPOINT_DIR
    latest = latest_checkpoint(run_dir)
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir())
    for step, p in steps[: max(0, len(steps) - keep)]:
        if latest is None or p != latest.path:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".{MANIFEST}.*.tmp"):
        p.unlink(missing_ok=True)
