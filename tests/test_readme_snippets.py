"""The README's snippets each say how long they take, and the timing script finds them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("time_readme", ROOT / "scripts" / "time_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timing_script_finds_every_python_snippet():
    script = _script()
    found = sum(len(script.python_blocks(section)) for section in script.SECTIONS)
    text = (ROOT / "README.md").read_text()
    in_sections = sum(len(re.findall(r"```python\n", text.split(f"\n## {s}\n", 1)[1].split("\n## ", 1)[0]))
                      for s in script.SECTIONS)
    assert found == in_sections == 4


def test_every_snippet_says_about_how_long_it_takes():
    script = _script()
    for section in script.SECTIONS:
        for code in script.python_blocks(section):
            text = (ROOT / "README.md").read_text()
            after = text.split(code, 1)[1][:900]  # the snippet's comments or the paragraph after it
            assert re.search(r"\b(about|under) [\d.,]+(-[\d.,]+)? ?(s|min|seconds|minutes)\b", code + after), code[:80]
    assert "SNIPPET_" not in (ROOT / "README.md").read_text()  # every measured time is filled in
