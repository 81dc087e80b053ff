"""Run the xor demo as a script: `python examples/xor.py --help` (the code is in nu_xp/demos/xor.py)."""

import sys

from nu_xp.demos.xor import main

if __name__ == "__main__":
    sys.exit(main())
