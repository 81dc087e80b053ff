"""Training-speed benchmark: nu_xp against hand-written NumPy, PyTorch eager and scikit-learn.

Every contender trains the same network (same sizes, activations, loss, plain
SGD, batch size and number of steps) on the same synthetic float32 data, in
ONE process, with repetitions interleaved (contender order rotates each
round, and each timed run starts after a short idle pause so BLAS thread
pools settle). The result is the median time per contender and, for each
pair, the median over rounds of the ratio measured within a round (paired, so
slow drifts of a shared machine cancel); absolute times are noisy, ratios
much less so.

    python benchmarks/run.py [--backend numpy|torch|cupy|array_api_strict] [--device cuda]
                             [--workloads xor_tiny,regression,...] [--repeats 5] [--json out.json]

Contenders:
  nu_xp    Sequential + loss + optim.SGD through the public API, the loop
           ``forward, loss, zero_grad, backward(input_grad=False), step``;
  hand     the same network written inline with the array library (NumPy on
           CPU; CuPy for --backend cupy): the floor;
  torch    nn.Sequential + nn loss + torch.optim.SGD (eager), threads = BLAS threads;
  sklearn  MLPClassifier / MLPRegressor(solver="sgd"), same architecture/batch/epochs.

On this machine type, run it as
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py``
(those variables slow NumPy's BLAS); the kernel threadpoolctl reports is printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import nu_xp


@dataclass
class Workload:
    """A network and its training schedule."""

    name: str
    sizes: list[int]
    activation: str  # hidden activation: relu | tanh
    loss: str  # bce (sigmoid fused) | mse | ce (softmax fused)
    batch: int
    samples: int
    epochs: int
    lr: float = 0.01
    notes: str = ""
    steps: int = field(init=False)

    def __post_init__(self) -> None:
        self.steps = self.epochs * math.ceil(self.samples / self.batch)

    def flops_per_step(self) -> float:
        """6·n·d·h per Linear per step (forward 2ndh, backward 4ndh)."""
        return sum(6.0 * self.batch * a * b for a, b in zip(self.sizes, self.sizes[1:]))


WORKLOADS = {
    "xor_tiny": Workload("xor_tiny", [2, 4, 1], "relu", "bce", 4, 4, 2000, lr=0.1, notes="µs/step"),
    "regression": Workload("regression", [1, 64, 64, 1], "tanh", "mse", 32, 4096, 5),
    "mlp_mid": Workload("mlp_mid", [64, 128, 64, 10], "relu", "ce", 64, 20_000, 1),
    "mlp_large": Workload("mlp_large", [784, 1024, 1024, 10], "relu", "ce", 512, 10_000, 1),
    "mlp_xl": Workload("mlp_xl", [4096, 4096, 4096, 10], "relu", "ce", 4096, 40_960, 1, notes="GPU only"),
}


def make_data(w: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if w.name == "xor_tiny":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        return x, np.array([[0], [1], [1], [0]], dtype=np.float32)
    x = rng.standard_normal((w.samples, w.sizes[0]), dtype=np.float32)
    if w.loss == "ce":
        return x, rng.integers(0, w.sizes[-1], size=w.samples)
    if w.loss == "mse":
        return x, (np.sin(2 * x[:, :1]) + 0.1 * rng.standard_normal((w.samples, 1))).astype(np.float32)
    return x, (rng.uniform(size=(w.samples, w.sizes[-1])) > 0.5).astype(np.float32)


def batches(w: Workload, n: int):
    for _ in range(w.epochs):
        for start in range(0, n, w.batch):
            yield start, min(start + w.batch, n)


# ============================================================================ contenders


def build_nu_xp(w: Workload, backend: str, device: Any, lib: Any = nu_xp) -> tuple[Any, Any]:
    """The workload's network and loss, built with ``lib`` (nu_xp, or another version of it: ``versions.py``)."""
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(w.sizes, w.sizes[1:])):
        layers.append(lib.Linear(a, b, seed=i, backend=backend, device=device))
        if i < len(w.sizes) - 2:
            layers.append(lib.ReLU() if w.activation == "relu" else lib.Tanh())
    loss = {"bce": lib.BCEWithLogitsLoss, "mse": lib.MSELoss, "ce": lib.CrossEntropyLoss}[w.loss]()
    return lib.Sequential(*layers), loss


