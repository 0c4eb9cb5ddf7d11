"""The PyTorch-free runtime (``liquid_rl.deploy``), the export CLI and ``eval --backend onnx``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liquid_rl.agents.evaluate import evaluate
from liquid_rl.agents.safe_load import load_agent
from liquid_rl.cli import main
from liquid_rl.deploy import OnnxPolicy
from liquid_rl.export import ExportError, export_agent

sys.path.insert(0, str(Path(__file__).parent))
from test_export import KINDS, PENDULUM, RPPO, make_run  # noqa: E402

# Irregular time steps: a Dict observation {obs, dt}, which export refuses.
KINDS.setdefault("rppo-ltc-irregular", ({**PENDULUM, "wrappers": [{"name": "IrregularTime"}]}, RPPO,
                                        {"type": "liquid_recurrent", "cell": "ltc", "units": 8}))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Runs (LTC-NCP recurrent PPO, discrete PPO) and their ONNX files."""
    d = tmp_path_factory.mktemp("deploy")
    out = {}
    for kind in ("rppo-ltc-ncp", "ppo-mlp-discrete"):
        run = make_run(kind, d)
        out[kind] = run
        export_agent(load_agent(run, device="cpu"), d / f"{kind}.onnx", "onnx")
        out[f"{kind}.onnx"] = d / f"{kind}.onnx"
    return out


BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, _NoTorch())
"""


def _readme_loop() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_readme_deploy_loop_runs_where_importing_torch_raises(files):
    loop = _readme_loop().replace('"p1.onnx"', repr(str(files["rppo-ltc-ncp.onnx"])))
    loop = loop.replace('gym.make("liquid_rl/PendulumNoVel-v1")', 'gym.make("liquid_rl/PendulumNoVel-v1", max_episode_steps=30)')
    script = BLOCK_TORCH + textwrap.dedent("""
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch imported")
    """) + loop + textwrap.dedent("""
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "something imported torch"
        assert policy.state.shape == (1, policy.state_size)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"^return -?\d+\.\d$", res.stdout, flags=re.M), res.stdout


def test_act_handles_one_and_many_envs(files):
    p = OnnxPolicy(files["ppo-mlp-discrete.onnx"])
    one = p.act(np.zeros(4, dtype=np.float64))
    assert one.shape == () and one.dtype == np.int64
    many = p.act(np.zeros((3, 4), dtype=np.float32))
    assert many.shape == (3,)
    r = OnnxPolicy(files["rppo-ltc-ncp.onnx"])
    a = r.act(np.zeros((5, 3)))
    assert a.shape == (5, 1) and a.dtype == np.float32 and r.state.shape == (5, r.state_size)
    with pytest.raises(ValueError, match=r"obs holds 2 envs but the carried state has 5"):
        r.act(np.zeros((2, 3)))
    r.reset()
    assert r.act(np.zeros((2, 3))).shape == (2, 1)
    assert r.metadata["dt"]["unit"] == 1.0 and "config_sha256" in r.metadata


@pytest.mark.parametrize("obs, message", [
    (np.zeros(5), r"obs must have shape \(3,\) or \(B, 3\), got \(5,\)"),
    (np.zeros((2, 2, 3)), r"obs must have shape \(3,\) or \(B, 3\), got \(2, 2, 3\)"),
    (np.array(["a", "b", "c"]), r"obs must be a real numeric array of shape \(3,\)"),
    (np.zeros(3, dtype=complex), r"got dtype complex128"),
])
def test_bad_observations_name_the_expected_shape(files, obs, message):
    with pytest.raises(ValueError, match=message):
        OnnxPolicy(files["rppo-ltc-ncp.onnx"]).act(obs)


def test_bad_dt_names_the_expected_shape(files):
    p = OnnxPolicy(files["rppo-ltc-ncp.onnx"])
    with pytest.raises(ValueError, match=r"dt must be a number or have shape \(2,\) or \(2, 1\), got \(3,\)"):
        p.act(np.zeros((2, 3)), dt=np.ones(3))
    with pytest.raises(ValueError, match=r"episode_start must be a bool or have shape \(2,\), got \(3,\)"):
        p.act(np.zeros((2, 3)), episode_start=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match=r"do not integrate the elapsed time"):
        OnnxPolicy(files["ppo-mlp-discrete.onnx"]).act(np.zeros(4), dt=0.1)


