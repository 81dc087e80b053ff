"""Data-parallel digits over MPI: `mpiexec -n 2 python examples/mpi_digits.py` (or plain `python`).

The code is in nu_xp/demos/mpi_digits.py.
"""

import sys

from nu_xp.demos.mpi_digits import main

if __name__ == "__main__":
    sys.exit(main())
