"""Run the sequences demo as a script: `python examples/sequences.py --help` (code: nu_xp/demos/sequences.py)."""

import sys

from nu_xp.demos.sequences import main

if __name__ == "__main__":
    sys.exit(main())
