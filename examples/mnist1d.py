"""Run the MNIST-1D demo as a script: `python examples/mnist1d.py --help`.

The code is in nu_xp/demos/mnist1d.py.
"""

import sys

from nu_xp.demos.mnist1d import main

if __name__ == "__main__":
    sys.exit(main())