def run_nu_xp(w: Workload, model: Any, loss: Any, x: Any, y: Any, lib: Any = nu_xp) -> float:
    opt = lib.optim.SGD(model.parameters(), lr=w.lr)
    n = x.shape[0]
    value = None
    for start, stop in batches(w, n):
        xb, yb = x[start:stop, ...], y[start:stop, ...]
        value = loss.forward(model.forward(xb), yb)
        opt.zero_grad()
        model.backward(loss.backward(), input_grad=False)
        opt.step()
    return float(lib.to_host(value))


def run_hand(w: Workload, params: list[list[Any]], x: Any, y: Any, xp: Any) -> float:
    """The same network written out with plain array code (in-place SGD)."""
    n = x.shape[0]
    relu = w.activation == "relu"
    classes = w.sizes[-1]
    eye = xp.eye(classes, dtype=x.dtype) if w.loss == "ce" else None
    value = 0.0
    for start, stop in batches(w, n):
        xb, yb = x[start:stop], y[start:stop]
        m = xb.shape[0]
        hs = [xb]
        h = xb
        for i, (W, b) in enumerate(params):
            z = h @ W.T
            z += b
            if i < len(params) - 1:
                h = xp.maximum(z, 0) if relu else xp.tanh(z)
                hs.append(h)
        if w.loss == "ce":
            z -= z.max(axis=1, keepdims=True)
            e = xp.exp(z)
            s = e.sum(axis=1, keepdims=True)
            onehot = eye[yb]
            value = (xp.log(s).sum() - (z * onehot).sum()) / m
            g = (e / s - onehot) / m
        elif w.loss == "mse":
            d = z - yb
            value = (d * d).mean()
            g = d * (2.0 / d.size)
        else:
            e = xp.exp(-xp.abs(z))
            value = (xp.maximum(z, 0) - z * yb + xp.log1p(e)).mean()
            sig = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
            g = (sig - yb) / z.size
        for i in range(len(params) - 1, -1, -1):
            W, b = params[i]
            gW = g.T @ hs[i]
            gb = g.sum(axis=0)
            if i > 0:
                g = g @ W
                if relu:
                    g *= hs[i] > 0
                else:
                    g *= 1 - hs[i] * hs[i]
            W -= w.lr * gW
            b -= w.lr * gb
    return float(value)


def build_torch(w: Workload, torch: Any, device: str) -> tuple[Any, Any]:
    nn = torch.nn
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(w.sizes, w.sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(w.sizes) - 2:
            layers.append(nn.ReLU() if w.activation == "relu" else nn.Tanh())
    loss = {"bce": nn.BCEWithLogitsLoss, "mse": nn.MSELoss, "ce": nn.CrossEntropyLoss}[w.loss]()
    return nn.Sequential(*layers).to(device), loss


def run_torch(w: Workload, torch: Any, model: Any, loss: Any, x: Any, y: Any) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=w.lr)
    n = x.shape[0]
    value = None
    for start, stop in batches(w, n):
        value = loss(model(x[start:stop]), y[start:stop])
        opt.zero_grad()
        value.backward()
        opt.step()
    return float(value.item())


