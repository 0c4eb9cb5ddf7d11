"""The README's model example runs as written."""

from pathlib import Path


def test_readme_models_example(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = text.split("## Models", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["y"].shape) == (16, 50, 1) and tuple(scope["h"].shape) == (16, 19)
    assert (tmp_path / "wiring.png").stat().st_size > 1000
