"""A busy machine must not multiply the time: the digits CNN of ``nu-xp demo digits --model cnn`` trained with
``fit(threads=...)`` set to ``None`` (the libraries' own thread count, nu_xp before the policy), ``"auto"``
(the default now) and ``1``, on a quiet machine and beside one process that keeps a core busy.

Run it as the driver (each training is a fresh subprocess, settings interleaved, 0.5 s idle before each)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/threads.py [--rounds 3] [--epochs 8]

It prints the median seconds per setting and load, and the ratios busy / quiet and setting / one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SETTINGS = ("None", "auto", "1")


def worker(threads: str, epochs: int) -> None:
    """Train the digits CNN once and print the seconds ``fit`` took."""
    sys.path.insert(0, str(HERE.parent.parent))
    import numpy as np
    from sklearn.datasets import load_digits

    import nu_xp

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    model = nu_xp.Sequential(
        nu_xp.Conv2d(1, 16, 3, padding=1, seed=0),
        nu_xp.ReLU(),
        nu_xp.MaxPool2d(2),
        nu_xp.Conv2d(16, 32, 3, padding=1, seed=1),
        nu_xp.ReLU(),
        nu_xp.MaxPool2d(2),
        nu_xp.Flatten(),
        nu_xp.Linear(128, 10, seed=2),
    )
    opt = nu_xp.optim.Adam(model.parameters(), lr=3e-3)
    setting = None if threads == "None" else threads if threads == "auto" else int(threads)
    start = time.perf_counter()
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=epochs, batch_size=32, seed=0, progress=False,
              threads=setting)  # fmt: skip
    print(json.dumps({"seconds": time.perf_counter() - start}))


BUSY = "import time\nend = time.time() + 3600\nwhile time.time() < end: pass\n"


def run(threads: str, epochs: int) -> float:
    time.sleep(0.5)
    out = subprocess.run(
        [sys.executable, str(HERE), "--worker", threads, "--epochs", str(epochs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--worker", default=None)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.epochs)
        return
    from threadpoolctl import threadpool_info

    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    print(json.dumps({"cpu": platform.processor() or platform.machine(), "blas": blas}, indent=1))
    times: dict[tuple[str, str], list[float]] = {}
    for load in ("quiet", "busy"):
        busy = subprocess.Popen([sys.executable, "-c", BUSY]) if load == "busy" else None
        try:
            for r in range(args.rounds):
                order = SETTINGS[r % 3 :] + SETTINGS[: r % 3]
                for threads in order:
                    times.setdefault((load, threads), []).append(run(threads, args.epochs))
        finally:
            if busy is not None:
                busy.kill()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'threads=':10} {'quiet [s]':>10} {'busy [s]':>10} {'busy/quiet':>11} {'quiet / 1 thread':>17}")
    for threads in SETTINGS:
        q, b = med[("quiet", threads)], med[("busy", threads)]
        print(f"{threads:10} {q:10.2f} {b:10.2f} {b / q:11.2f} {q / med[('quiet', '1')]:17.2f}")


if __name__ == "__main__":
    main()