def test_corrupt_and_foreign_onnx_files_are_refused(files, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(files["rppo-ltc-ncp.onnx"].read_bytes()[:200])
    with pytest.raises(ValueError, match="is not a readable ONNX model"):
        OnnxPolicy(corrupt)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(ValueError, match="not a liquid-rl actor"):
        OnnxPolicy(foreign)
    with pytest.raises(ValueError, match="is not a readable ONNX model"):
        OnnxPolicy(tmp_path / "missing.onnx")


def test_cli_export_writes_both_formats(files, tmp_path, capsys):
    for fmt, name in (("onnx", "a.onnx"), ("torchscript", "a.pt")):
        assert main(["export", str(files["rppo-ltc-ncp"]), "--format", fmt, "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).stat().st_size > 1000
    assert "inputs  obs, state, episode_start, dt" in capsys.readouterr().out


def test_cli_export_of_a_dict_observation_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    run = make_run("rppo-ltc-irregular", tmp_path)
    with pytest.raises(ExportError, match="cannot export a policy with a Dict observation space"):
        export_agent(load_agent(run, device="cpu"), tmp_path / "x.onnx")
    assert main(["export", str(run), "--out", str(tmp_path / "d.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot export a policy with a Dict observation space" in err[0]
    assert not (tmp_path / "d.onnx").exists() and not (tmp_path / "x.onnx").exists()


def test_cli_export_bad_input_exits_2(files, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "a.onnx")]) == 2
    assert main(["export", str(files["rppo-ltc-ncp"]), "--model", "best", "--out", str(tmp_path / "a.onnx")]) == 2
    assert main(["export", str(files["rppo-ltc-ncp"]), "--out", str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 3
    assert not (tmp_path / "a.onnx").exists()


@pytest.mark.parametrize("kind", ["rppo-ltc-ncp", "ppo-mlp-discrete"])
def test_eval_backend_onnx_gives_the_torch_returns(files, kind):
    agent = load_agent(files[kind], device="cpu")
    torch_eval = evaluate(agent, episodes=3, deterministic=True, seed=7)
    onnx_eval = evaluate(agent, episodes=3, deterministic=True, seed=7, backend="onnx")
    assert onnx_eval["lengths"] == torch_eval["lengths"]
    np.testing.assert_allclose(onnx_eval["returns"], torch_eval["returns"], rtol=1e-5)
    assert onnx_eval["backend"] == "onnx"


def test_cli_eval_backend_onnx(files, tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["eval", str(files["rppo-ltc-ncp"]), "--episodes", "2", "--deterministic", "--backend", "onnx",
                 "--json", str(out), "--no-progress"]) == 0
    assert out.is_file()
    assert main(["eval", str(files["rppo-ltc-ncp"]), "--backend", "onnx", "--json", str(tmp_path / "f.json")]) == 2
    assert "add --deterministic" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 4), seed=st.integers(0, 2**16), starts=st.lists(st.booleans(), min_size=4, max_size=4))
def test_a_batch_acts_as_its_envs_one_by_one(files, batch, seed, starts):
    """Invariant: envs in a batch do not see each other (state, dt and episode starts per env)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(3, batch, 3)).astype(np.float32)
    dts = rng.uniform(0.01, 0.3, size=(3, batch)).astype(np.float32)
    together = OnnxPolicy(files["rppo-ltc-ncp.onnx"])
    singles = [OnnxPolicy(files["rppo-ltc-ncp.onnx"]) for _ in range(batch)]
    for t in range(3):
        start = np.array(starts[:batch]) & (t == 1)
        got = together.act(obs[t], dt=dts[t], episode_start=start)
        for i, p in enumerate(singles):
            one = p.act(obs[t, i:i + 1], dt=dts[t, i:i + 1], episode_start=start[i:i + 1])
            np.testing.assert_allclose(got[i:i + 1], one, atol=1e-6)
