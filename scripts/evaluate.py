"""Evaluate a run or model file: the same as ``liquid-rl eval ...``.

    python scripts/evaluate.py --help
"""

import sys

from liquid_rl.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
