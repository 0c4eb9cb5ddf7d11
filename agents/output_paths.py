"""Checks of the paths a command will write, made before anything runs, so that a file
where a folder is expected, a folder where a file is expected, or a folder that cannot be
written gives one line (exit 2) instead of a traceback halfway through."""

from __future__ import annotations

import os
from pathlib import Path

from liquid_rl.agents.errors import UserError

__all__ = ["check_output_dir", "check_output_file"]


def _check_parents(path: Path, flag: str) -> None:
    """The nearest existing folder above ``path`` must be a writable folder."""
    for q in path.parents:
        if q.exists():
            if not q.is_dir():
                raise UserError(f"{flag} {path}: {q} is a file, not a folder")
            if not os.access(q, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {path}: cannot write in {q} (permission denied)")
            return


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Raise :class:`UserError` unless ``path`` is, or can be created as, a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} is a file; give a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise UserError(f"{flag} {p}: cannot write in it (permission denied)")
        return p
    _check_parents(p, flag)
    return p


def check_output_file(path: str | Path, flag: str) -> Path:
    """Raise :class:`UserError` unless ``path`` can be written as a file (its folder
    created if needed)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a folder; give a file name, e.g. {p / 'eval.json'}")
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{flag} {p}: cannot write it (permission denied)")
    _check_parents(p, flag)
    return p
