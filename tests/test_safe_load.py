"""Loading runs no code from the file.

A crafted model file whose pickled entries would create a marker file when unpickled is
loaded and evaluated through our API and CLI: the marker must not appear. The same
file loaded with stable-baselines3's own ``load`` does create it, so the test can fail.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from liquid_rl.agents import UserError, evaluate, load_agent, save_agent
from liquid_rl.agents.build import build_model, make_vec_env
from liquid_rl.agents.config import validate_config
from liquid_rl.agents.safe_load import (
    METADATA_NAME,
    load_replay_buffer,
    read_metadata,
    save_replay_buffer,
    space_from_json,
    space_to_json,
)
from liquid_rl.cli import main

CONFIG = {
    "env": {"id": "CartPole-v1", "n_envs": 2, "normalize": {"obs": True}},
    "algo": {"name": "ppo", "hyperparams": {"n_steps": 16, "batch_size": 32}},
    "policy": {"type": "mlp", "net_arch": [16]},
    "train": {"total_timesteps": 64},
}


class _CreatesFile:
    """Unpickling this object calls ``open(path, "w")``: creates the file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A genuine model file (untrained PPO on CartPole with VecNormalize)."""
    cfg = validate_config(CONFIG)
    venv = make_vec_env(cfg, seed=0)
    model = build_model(cfg, venv)
    model.learn(32)  # some normalisation statistics and counters
    path = tmp_path_factory.mktemp("model") / "model.zip"
    save_agent(model, path, cfg)
    venv.close()
    return path


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, replace.get(name, zin.read(name)))
    return dst


def craft_data(model_file: Path, dst: Path, marker: Path) -> Path:
    """Every cloudpickled entry of ``data`` replaced by a payload that creates ``marker``."""
    data = json.loads(zipfile.ZipFile(model_file).read("data"))
    payload = base64.b64encode(pickle.dumps(_CreatesFile(marker))).decode()
    crafted = 0
    for value in data.values():
        if isinstance(value, dict) and ":serialized:" in value:
            value[":serialized:"] = payload
            crafted += 1
    assert crafted >= 3  # observation_space, action_space, policy_class, lr_schedule, ...
    return _rewrite(model_file, dst, {"data": json.dumps(data).encode()})


def craft_tensors(model_file: Path, dst: Path, marker: Path) -> Path:
    """policy.pth replaced by a torch pickle holding the payload next to real tensors."""
    state = torch.load(io.BytesIO(zipfile.ZipFile(model_file).read("policy.pth")), weights_only=True)
    buf = io.BytesIO()
    torch.save({**state, "evil": _CreatesFile(marker)}, buf)
    return _rewrite(model_file, dst, {"policy.pth": buf.getvalue()})


def test_the_crafted_data_runs_code_under_plain_sb3_load(model_file, tmp_path):
    marker = tmp_path / "pwned"
    crafted = craft_data(model_file, tmp_path / "crafted.zip", marker)
    try:
        PPO.load(crafted)
    except Exception:
        pass  # the payload returns a file object where a space was expected
    assert marker.exists(), "the payload must work, or the tests below prove nothing"


def test_load_agent_ignores_pickled_data(model_file, tmp_path):
    marker = tmp_path / "pwned"
    crafted = craft_data(model_file, tmp_path / "crafted.zip", marker)
    agent = load_agent(crafted)
    assert not marker.exists()
    # the agent is complete: same parameters, counters and normalisation as the original
    original = load_agent(model_file)
    for (k, a), (_, b) in zip(agent.model.policy.state_dict().items(), original.model.policy.state_dict().items()):
        assert torch.equal(a, b), k
    assert agent.model.num_timesteps == original.model.num_timesteps >= 32
    assert agent.normalization == original.normalization and agent.normalization is not None
    obs = np.zeros((1, 4), dtype=np.float32)
    assert agent.model.predict(obs, deterministic=True)[0].shape == (1,)
    result = evaluate(crafted, episodes=2, deterministic=True)
    assert result["episodes"] == 2 and len(result["returns"]) == 2
    assert not marker.exists()


def test_cli_eval_of_crafted_data_runs_no_code(model_file, tmp_path, capsys):
    marker = tmp_path / "pwned"
    crafted = craft_data(model_file, tmp_path / "crafted.zip", marker)
    out_json = tmp_path / "eval.json"
    assert main(["eval", str(crafted), "--episodes", "2", "--deterministic", "--json", str(out_json),
                 "--no-progress"]) == 0
    assert not marker.exists()
    result = json.loads(out_json.read_text())
    assert result["episodes"] == 2 and result["mean_return"] == pytest.approx(np.mean(result["returns"]))
    assert "return" in capsys.readouterr().out


def test_crafted_tensors_are_refused_with_a_clear_message(model_file, tmp_path, capsys):
    marker = tmp_path / "pwned"
    crafted = craft_tensors(model_file, tmp_path / "crafted.zip", marker)
    torch.load(io.BytesIO(zipfile.ZipFile(crafted).read("policy.pth")), weights_only=False)
    assert marker.exists(), "a plain torch.load would run the payload"
    marker.unlink()
    with pytest.raises(UserError, match=r"policy.pth holds more than tensors or is corrupt \(it names io.open\); refused") as info:
        load_agent(crafted)
    assert "weights_only" not in str(info.value)  # never advise the unsafe load
    assert not marker.exists()
    out_json = tmp_path / "eval.json"
    assert main(["eval", str(crafted), "--episodes", "1", "--json", str(out_json)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("liquid-rl: error: ") and "refused" in err[0]
    assert not marker.exists() and not out_json.exists()
    assert main(["inspect", str(crafted)]) == 2
    assert not marker.exists()


def test_files_not_saved_by_liquid_rl_are_refused(tmp_path):
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16)
    path = tmp_path / "plain_sb3.zip"
    model.save(path)
    with pytest.raises(UserError, match="was not saved by liquid-rl"):
        load_agent(path)


def test_corrupt_and_missing_files(model_file, tmp_path):
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(model_file.read_bytes()[:200])
    with pytest.raises(UserError, match="not a model file"):
        load_agent(truncated)
    with pytest.raises(UserError, match="no such model file or run directory"):
        load_agent(tmp_path / "nothing.zip")
    without_policy = tmp_path / "no_policy.zip"
    with zipfile.ZipFile(model_file) as zin, zipfile.ZipFile(without_policy, "w") as zout:
        for name in zin.namelist():
            if name != "policy.pth":
                zout.writestr(name, zin.read(name))
    with pytest.raises(UserError, match="policy.pth is missing"):
        load_agent(without_policy)
    meta = read_metadata(model_file)
    meta["config"]["policy"]["net_arch"] = [32]  # parameters no longer fit the policy
    wrong = _rewrite(model_file, tmp_path / "wrong.zip", {METADATA_NAME: json.dumps(meta).encode()})
    with pytest.raises(UserError, match=r"policy.pth entry '.*' has shape \(16, \d+\), the policy of its config needs \(32, \d+\)"):
        load_agent(wrong)
    meta["config"]["env"]["id"] = "os:Evil-v0"  # configs inside files are validated like any config
    evil = _rewrite(model_file, tmp_path / "evil.zip", {METADATA_NAME: json.dumps(meta).encode()})
    with pytest.raises(UserError, match="without a 'module:' prefix"):
        load_agent(evil)


def _with_policy(model_file: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(model_file) as z:
        state = torch.load(io.BytesIO(z.read("policy.pth")), weights_only=True)
    change(state)
    out = io.BytesIO()
    torch.save(state, out)
    return _rewrite(model_file, dst, {"policy.pth": out.getvalue()})


def test_model_tensors_are_checked_at_load(model_file, tmp_path, capsys):
    first = lambda state: next(k for k, v in state.items() if v.is_floating_point())  # noqa: E731
    nan = _with_policy(model_file, tmp_path / "nan.zip", lambda s: s[first(s)].view(-1)[0].fill_(float("nan")))
    with pytest.raises(UserError, match=r"policy\.\S+ holds NaN or infinite values; the model is broken"):
        load_agent(nan)
    assert main(["eval", str(nan), "--episodes", "1", "--json", str(tmp_path / "e.json")]) == 2
    assert "holds NaN or infinite values" in capsys.readouterr().err and not (tmp_path / "e.json").exists()
    inf = _with_policy(model_file, tmp_path / "inf.zip", lambda s: s[first(s)].view(-1)[-1].fill_(float("-inf")))
    with pytest.raises(UserError, match="holds NaN or infinite values"):
        load_agent(inf)
    double = _with_policy(model_file, tmp_path / "f64.zip", lambda s: s.update({first(s): s[first(s)].double()}))
    with pytest.raises(UserError, match=r"has dtype torch.float64, expected torch.float32"):
        load_agent(double)
    extra = _with_policy(model_file, tmp_path / "extra.zip", lambda s: s.update({"backdoor": torch.zeros(1)}))
    with pytest.raises(UserError, match="policy.pth has 'backdoor', which the policy of its config does not"):
        load_agent(extra)
    half = tmp_path / "half.zip"
    half.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_agent(half)


def test_spaces_round_trip_through_json():
    from gymnasium import spaces

    for space in (spaces.Box(-1.0, 2.0, (3,)), spaces.Box(np.array([0, -np.inf]), np.array([1, np.inf]), dtype=np.float64),
                  spaces.Box(0, 255, (3, 8, 8), dtype=np.uint8), spaces.Discrete(3, start=1),
                  spaces.MultiDiscrete([2, 3]), spaces.MultiBinary(4),
                  spaces.Dict({"obs": spaces.Box(-1, 1, (2,)), "dt": spaces.Box(0, np.inf, (1,))})):
        data = json.loads(json.dumps(space_to_json(space)))
        assert space_from_json(data) == space


@pytest.mark.parametrize("adds, rows, pos, full", [(20, 20, 20, False), (30, 25, 5, True)])
def test_replay_buffer_arrays_round_trip(tmp_path, adds, rows, pos, full):
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    obs, act = spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,))
    buf = ReplayBuffer(50, obs, act, n_envs=2)  # 25 rows of 2 envs
    rng = np.random.default_rng(0)
    for _ in range(adds):
        buf.add(rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 2)), rng.normal(size=2),
                np.array([False, True]), [{}, {}])
    path = save_replay_buffer(buf, tmp_path / "rb.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["observations"].shape == (rows, 2, 3)  # only the filled rows are stored
    fresh = ReplayBuffer(50, obs, act, n_envs=2)
    load_replay_buffer(fresh, path)
    assert (fresh.pos, fresh.full) == (pos, full)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(fresh, name), getattr(buf, name)), name
    with pytest.raises(UserError, match="buffer_size is 25"):
        load_replay_buffer(ReplayBuffer(40, obs, act, n_envs=2), path)


def test_saved_files_are_written_atomically_with_normal_permissions(model_file):
    mode = os.stat(model_file).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert not [p for p in model_file.parent.iterdir() if p.name.endswith(".tmp")]
