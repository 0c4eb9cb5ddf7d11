"""The run directory: the names of its files, and the lock that keeps one process in it.

Layout (written by ``agents.train``)::

    <run>/
        config.yaml            the resolved config (every key, defaults filled in)
        run.json               status, step count, starts and resumes
        .lock                  the OS lock of the process that trains in it (see RunLock)
        checkpoints/           atomic checkpoints (agents.checkpoints)
        best/model.zip         best model by periodic evaluation (+ vecnormalize.json, eval.json)
        final/model.zip        final model (+ vecnormalize.json)
        episodes.csv           step, return, length of every finished training episode
        evaluations.json       periodic evaluations
        tb/                    TensorBoard logs
        learning_curve.png, wiring.png
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

from liquid_rl.agents.errors import UserError

__all__ = [
    "CONFIG", "STATUS", "RUN_FILES", "LOCK", "FINAL_DIR", "BEST_DIR", "MODEL", "FINAL_MODEL", "BEST_MODEL",
    "EPISODES", "EVALUATIONS", "TENSORBOARD", "is_run_dir", "in_use_message", "RunLock",
]

CONFIG = "config.yaml"
STATUS = "run.json"
RUN_FILES = (CONFIG, STATUS)  # a folder holding one of these is a run directory
LOCK = ".lock"
FINAL_DIR, BEST_DIR = "final", "best"
MODEL = "model.zip"
FINAL_MODEL = f"{FINAL_DIR}/{MODEL}"
BEST_MODEL = f"{BEST_DIR}/{MODEL}"
EPISODES = "episodes.csv"
EVALUATIONS = "evaluations.json"
TENSORBOARD = "tb"


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a liquid-rl run directory (holds ``config.yaml`` or ``run.json``)."""
    p = Path(path)
    return any((p / name).is_file() for name in RUN_FILES)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def in_use_message(run_dir: str | Path, owner: str) -> str:
    """What a second process is told about a locked run directory."""
    return f"run directory {run_dir} is in use by process {owner}; wait for it to finish or stop it"


class RunLock:
    """An OS lock on ``<run>/.lock``, held while a process trains into the run directory.

    The operating system releases it when the process ends, also on ``kill -9``, so a
    stale lock file never blocks. The file holds the owner's process id for the message
    the next process gets: "run directory X is in use by process N".

    Use as a context manager, or :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    @staticmethod
    def holder(run_dir: str | Path) -> str | None:
        """The process id holding the lock of ``run_dir``, or None when nobody does."""
        path = Path(run_dir) / LOCK
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            if _try_lock(fd):
                _unlock(fd)
                return None
            return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)


    def acquire(self) -> RunLock:
        """Take the lock (creating the run directory if needed).

        Raises:
            UserError: another process holds it, or the folder cannot be written.
        """
        if self._fd is not None:
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot lock run directory {self.run_dir}: {e.strerror or e}") from None
        if not _try_lock(fd):
            try:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise UserError(in_use_message(self.run_dir, owner))
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays; an unlocked file means nothing)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
