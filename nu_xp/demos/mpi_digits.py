"""Data-parallel training of the digits MLP over MPI ranks: the same script on 1, 2 or N processes.

    mpiexec -n 2 python examples/mpi_digits.py        # two ranks, each one BLAS thread is plenty
    python examples/mpi_digits.py                     # the same script, one process

Every rank loads the same data and builds the same model (same seed); ``fit(...,
distributed=True)`` gives each rank its share of every minibatch of 64 and
averages the gradients in one allreduce per step, so the result is the one a
single process gets, up to reduction order. Only rank 0 prints and saves.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import nu_xp
from nu_xp.demos.common import DEFAULT_OUT, DemoParser, folder, non_negative_int, positive_int
from nu_xp.demos.digits import build, load_data


def main(argv: list[str] | None = None) -> int:
    parser = DemoParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=20, help="passes over the data (default 20)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights and batches (default 0)")
    parser.add_argument(
        "--out",
        type=folder,
        default=DEFAULT_OUT,
        help=f"folder for digits_mpi.npz, rank 0 writes it (default ./{DEFAULT_OUT}/)",
    )
    args = parser.parse_args(argv)
    nu_xp.distributed.init()
    rank, size = nu_xp.distributed.rank(), nu_xp.distributed.world_size()
    x_train, x_test, y_train, y_test = load_data(args.seed)
    model = build(args.seed, "numpy")
    opt = nu_xp.optim.Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    history = nu_xp.fit(
        model,
        nu_xp.CrossEntropyLoss(),
        opt,
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=64,
        seed=args.seed,
        validation_data=(x_test, y_test),
        metrics=["accuracy"],
        distributed=True,
    )
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(np.argmax(nu_xp.to_host(model.predict(x_test)), axis=1) == y_test))
    if rank == 0:
        print(
            f"{size} rank(s): test accuracy {accuracy:.4f} after {len(history)} epochs in {seconds:.1f} s "
            f"(final training loss {history['loss'][-1]:.4f})"
        )
        args.out.mkdir(parents=True, exist_ok=True)
    nu_xp.save(model, args.out / "digits_mpi.npz")  # writes on rank 0 only
    return 0


if __name__ == "__main__":
    sys.exit(main())
