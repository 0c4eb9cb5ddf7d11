"""The README's "Plug a liquid policy into your own environment" example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Plug a liquid policy into your own environment"


def _blocks() -> list[str]:
    text = README.read_text()
    assert SECTION in text, f"README.md lacks the section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_example_trains_saves_loads_and_evaluates(tmp_path, monkeypatch, capsys):
    blocks = _blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace: dict = {"__name__": "readme_example"}
        exec(compile(blocks[0], "README.md", "exec"), namespace)
        out = capsys.readouterr().out
        mean = float(re.search(r"return (-?[\d.]+) \+- ([\d.]+)", out).group(1))
        assert -20.0 <= mean <= 0.0  # rewards are -|distance| <= 0 over 20 steps
        assert (tmp_path / "recall_ncp.zip").exists()
        assert namespace["done"] and namespace["env"].t == 20  # the hand-run episode went to its end

        # The second snippet builds the SAC agent with the history extractor; its long
        # training is stubbed out, then a few real steps with updates check that it trains.
        from stable_baselines3 import SAC

        learn, calls = SAC.learn, []
        monkeypatch.setattr(SAC, "learn", lambda self, total_timesteps, **kw: calls.append((total_timesteps, kw)))
        exec(compile(blocks[1], "README.md", "exec"), namespace)
        model = namespace["model"]
        assert calls == [(1_000, {"progress_bar": True})]  # short, and the user sees it move
        extractor = model.actor.features_extractor
        assert type(extractor).__name__ == "LiquidHistoryExtractor" and extractor.history == 4
        before = [p.detach().clone() for p in extractor.parameters()]
        model.learning_starts = 0
        learn(model, total_timesteps=4)
        assert all(not torch.equal(p, b) for p, b in zip(extractor.parameters(), before))
    finally:
        torch.set_num_threads(threads)

