"""Train an agent from a YAML config (or resume a run): the same as ``liquid-rl train ...``.

    python scripts/train.py --help
"""

import sys

from liquid_rl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
