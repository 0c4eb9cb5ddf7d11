"""Plot the neuron activity and wiring of a liquid policy: the same as ``liquid-rl inspect ...``.

    python scripts/inspect_agent.py --help
"""

import sys

from liquid_rl.cli import main

if __name__ == "__main__":
    sys.exit(main(["inspect", *sys.argv[1:]]))
