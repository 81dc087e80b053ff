"""Data-parallel speed: one process with 2 BLAS threads against two MPI ranks with 1 thread each.

Run it without ``mpiexec``; it is the driver::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mpi.py [--rounds 5] [--json mpi.json]

Each round launches, in alternating order, ``python mpi.py --worker`` with 2
threads and ``mpiexec -n 2 python mpi.py --worker`` with 1 thread per rank;
each worker trains ``mlp_mid`` and ``mlp_large`` (``benchmarks/run.py``'s
workloads, SGD, one warm-up epoch, then timed epochs) with
``fit(..., distributed=True)`` and reports samples per second and the time
spent inside ``allreduce_gradients``. The ratios are paired per round. Then
one ``mpiexec -n 2`` run measures ``Allreduce`` bandwidth from 4 kB to 32 MB,
and an alpha-beta model of ring allreduce predicts mlp_large's scaling
efficiency at 8, 64 and 512 ranks on a 100 Gb/s network (assumptions printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


def worker(args: argparse.Namespace) -> None:
    """Inside one process or rank: train each workload, print one JSON line (rank 0)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE.parent))
    from run import WORKLOADS, make_data

    import nu_xp
    from nu_xp import distributed

    distributed.init()
    timer = {"seconds": 0.0}
    real = distributed.allreduce_gradients

    def timed_allreduce(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        out = real(*a, **k)
        timer["seconds"] += time.perf_counter() - t0
        return out

    distributed.allreduce_gradients = timed_allreduce  # type: ignore[assignment]
    results = {}
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        x, y = make_data(w)
        model = nu_xp.Sequential(
            *[
                layer
                for i, (a, b) in enumerate(zip(w.sizes, w.sizes[1:]))
                for layer in (
                    [nu_xp.Linear(a, b, seed=i), nu_xp.ReLU()] if i < len(w.sizes) - 2 else [nu_xp.Linear(a, b, seed=i)]
                )
            ]
        )
        opt = nu_xp.optim.SGD(model.parameters(), lr=w.lr)

        def fit(epochs: int, model: Any = model, opt: Any = opt, x: Any = x, y: Any = y, batch: int = w.batch) -> None:
            nu_xp.fit(
                model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=epochs, batch_size=batch, seed=0,
                progress=False, distributed=True,
            )  # fmt: skip

        fit(1)  # warm-up: BLAS pools, buffers
        distributed.barrier()
        timer["seconds"] = 0.0
        t0 = time.perf_counter()
        fit(args.epochs)
        distributed.barrier()
        elapsed = time.perf_counter() - t0
        results[name] = {
            "samples_per_s": args.epochs * x.shape[0] / elapsed,
            "allreduce_share": timer["seconds"] / elapsed,
            "seconds": elapsed,
            "parameters": model.num_parameters(),
        }
    if distributed.rank() == 0:
        print("RESULT " + json.dumps(results), flush=True)


def bandwidth(args: argparse.Namespace) -> None:
    """Allreduce of float32 buffers of growing size; rank 0 prints bytes and seconds."""
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for size in (1 << 10, 1 << 13, 1 << 16, 1 << 19, 1 << 21, 1 << 23):
        buf = np.ones(size, np.float32)
        comm.Allreduce(MPI.IN_PLACE, buf)
        comm.Barrier()
        reps = max(3, min(200, (1 << 24) // size))
        t0 = time.perf_counter()
        for _ in range(reps):
            comm.Allreduce(MPI.IN_PLACE, buf)
        comm.Barrier()
        rows.append((size * 4, (time.perf_counter() - t0) / reps))
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(rows), flush=True)


def launch(cmd: list[str], threads: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    out = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(line[len("RESULT ") :])


def ring_allreduce_seconds(p: int, nbytes: float, alpha: float, beta: float) -> float:
    """Ring allreduce: 2(p-1) steps, each one latency α plus a chunk of nbytes/p at β bytes/s."""
    return 2 * (p - 1) * (alpha + nbytes / p / beta)


def driver(args: argparse.Namespace) -> None:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('mpiexec not found: pip install "nu_xp[mpi]"')
    base = [sys.executable, str(HERE), "--worker", "--epochs", str(args.epochs), "--workloads", args.workloads]
    one = lambda: launch(base, threads=2)  # noqa: E731
    two = lambda: launch([mpiexec, "-n", "2", *base], threads=1)  # noqa: E731
    rounds = []
    for r in range(args.rounds):
        time.sleep(0.5)
        if r % 2:
            b, a = two(), one()
        else:
            a, b = one(), two()
        rounds.append((a, b))
    names = args.workloads.split(",")
    summary: dict[str, Any] = {}
    for name in names:
        ratio = statistics.median(b[name]["samples_per_s"] / a[name]["samples_per_s"] for a, b in rounds)
        summary[name] = {
            "throughput_2x1_over_1x2": ratio,
            "samples_per_s_1x2": statistics.median(a[name]["samples_per_s"] for a, _ in rounds),
            "samples_per_s_2x1": statistics.median(b[name]["samples_per_s"] for _, b in rounds),
            "allreduce_share_2x1": statistics.median(b[name]["allreduce_share"] for _, b in rounds),
            "parameters": rounds[0][0][name]["parameters"],
        }
    bw = launch([mpiexec, "-n", "2", sys.executable, str(HERE), "--bandwidth"], threads=1)
    print(f"{'workload':<10} {'1 rank x 2 thr':>15} {'2 ranks x 1 thr':>16} {'ratio':>6} {'allreduce share':>16}")
    for name, s in summary.items():
        print(
            f"{name:<10} {s['samples_per_s_1x2']:>12.0f}/s {s['samples_per_s_2x1']:>13.0f}/s "
            f"{s['throughput_2x1_over_1x2']:>6.2f} {s['allreduce_share_2x1']:>15.1%}"
        )
    print("\nAllreduce, 2 ranks on this machine (bytes reduced per second):")
    for nbytes, seconds in bw:
        print(f"  {nbytes / 1024:>8.0f} kB  {seconds * 1e6:>9.1f} µs  {nbytes / seconds / 1e9:>6.2f} GB/s")
    # the model: mlp_large, SGD, one allreduce of all gradients per step, no overlap with compute
    large = summary.get("mlp_large")
    if large:
        nbytes = large["parameters"] * 4
        per_sample = 1.0 / (large["samples_per_s_2x1"] / 2)  # one rank with one thread, from the measurement
        alpha, beta = 5e-6, 100e9 / 8 * 0.8  # 5 µs per message; 100 Gb/s at 80 % usable
        print(
            f"\nModel (alpha-beta, ring allreduce): mlp_large, {large['parameters']:,} float32 gradients "
            f"({nbytes / 2**20:.1f} MiB) per step; α = 5 µs, β = 10 GB/s (100 Gb/s at 80 %); a rank computes "
            f"like one core here ({per_sample * 1e6:.0f} µs per sample); no overlap of communication and compute."
        )
        model_rows = []
        for p in (8, 64, 512):
            comm_s = ring_allreduce_seconds(p, nbytes, alpha, beta)
            for label, per_rank in (("global batch 512", 512 / p), ("512 per rank", 512)):
                compute = per_rank * per_sample
                eff = compute / (compute + comm_s)
                model_rows.append(
                    {
                        "ranks": p,
                        "batch": label,
                        "compute_ms": compute * 1e3,
                        "allreduce_ms": comm_s * 1e3,
                        "efficiency": eff,
                    }
                )
                print(
                    f"  {p:>4} ranks, {label:<17}: compute {compute * 1e3:7.2f} ms "
                    f"+ allreduce {comm_s * 1e3:6.2f} ms → efficiency {eff:.0%}"
                )
        summary["model"] = model_rows
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "bandwidth": bw, "rounds": rounds}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workloads", default="mlp_mid,mlp_large")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
    elif args.bandwidth:
        bandwidth(args)
    else:
        driver(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
