"""The small checking language of the config schema.

A *checker* takes a value as read from YAML and returns it normalised (``1e5`` for an
integer key becomes ``100000``) or raises :class:`Invalid` with the reason; the caller
adds the key. :class:`Key` pairs a checker with a default and a one-line description;
:func:`check_section` applies a mapping of keys to one section of a config.
"""

from __future__ import annotations

import copy
import difflib
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from liquid_rl.agents.errors import ConfigError

__all__ = [
    "REQUIRED", "Invalid", "Checker", "Key", "show", "fmt", "as_number", "integer", "number", "boolean", "string",
    "choice", "optional", "mapping", "unknown_key", "check_section",
]

REQUIRED = object()  # marks a key without default

Checker = Callable[[Any], Any]


class Invalid(Exception):
    """Raised by a checker: the value is wrong, for the reason given."""


def show(value: Any) -> str:
    """A value for an error message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def as_number(v: Any) -> Any:
    """``"1e5"`` (a string to YAML 1.1, e.g. from an old dump) as the number it means;
    anything else unchanged. The config loader already reads ``1e5`` as a number."""
    if isinstance(v, str) and _SCIENTIFIC.match(v.strip()):
        return float(v)
    return v


def fmt(x: float) -> str:
    """A bound or value as a user writes it: 0.5, 512, 1e10 (not 10000000000 or 1e+10)."""
    if abs(x) >= 1e6 and float(f"{x:.0e}") == x:
        return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{fmt(low)}, {fmt(high)}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {fmt(low)}"
    if high is not None:
        return f" <= {fmt(high)}"
    return ""


def integer(low: int | None = None, high: int | None = None) -> Checker:
    """An integer in ``[low, high]``; a whole float (``1e5``) is taken as the integer."""
    def check(v: Any) -> int:
        v = as_number(v)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            if isinstance(v, float) and math.isfinite(v) and v == int(v):
                v = int(v)
            else:
                raise Invalid(f"must be an integer{_bounds(low, high)}, got {show(v)}")
        v = int(v)
        if (low is not None and v < low) or (high is not None and v > high):
            raise Invalid(f"must be an integer{_bounds(low, high)}, got {fmt(v)}")
        return v
    check.__doc__ = f"integer{_bounds(low, high)}"
    return check


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Checker:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def check(v: Any) -> float:
        v = as_number(v)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise Invalid(f"must be a finite number{_bounds(low, high, low_open)}, got {show(v)}")
        v = float(v)
        if (low is not None and (v <= low if low_open else v < low)) or (high is not None and v > high):
            raise Invalid(f"must be a number{_bounds(low, high, low_open)}, got {fmt(v)}")
        return v
    check.__doc__ = f"number{_bounds(low, high, low_open)}"
    return check


def boolean(v: Any) -> bool:
    """true or false"""
    if not isinstance(v, bool):
        raise Invalid(f"must be true or false, got {show(v)}")
    return v


def string(v: Any) -> str:
    """string"""
    if not isinstance(v, str) or not v:
        raise Invalid(f"must be a non-empty string, got {show(v)}")
    return v


def choice(options: Sequence[Any]) -> Checker:
    """One of ``options``."""
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise Invalid(f"must be one of {', '.join(map(str, options))}; got {show(v)}")
        return v
    check.__doc__ = " | ".join(map(str, options))
    return check


def optional(inner: Checker) -> Checker:
    """``inner`` or null."""
    def check(v: Any) -> Any:
        return None if v is None else inner(v)
    check.__doc__ = f"{inner.__doc__} or null"
    return check


def mapping(v: Any) -> dict[str, Any]:
    """mapping"""
    if v is None:
        return {}
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise Invalid(f"must be a mapping of names to values, got {show(v)}")
    return dict(v)


class Key:
    """One config key: its checker, default and a one-line description (for docs)."""

    def __init__(self, check: Checker, default: Any = REQUIRED, doc: str = "") -> None:
        self.check, self.default, self.doc = check, default, doc


def unknown_key(path: str, key: Any, known: Sequence[str]) -> ConfigError:
    """The error for ``key`` not in ``known`` under ``path``, suggesting the full dotted key
    (``'train.total_timesteps'``) of the closest known one."""
    where = f"{path}.{key}" if path else str(key)
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    if close:
        hint = f" (did you mean {(f'{path}.{close[0]}' if path else close[0])!r}?)"
    else:
        hint = f"; valid keys: {', '.join(known)}"
    return ConfigError(f"unknown key {where!r}{hint}")


def check_section(path: str, given: Any, keys: Mapping[str, Key]) -> dict[str, Any]:
    """Check the keys of one mapping against ``keys``; fill defaults; check values.

    Raises:
        ConfigError: an unknown or missing key, or a value its checker refuses.
    """
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{path!r} must be a mapping, got {show(given)}")
    for k in given:
        if k not in keys:
            raise unknown_key(path, k, list(keys))
    out: dict[str, Any] = {}
    for name, key in keys.items():
        where = f"{path}.{name}" if path else name
        if name not in given:
            if key.default is REQUIRED:
                raise ConfigError(f"missing key {where!r} ({key.doc})")
            out[name] = copy.deepcopy(key.default)
            continue
        try:
            out[name] = key.check(given[name])
        except Invalid as e:
            raise ConfigError(f"{where!r} {e}") from None
    return out
