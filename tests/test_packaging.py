"""The wheel ships envs/ and agents/ as liquid_rl.envs and liquid_rl.agents, never as
top-level packages (a popular package already owns `agents`)."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_layout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("liquid_rl-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"liquid_rl"}
    for module in ("liquid_rl/envs/__init__.py", "liquid_rl/envs/lane_keeping.py",
                   "liquid_rl/agents/__init__.py", "liquid_rl/ltc.py", "liquid_rl/wirings.py",
                   "liquid_rl/csrc/ltc_cpu.cpp"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "liquid-rl = liquid_rl.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_imports_from_outside_the_repository(tmp_path):
    code = "import liquid_rl.envs, liquid_rl.agents, liquid_rl; print(liquid_rl.envs.__name__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "liquid_rl.envs"
