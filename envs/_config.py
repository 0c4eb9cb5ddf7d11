"""Configuration handling shared by the environment classes.

Each environment class has a classmethod ``default_config()`` returning a plain dict.
Keyword arguments given to ``gymnasium.make`` (or a ``config=`` dict) override it.
Unknown keys and invalid values raise ``ValueError`` naming the key, so that a typo in
an experiment file fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any


def merge_config(
    owner: str,
    defaults: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``defaults`` updated with ``config`` then ``overrides``.

    Raises ``ValueError`` naming every unknown key and listing the valid ones.
    """
    merged = copy.deepcopy(dict(defaults))
    given: dict[str, Any] = {}
    if config is not None:
        if not isinstance(config, Mapping):
            raise ValueError(f"{owner}: 'config' must be a mapping, got {type(config).__name__}")
        given.update(config)
    if overrides:
        given.update(overrides)
    unknown = sorted(k for k in given if k not in merged)
    if unknown:
        raise ValueError(
            f"{owner}: unknown config key(s) {', '.join(repr(k) for k in unknown)}; "
            f"valid keys are: {', '.join(sorted(merged))}"
        )
    merged.update(copy.deepcopy(given))
    return merged


def _fail(owner: str, key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{owner}: invalid value for config key {key!r}: {value!r} ({why})")


def check_number(
    owner: str,
    cfg: Mapping[str, Any],
    key: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> None:
    """Check that ``cfg[key]`` is a finite real (or integer) within the given bounds."""
    value = cfg[key]
    if isinstance(value, bool):
        raise _fail(owner, key, value, "expected a number, got a bool")
    if integer:
        if not isinstance(value, numbers.Integral):
            raise _fail(owner, key, value, "expected an integer")
    else:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise _fail(owner, key, value, "expected a number") from None
        if not math.isfinite(value):
            raise _fail(owner, key, value, "expected a finite number")
    if low is not None:
        if low_open and not value > low:
            raise _fail(owner, key, value, f"must be > {low}")
        if not low_open and not value >= low:
            raise _fail(owner, key, value, f"must be >= {low}")
    if high is not None and not value <= high:
        raise _fail(owner, key, value, f"must be <= {high}")


def check_range(
    owner: str, cfg: Mapping[str, Any], key: str, *, low: float = 0.0, low_open: bool = True
) -> None:
    """Check that ``cfg[key]`` is a pair ``[a, b]`` of numbers with ``low < a <= b``."""
    value = cfg[key]
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 2
        or any(isinstance(v, bool) for v in value)
    ):
        raise _fail(owner, key, value, "expected a pair [min, max]")
    try:
        a, b = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise _fail(owner, key, value, "expected a pair of numbers") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise _fail(owner, key, value, "expected finite numbers")
    if (low_open and not a > low) or (not low_open and not a >= low):
        raise _fail(owner, key, value, f"min must be {'>' if low_open else '>='} {low}")
    if not a <= b:
        raise _fail(owner, key, value, "min must be <= max")


def check_choice(owner: str, cfg: Mapping[str, Any], key: str, choices: Sequence[Any]) -> None:
    """Check that ``cfg[key]`` is one of ``choices``."""
    if cfg[key] not in choices:
        raise _fail(owner, key, cfg[key], f"expected one of {list(choices)}")


def fail(owner: str, key: str, value: Any, why: str) -> ValueError:
    """Build the ``ValueError`` used for an invalid value (for checks done by hand)."""
    return _fail(owner, key, value, why)
