"""Run the regression demo as a script: `python examples/regression.py --help`.

The code is in nu_xp/demos/regression.py.
"""

import sys

from nu_xp.demos.regression import main

if __name__ == "__main__":
    sys.exit(main())
