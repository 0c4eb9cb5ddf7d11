"""``algo.hyperparams`` checked against the algorithm class's signature: names, types
from its annotations, and the ranges of :data:`~liquid_rl.agents.config.schema.HYPERPARAM_RANGES`."""

from __future__ import annotations

import inspect
import numbers
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from liquid_rl.agents.algorithms import get_algorithm
from liquid_rl.agents.config.checks import Invalid, as_number, check_section, show, unknown_key
from liquid_rl.agents.config.schema import ACTION_NOISE, HYPERPARAM_RANGES
from liquid_rl.agents.errors import ConfigError

__all__ = ["check_hyperparams", "check_kwarg_types", "type_ok", "SCHEDULE"]

#: "lin_3e-4": a linear schedule from 3e-4 to 0
SCHEDULE = re.compile(r"^lin_([0-9.eE+-]+)$")

# Algorithm arguments that liquid-rl sets itself, and where the config sets them instead.
_RESERVED = {
    "policy": "policy.type", "env": "env.id", "policy_kwargs": "the policy section",
    "tensorboard_log": "the run directory", "verbose": "train.verbose", "seed": "train.seed",
    "device": "train.device", "_init_setup_model": None, "rollout_buffer_class": None,
    "replay_buffer_class": None,
}


def type_ok(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a (simple) type annotation of an algorithm argument."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, typing.Tuple):  # noqa: UP006
        args = typing.get_args(annotation)
        return (isinstance(value, (list, tuple)) and len(value) == len(args)
                and all(type_ok(v, a) for v, a in zip(value, args)))
    if origin in (dict, typing.Dict, Mapping):  # noqa: UP006
        return isinstance(value, Mapping)
    if origin in (list, typing.List):  # noqa: UP006
        return isinstance(value, list)
    if origin is Callable or annotation is Callable or str(annotation).startswith("collections.abc.Callable"):
        return isinstance(value, str) and bool(SCHEDULE.match(value))
    return False


_SIMPLE = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def _simple_wants(annotation: Any) -> str | None:
    """What a simple annotation (bool, int, float, str, None, unions and lists of them)
    asks for, in words; None for anything else (then any value is let through)."""
    origin = typing.get_origin(annotation)
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    if origin in (typing.Union, types.UnionType):
        parts = [_simple_wants(a) for a in typing.get_args(annotation)]
        return None if None in parts else " or ".join(dict.fromkeys(parts))  # type: ignore[arg-type]
    if origin in (list, tuple, Sequence) and len(typing.get_args(annotation)) == 1:
        inner = _simple_wants(typing.get_args(annotation)[0])
        return None if inner is None else f"a list of {inner.replace('an ', '').replace('a ', '')}s"
    return None


def _fits(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, Sequence):
        inner = typing.get_args(annotation)[0]
        return isinstance(value, (list, tuple)) and all(_fits(v, inner) for v in value)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(annotation))
    return type_ok(value, annotation)


def check_kwarg_types(path: str, kwargs: Mapping[str, Any], functions: Sequence[Callable[..., Any]]) -> None:
    """Check keyword arguments against the simple annotations (bool, int, float, str, lists
    of them) of the first of ``functions`` that takes each name, so ``mixed_memory: maybe``
    is an error here and not a truthy string in the model.

    Raises:
        ConfigError: naming ``path.<name>`` and the type it needs.
    """
    for name, value in kwargs.items():
        for fn in functions:
            param = inspect.signature(fn).parameters.get(name)
            if param is None or param.annotation is inspect.Parameter.empty:
                continue
            annotation = _resolve_annotation(param.annotation, fn)
            wants = _simple_wants(annotation)
            if wants is not None and not _fits(value, annotation):
                raise ConfigError(f"'{path}.{name}' must be {wants}, got {show(value)}")
            break


def _resolve_annotation(annotation: Any, fn: Callable[..., Any]) -> Any:
    """A string annotation (``from __future__ import annotations``) evaluated in the
    namespace of the function's module; Any if it cannot be."""
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    try:
        return eval(annotation, dict(vars(module)) if module else {})  # noqa: S307  (library source, not input)
    except Exception:
        return Any


def _describe(annotation: Any) -> str:
    text = str(annotation).replace("collections.abc.Callable[[float], float]", "schedule 'lin_<start>'")
    return re.sub(r"<class '([\w.]+)'>", r"\1", text).replace("typing.", "")


def _check_schedule(path: str, value: str) -> None:
    try:
        start = float(SCHEDULE.match(value).group(1))  # type: ignore[union-attr]
    except ValueError:
        raise ConfigError(f"{path!r} bad schedule {value!r}; write lin_<start>, e.g. lin_3e-4") from None
    checker = HYPERPARAM_RANGES.get(path.rpartition(".")[2])
    try:
        if checker is not None:
            checker(start)
        elif not start > 0:
            raise Invalid("must start > 0")
    except Invalid as e:
        raise ConfigError(f"{path!r} schedule {value!r}: its start {e}") from None


def check_hyperparams(algo: str, hyper: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``algo.hyperparams`` against the algorithm class signature.

    Raises:
        ConfigError: an unknown or reserved name, a wrong type, or a value out of range.
    """
    cls = get_algorithm(algo)
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
    out: dict[str, Any] = {}
    for name, value in hyper.items():
        path = f"algo.hyperparams.{name}"
        value = as_number(value)
        if name in _RESERVED:
            where = _RESERVED[name]
            raise ConfigError(f"{path!r} is set by liquid-rl" + (f"; use {where}" if where else "; remove it"))
        if name not in params:
            raise unknown_key("algo.hyperparams", name, sorted(n for n in params if n not in _RESERVED))
        if name == "action_noise":
            out[name] = None if value is None else check_section(path, value, ACTION_NOISE)
            continue
        if name == "ent_coef" and isinstance(value, str):
            if not re.match(r"^auto(_[0-9.eE+-]+)?$", value):
                raise ConfigError(f"{path!r} must be a number >= 0, 'auto' or 'auto_<init>', got {show(value)}")
            out[name] = value
            continue
        if name == "train_freq" and isinstance(value, list):
            value = list(value)
            if len(value) == 2 and isinstance(value[1], str) and value[1] not in ("step", "episode"):
                raise ConfigError(f"{path!r} unit must be 'step' or 'episode', got {value[1]!r}")
        annotation = _resolve_annotation(params[name].annotation, cls.__init__)
        if isinstance(value, float) and value.is_integer() and type_ok(1, annotation) and not type_ok(0.5, annotation):
            value = int(value)  # 1e6 in YAML for an integer argument
        if not type_ok(value, annotation):
            raise ConfigError(f"{path!r} must be {_describe(annotation)}, got {show(value)}")
        if name in HYPERPARAM_RANGES and value is not None and not isinstance(value, (list, str)):
            try:
                value = HYPERPARAM_RANGES[name](value)
            except Invalid as e:
                raise ConfigError(f"{path!r} {e}") from None
        if isinstance(value, str) and SCHEDULE.match(value):
            _check_schedule(path, value)
        out[name] = value
    return out
