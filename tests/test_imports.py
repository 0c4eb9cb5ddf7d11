"""No import cycle in liquid_rl: an import-graph check over every module and every import
statement in it (standard library ``ast``), and the kernel modules imported first in a
fresh interpreter each."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "liquid_rl"


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (packages by their __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, those inside functions included: an import deferred into a
    function to dodge a cycle is still a cycle in the design."""
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules whose body must run for its own body to finish.

    ``from a.b import c`` needs the module a.b.c if there is one, else a.b's body (c is a
    name defined there). A submodule import needs its parent package only in name, so that
    edge is left out (Python sets a partly run package's submodules up fine)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
                continue
            base = node.module or ""
            if node.level:   # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in modules:
                    deps.add(target)
                elif base in modules:
                    deps.add(base)
        deps.discard(name)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    modules = _modules()
    assert "liquid_rl.ltc" in modules and "liquid_rl.kernels.eager_ltc" in modules
    assert _cycles(_graph(modules)) == []


# Modules that import each other's neighbours (a cycle here once went through a function).
KERNEL_MODULES = ["liquid_rl.ltc_fused", "liquid_rl.kernels.eager_ltc", "liquid_rl.kernels.native_ltc",
                  "liquid_rl.ltc", "liquid_rl.liquid_s4"]


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_module_imports_first_in_a_fresh_interpreter(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, timeout=120,
                   cwd=PACKAGE.parent, capture_output=True)


_RENDER_THEN_TRAIN = """
import liquid_rl
import gymnasium as gym
env = gym.make("HalfCheetah-v5", render_mode="rgb_array")
env.reset(seed=0)
assert env.render().shape[-1] == 3
import torch._dynamo  # what torch's optimizers import when an agent is built; it imports Triton
print("survived")
"""


@pytest.mark.skipif(any(__import__("importlib").util.find_spec(m) is None for m in ("triton", "mujoco")),
                    reason="needs Triton and MuJoCo")
def test_mujoco_rendering_then_building_an_agent_does_not_crash():
    # Mesa's LLVM (loaded by an EGL context) and Triton's clash unless Triton loads first
    # (envs/triton_first.py); with LIQUID_RL_NO_TRITON_PRELOAD=1 this script segfaults on Mesa.
    env = {**__import__("os").environ, "MUJOCO_GL": "egl"}
    env.pop("LIQUID_RL_NO_TRITON_PRELOAD", None)
    out = subprocess.run([sys.executable, "-c", _RENDER_THEN_TRAIN], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0 and "survived" in out.stdout, out.stderr[-2000:]
