"""``python -m liquid_rl.cli``: the same as the ``liquid-rl`` command."""

import sys

from liquid_rl.cli import main

sys.exit(main())
