"""The liquid-rl model file: stable-baselines3's ``.zip`` plus ``liquid_rl.json``.

A stable-baselines3 ``.zip`` holds ``data`` (JSON in which the spaces, the policy class,
the learning-rate schedule and more are cloudpickled) and the tensors (``policy.pth``,
optimizer states, ``pytorch_variables.pth``) saved with ``torch.save``. Ours add
``liquid_rl.json``: the resolved config, the spaces as plain JSON, the counters and the
normalisation statistics; :mod:`liquid_rl.agents.safe_load` loads from that JSON and the
tensors only. ``PPO.load`` still reads our files, for those who trust them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

import liquid_rl
from liquid_rl.agents.atomic_files import atomic_write_bytes
from liquid_rl.agents.build import find_vecnormalize, normalization_to_json
from liquid_rl.agents.errors import UserError
from liquid_rl.agents.space_json import space_to_json

__all__ = ["save_agent", "read_metadata", "METADATA_NAME", "FORMAT", "FORMAT_VERSION", "COUNTERS"]

METADATA_NAME = "liquid_rl.json"
FORMAT = "liquid-rl-model"
FORMAT_VERSION = 1
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")


def save_agent(model: BaseAlgorithm, path: str | Path, config: Mapping[str, Any]) -> Path:
    """Save ``model`` to ``path`` (atomically): stable-baselines3's zip plus ``liquid_rl.json``.

    The normalisation statistics of the model's env (if it has VecNormalize) go into the
    metadata, so that a model file is complete on its own.
    """
    vecnorm = find_vecnormalize(model.get_env())
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "liquid_rl_version": liquid_rl.__version__,
        "algo": config["algo"]["name"],
        "config": config,
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "counters": {k: int(getattr(model, k, 0)) for k in COUNTERS},
        "normalization": normalization_to_json(vecnorm) if vecnorm is not None else None,
    }
    buffer = io.BytesIO()
    model.save(buffer)
    with zipfile.ZipFile(buffer, "a") as z:
        z.writestr(METADATA_NAME, json.dumps(meta, indent=1))
    return atomic_write_bytes(path, buffer.getvalue())


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``liquid_rl.json`` of a model file (plain JSON; nothing is unpickled).

    Raises:
        UserError: not a zip archive, or not saved by liquid-rl.
    """
    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            # zipfile finds the last archive in a file: in a truncated model, one of the zips
            # that torch.save nests inside it, which starts past the file's first byte
            if METADATA_NAME not in names and (not names or min(i.header_offset for i in z.infolist()) > 0):
                raise UserError(f"{p} is not a model file: truncated or corrupt (its zip archive is incomplete)")
            if METADATA_NAME not in names:
                raise UserError(f"{p} was not saved by liquid-rl (no {METADATA_NAME} inside); liquid-rl loads "
                                "only its own files because stable-baselines3's pickled data can run code")
            meta = json.loads(z.read(METADATA_NAME))
    except zipfile.BadZipFile:
        raise UserError(f"{p} is not a model file: truncated or corrupt (not a readable zip archive)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: {METADATA_NAME} is not valid JSON ({e})") from None
    except (OSError, zipfile.LargeZipFile) as e:
        raise UserError(f"cannot read model file {p}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{p}: {METADATA_NAME} is not liquid-rl model metadata")
    if not isinstance(meta.get("format_version"), int) or not isinstance(meta.get("config"), dict):
        raise UserError(f"{p}: {METADATA_NAME} lacks its format version or config")
    if meta["format_version"] > FORMAT_VERSION:
        raise UserError(f"{p} was saved by a newer liquid-rl (format {meta.get('format_version')}); upgrade liquid-rl")
    return meta