def run_sklearn(w: Workload, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPRegressor if w.loss == "mse" else MLPClassifier
    est = cls(
        hidden_layer_sizes=tuple(w.sizes[1:-1]),
        activation=w.activation,
        solver="sgd",
        learning_rate_init=w.lr,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=w.batch,
        max_iter=w.epochs,
        shuffle=False,
        tol=0.0,
        n_iter_no_change=w.epochs + 1,
        random_state=0,
    )
    target = y[:, 0] if y.ndim == 2 and w.loss != "bce" else (y.ravel() if w.loss == "bce" else y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(x, target)
    return float(est.loss_)


# ============================================================================ harness


def blas_info() -> dict[str, Any]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"note": "threadpoolctl not installed"}
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
    return {}


def torch_contender(skip: bool) -> tuple[Any, dict[str, Any]]:
    """The ``torch`` module for the PyTorch contender (None with ``--no-torch`` or when not installed),
    and :func:`blas_info` read after torch is imported, whose pool size torch's intra-op threads then
    take, so both contenders use the same cores."""
    torch = None
    if not skip:
        try:
            import torch
        except ImportError:
            print("torch not installed: the torch contender is skipped")
    info = blas_info()
    if torch is not None and info.get("num_threads"):
        torch.set_num_threads(int(info["num_threads"]))
    return torch, info


def gemm_peak(repeats: int) -> float:
    """float32 GFLOP/s of the largest GEMM in mlp_large, (512×1024) @ (1024×1024): the best run (a ceiling)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 1024), dtype=np.float32)
    b = rng.standard_normal((1024, 1024), dtype=np.float32)
    out = np.empty((512, 1024), dtype=np.float32)
    best = []
    for _ in range(repeats):
        time.sleep(0.5)
        t0 = time.perf_counter()
        for _ in range(20):
            np.matmul(a, b.T, out=out)
        best.append((time.perf_counter() - t0) / 20)
    return 2 * 512 * 1024 * 1024 / min(best) / 1e9


def timed(fn: Any, sync: Any = None, pause: float = 0.5) -> tuple[float, Any]:
    gc.collect()
    time.sleep(pause)
    t0 = time.perf_counter()
    out = fn()
    if sync is not None:
        sync()
    return time.perf_counter() - t0, out


def peak_memory(fn: Any) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def bench_workload(w: Workload, args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    x_host, y_host = make_data(w)
    contenders: dict[str, Any] = {}
    gpu = args.backend == "cupy" or (args.backend == "torch" and args.device == "cuda")
    sync = None
    if args.backend == "cupy":
        import cupy

        hand_xp = cupy
        sync = cupy.cuda.Device().synchronize
    else:
        hand_xp = np

    # nu_xp: a fresh model per run from fixed seeds (construction is not timed)
    def nu_run() -> float:
        model, loss = state["nu"]
        return run_nu_xp(w, model, loss, state["nu_x"], state["nu_y"])

    def nu_setup() -> None:
        model, loss = build_nu_xp(w, args.backend, args.device)
        state["nu"] = (model, loss)
        state["hand_params"] = [
            [hand_xp.asarray(nu_xp.to_host(layer.weight.data)), hand_xp.asarray(nu_xp.to_host(layer.bias.data))]
            for layer in model
            if isinstance(layer, nu_xp.Linear)
        ]

    state: dict[str, Any] = {}
    state["nu_x"] = nu_xp.asarray(
        x_host, like=args.backend if args.device is None else nu_xp.get_backend(args.backend, args.device)
    )
    state["nu_y"] = nu_xp.asarray(y_host, like=state["nu_x"])
    hx, hy = hand_xp.asarray(x_host), hand_xp.asarray(y_host)
    contenders["nu_xp"] = (nu_setup, nu_run)
    contenders["hand"] = (nu_setup, lambda: run_hand(w, state["hand_params"], hx, hy, hand_xp))
    if torch is not None and not (gpu and args.backend == "cupy" and not torch.cuda.is_available()):
        tdev = "cuda" if gpu else "cpu"
        tx = torch.as_tensor(x_host, device=tdev)
        ty = torch.as_tensor(y_host, device=tdev)
        if w.loss == "ce":
            ty = ty.long()

        def t_setup() -> None:
            torch.manual_seed(0)
            state["torch"] = build_torch(w, torch, tdev)

        def t_run() -> float:
            return run_torch(w, torch, *state["torch"], tx, ty)

        contenders["torch"] = (t_setup, t_run)
    if not gpu and not args.no_sklearn and w.name != "mlp_xl":
        contenders["sklearn"] = (lambda: None, lambda: run_sklearn(w, x_host, y_host))

    def device_sync() -> None:
        if sync is not None:
            sync()
        if torch is not None and gpu and torch.cuda.is_available():
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in contenders}
    final_loss: dict[str, float] = {}
    names = list(contenders)
    for setup, run in contenders.values():  # warm-up (imports, BLAS pools, kernels)
        setup()
        run()
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            setup, run = contenders[name]
            setup()
            elapsed, loss_value = timed(run, device_sync, pause=args.pause)
            times[name].append(elapsed)
            final_loss[name] = loss_value
    med = {name: statistics.median(v) for name, v in times.items()}
    # paired ratios: nu_xp against each contender within the same round, then the median over rounds
    paired = {
        f"nu_xp/{k}": statistics.median(a / b for a, b in zip(times["nu_xp"], v))
        for k, v in times.items()
        if k != "nu_xp"
    }
    result: dict[str, Any] = {
        "workload": w.name,
        "sizes": w.sizes,
        "batch": w.batch,
        "steps": w.steps,
        "median_s": med,
        "per_step_us": {k: v / w.steps * 1e6 for k, v in med.items()},
        "final_loss": final_loss,
        "ratios": paired,
        "ratios_of_medians": {f"nu_xp/{k}": med["nu_xp"] / v for k, v in med.items() if k != "nu_xp"},
        "times_s": times,
        "gflops": {k: w.flops_per_step() * w.steps / v / 1e9 for k, v in med.items()},
    }
    if w.name == "mlp_large" and args.backend == "numpy":
        nu_setup()
        one = Workload("one_step", w.sizes, w.activation, w.loss, w.batch, w.batch, 1, lr=w.lr)
        result["peak_bytes"] = {
            "nu_xp": peak_memory(lambda: run_nu_xp(one, *state["nu"], state["nu_x"], state["nu_y"])),
            "hand": peak_memory(lambda: run_hand(one, state["hand_params"], hx, hy, hand_xp)),
        }
        result["peak_ratio"] = result["peak_bytes"]["nu_xp"] / result["peak_bytes"]["hand"]
    return result


def print_result(r: dict[str, Any]) -> None:
    unit = "µs/step" if r["workload"] == "xor_tiny" else "ms total"
    scale = 1e6 / r["steps"] if r["workload"] == "xor_tiny" else 1e3
    cells = "  ".join(f"{k} {v * scale:9.2f}" for k, v in r["median_s"].items())
    print(f"{r['workload']:<11} [{unit}]  {cells}")
    ratios = "  ".join(f"{k} = {v:.2f}" for k, v in r["ratios"].items())
    print(f"{'':<11} ratios: {ratios}")
    if r["workload"] in ("mlp_large", "mlp_xl"):
        print(f"{'':<11} GFLOP/s: " + "  ".join(f"{k} {v:.1f}" for k, v in r["gflops"].items()))
    if "peak_ratio" in r:
        print(
            f"{'':<11} peak memory of one step: nu_xp/hand = {r['peak_ratio']:.2f} "
            f"({r['peak_bytes']['nu_xp'] / 2**20:.1f} MiB vs {r['peak_bytes']['hand'] / 2**20:.1f} MiB)"
        )
    losses = "  ".join(f"{k} {v:.4g}" for k, v in r["final_loss"].items())
    print(f"{'':<11} final loss: {losses}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", choices=["numpy", "torch", "cupy", "array_api_strict"])
    parser.add_argument("--device", default=None, help="e.g. cuda for --backend torch")
    parser.add_argument("--workloads", default="xor_tiny,regression,mlp_mid,mlp_large,gemm_peak")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--pause", type=float, default=0.5, help="idle seconds before each timed run")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    torch, info = torch_contender(args.no_torch)
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.uname().machine,
        "numpy": np.__version__,
        "nu_xp": nu_xp.__version__,
        "torch": getattr(torch, "__version__", None),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "blas": info,
        "backend": args.backend,
        "device": args.device,
    }
    try:
        import sklearn

        env["sklearn"] = sklearn.__version__
    except ImportError:
        args.no_sklearn = True
    print(json.dumps(env, indent=1, default=str))
    results = []
    for name in args.workloads.split(","):
        name = name.strip()
        if name == "gemm_peak":
            peak = gemm_peak(args.repeats)
            results.append({"workload": "gemm_peak", "gflops": peak})
            print(f"gemm_peak   float32 512x1024 @ 1024x1024: {peak:.1f} GFLOP/s")
            continue
        r = bench_workload(WORKLOADS[name], args, torch)
        results.append(r)
        print_result(r)
    large = next((r for r in results if r["workload"] == "mlp_large"), None)
    peak = next((r for r in results if r["workload"] == "gemm_peak"), None)
    if large and peak:
        share = large["gflops"]["nu_xp"] / peak["gflops"]
        print(f"mlp_large nu_xp reaches {share:.0%} of gemm_peak")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
