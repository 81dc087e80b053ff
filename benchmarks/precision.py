"""Mixed precision: throughput of ``fit(precision=...)`` against float32, and against PyTorch's own autocast.

The workload is ``mlp_xl`` (784-4096-4096-10, batch 1024, SGD) on the torch backend; the contenders
run interleaved in one process, 0.5 s idle before each timed run, each timed run ``--steps`` steps
after a warm-up. Prints samples per second and the ratios the issue asks for.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/precision.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import nu_xp

SIZES = (784, 4096, 4096, 10)


def nu_xp_run(precision: str, device: str, x: np.ndarray, y: np.ndarray) -> float:
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(SIZES, SIZES[1:])):
        layers += [nu_xp.Linear(a, b, seed=i), nu_xp.ReLU()]
    model = nu_xp.Sequential(*layers[:-1]).to("torch", device=device)
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.01)
    loss = nu_xp.CrossEntropyLoss()
    kw = {"batch_size": 1024, "shuffle": False, "progress": False, "precision": precision, "threads": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 16-mixed on a CPU says it is slow there
        nu_xp.fit(model, loss, opt, x[:1024], y[:1024], epochs=1, **kw)  # warm-up
        model.backend.synchronize()
        start = time.perf_counter()
        nu_xp.fit(model, loss, opt, x, y, epochs=1, **kw)
        model.backend.synchronize()
    return x.shape[0] / (time.perf_counter() - start)


def torch_run(autocast: Any, device: str, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    layers: list[Any] = []
    for a, b in zip(SIZES, SIZES[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1]).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def epoch(n: int) -> None:
        for i in range(0, n, 1024):
            with torch.autocast(device_type=torch.device(device).type, dtype=autocast, enabled=autocast is not None):
                out = torch.nn.functional.cross_entropy(net(xs[i : i + 1024]), ys[i : i + 1024])
            opt.zero_grad()
            out.backward()
            opt.step()

    epoch(1024)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    epoch(xs.shape[0])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024 * args.steps, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], x.shape[0])
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"mlp_xl {SIZES}, batch 1024, {args.steps} steps, on {name}")
    contenders = {
        "nu_xp 32": lambda: nu_xp_run("32", args.device, x, y),
        "nu_xp bf16-mixed": lambda: nu_xp_run("bf16-mixed", args.device, x, y),
        "torch float32": lambda: torch_run(None, args.device, x, y),
        "torch autocast bf16": lambda: torch_run(torch.bfloat16, args.device, x, y),
    }
    if args.device.startswith("cuda"):
        contenders["nu_xp 16-mixed"] = lambda: nu_xp_run("16-mixed", args.device, x, y)
        contenders["torch autocast fp16"] = lambda: torch_run(torch.float16, args.device, x, y)
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.rounds):
        names = list(contenders)
        for k in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(0.5)
            rates[k].append(contenders[k]())
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in med.items():
        print(f"{k:22} {v:12.0f} samples/s")
    print(f"nu_xp bf16 / nu_xp float32 throughput: {med['nu_xp bf16-mixed'] / med['nu_xp 32']:.2f} (goal ≥ 3 on a GPU)")
    slower = med["torch autocast bf16"] / med["nu_xp bf16-mixed"]
    print(f"nu_xp bf16 time / torch autocast bf16 time: {slower:.2f} (goal ≤ 1.15)")


if __name__ == "__main__":
    main()
