"""Config files: reading YAML (one loader for files and ``--set`` values), ``--set``
overrides, and writing a resolved config back.

The loader is PyYAML's safe loader with two changes: ``1e6`` is a number (YAML 1.1 wants
a dot, ``1.0e6``; YAML 1.2 and every user read it as a number), and a key given twice in
one mapping is an error instead of the last one silently winning.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from liquid_rl.agents.config.rules import validate_config
from liquid_rl.agents.errors import ConfigError

__all__ = ["ConfigLoader", "config_from_yaml_text", "read_config_file", "apply_overrides", "load_config",
           "dump_config"]


class _Duplicate(yaml.MarkedYAMLError):
    pass


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e6`` as a float and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise _Duplicate(problem=f"key {key!r} is given twice", problem_mark=key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1's float pattern without the required dot, so 1e6 and 3e-4 are numbers too
# (the usual recipe, cf. PyYAML issue 173).
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def config_from_yaml_text(text: str, source: str = "config") -> Any:
    """Parse YAML text with :class:`ConfigLoader`.

    Raises:
        ConfigError: invalid YAML or a duplicate key, with the line.
    """
    try:
        return yaml.load(text, Loader=ConfigLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        kind = "duplicate key" if isinstance(e, _Duplicate) else "invalid YAML"
        raise ConfigError(f"config: {source}{where}: {kind} ({problem})") from None


def read_config_file(path: str | Path) -> Any:
    """The parsed YAML of a config file.

    Raises:
        ConfigError: missing, a directory, unreadable, invalid or empty.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config: {p} is a directory; give a YAML file (e.g. configs/cartpole_novel_ltc.yaml)")
    if not p.is_file():
        raise ConfigError(f"config: file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config: cannot read {p}: {e}") from None
    data = config_from_yaml_text(text, str(p))
    if data is None:
        raise ConfigError(f"config: {p} is empty")
    return data


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``config``."""
    cfg = copy.deepcopy(dict(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"config: --set {item!r}: write key.path=value, e.g. train.total_timesteps=50000")
        value = config_from_yaml_text(text, f"--set {key}")
        node: Any = cfg
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, Mapping) else None
            if child is None:
                child = {}
                node[part] = child
            elif not isinstance(child, dict):
                raise ConfigError(f"config: --set {key}: {'.'.join(parts[: i + 1])!r} is not a section")
            node = child
        node[parts[-1]] = value
    return cfg


def load_config(path: str | Path, overrides: Sequence[str] = (), seed: int | None = None,
                device: str | None = None) -> dict[str, Any]:
    """Read a YAML config, apply ``--set`` overrides, ``--seed`` and ``--device``; validate.

    Returns the resolved config (every key present).
    """
    cfg = read_config_file(path)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"config: {path} must hold a mapping with sections env, algo, policy, train")
    extra = list(overrides)
    if seed is not None:
        extra.append(f"train.seed={int(seed)}")
    if device is not None:
        extra.append(f"train.device={device}")
    return validate_config(apply_overrides(cfg, extra))


def dump_config(config: Mapping[str, Any]) -> str:
    """The config as YAML text (sections in schema order)."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)
