"""Time the README's Python snippets as written, one after another, each section in a fresh
process and a temporary folder; prints one line per snippet: wall-clock and CPU seconds
(on a busy shared machine the CPU time is the better guess of an idle machine's wall time).

    nice -n 10 python scripts/time_readme.py [--section "Models" ...]

The README gives each snippet's time as measured here; rerun after changing a snippet.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Command line", "Models", "Plug a liquid policy into your own environment")

_RUNNER = r"""
import json, sys, time
blocks = json.loads(sys.stdin.read())
scope = {"__name__": "readme"}
for i, code in enumerate(blocks):
    t0, c0 = time.perf_counter(), time.process_time()
    exec(compile(code, f"README block {i}", "exec"), scope)
    print(json.dumps({"block": i, "seconds": round(time.perf_counter() - t0, 1),
                      "cpu": round(time.process_time() - c0, 1)}), flush=True)
"""


def python_blocks(section: str, readme: Path = ROOT / "README.md") -> list[str]:
    """The ```python blocks of one ``## section`` of the README, in order."""
    text = readme.read_text()
    head = f"\n## {section}\n"
    if head not in text:
        raise SystemExit(f"README.md has no section {section!r}")
    body = text.split(head, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", action="append", help="a README section (default: all with Python snippets)")
    args = parser.parse_args()
    for section in args.section or SECTIONS:
        blocks = python_blocks(section)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "configs").symlink_to(ROOT / "configs")
            proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(blocks), cwd=tmp,
                                  capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                print(f"{section} · snippet {row['block']}: {row['seconds']:.1f} s wall, {row['cpu']:.1f} s CPU",
                      flush=True)
        if proc.returncode != 0:
            print(f"{section}: failed\n{proc.stderr[-2000:]}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
