"""Run the "real run" demo as a script: `python examples/realrun.py --help` (code: nu_xp/demos/realrun.py)."""

import sys

from nu_xp.demos.realrun import main

if __name__ == "__main__":
    sys.exit(main())
