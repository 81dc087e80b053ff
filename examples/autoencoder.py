"""Run the autoencoder demo as a script: `python examples/autoencoder.py --help`.

The code is in nu_xp/demos/autoencoder.py.
"""

import sys

from nu_xp.demos.autoencoder import main

if __name__ == "__main__":
    sys.exit(main())
