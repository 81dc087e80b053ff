"""Run the digits demo as a script: `python examples/digits.py --help` (the code is in nu_xp/demos/digits.py)."""

import sys

from nu_xp.demos.digits import main

if __name__ == "__main__":
    sys.exit(main())
