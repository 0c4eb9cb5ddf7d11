"""``liquid-rl check``: validate configs (schema, then build env and model once) without training."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

HELP = "validate configs without training"

#: What stable-baselines3's policies by name are, for the line ``check`` prints.
SB3_POLICIES = {
    "MlpPolicy": "MLP",
    "CnnPolicy": "stable-baselines3's NatureCNN conv net + MLP",
    "MultiInputPolicy": "one extractor per Dict entry + MLP",
    "MlpLstmPolicy": "LSTM + MLP",
    "CnnLstmPolicy": "NatureCNN conv net + LSTM + MLP",
    "MultiInputLstmPolicy": "Dict extractor + LSTM + MLP",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check", help=HELP,
                       description="Validate configs: schema, then build the env and model once.")
    c.add_argument("configs", nargs="+", metavar="FILE")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def describe_policy(cfg: Mapping[str, Any]) -> str:
    """What the config's policy is on its env, e.g. "mlp: CnnPolicy (stable-baselines3's
    NatureCNN conv net + MLP)" for ``policy.type: mlp`` on camera images."""
    from liquid_rl.agents.build import make_vec_env, policy_spec

    venv = make_vec_env(cfg, n_envs=1, seed=0, subprocess=False)
    try:
        policy, kwargs = policy_spec(cfg, venv.observation_space)
    finally:
        venv.close()
    name = policy if isinstance(policy, str) else policy.__name__
    parts = [SB3_POLICIES[name]] if name in SB3_POLICIES else []
    extractor = kwargs.get("features_extractor_class")
    if extractor is not None:
        extra = kwargs.get("features_extractor_kwargs", {})
        cell = f" ({extra['cell']})" if extra.get("cell") else ""
        parts = [f"{extractor.__name__}{cell} features + MLP"]
    elif kwargs.get("cell"):
        parts = [f"{kwargs['cell']} core"]
    return f"{cfg['policy']['type']}: {name}" + (f" ({', '.join(parts)})" if parts else "")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import check_buildable
    from liquid_rl.agents.config import load_config

    for path in args.configs:
        cfg = load_config(path, args.overrides)
        check_buildable(cfg)
        print(f"{path}: ok ({cfg['env']['id']}, {cfg['algo']['name']}, policy {describe_policy(cfg)})")
    return 0
