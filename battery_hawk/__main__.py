"""Entry point for ``python -m battery_hawk``."""

import sys

from battery_hawk.cli import main

sys.exit(main())
