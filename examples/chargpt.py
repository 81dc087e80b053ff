"""Run the chargpt demo as a script: `python examples/chargpt.py --help` (the code is in nu_xp/demos/chargpt.py)."""

import sys

from nu_xp.demos.chargpt import main

if __name__ == "__main__":
    sys.exit(main())
