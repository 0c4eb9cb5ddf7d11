"""Argument types shared by the subcommands: each rejects bad input with a one-line message."""

from __future__ import annotations

import argparse
import math

__all__ = ["UsageError", "positive_int", "non_negative_float", "seed", "DEVICES", "MODELS", "MODEL_HELP"]

DEVICES = ["auto", "cpu", "cuda"]
#: ``--model`` of eval and inspect (``liquid_rl.agents.safe_load.MODEL_CHOICES``).
MODELS = ["final", "best", "checkpoint"]
MODEL_HELP = ("which model of a run directory: final, best (by periodic evaluation) or checkpoint (the latest); "
              "default the first that exists of final, checkpoint, best")


class UsageError(Exception):
    """Bad command-line use; ``main`` prints it as one line and exits 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value
