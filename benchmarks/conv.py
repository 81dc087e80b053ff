"""Convolutional training steps: nu_xp against PyTorch eager and a hand-written NumPy version, as ratios.

Two networks, one SGD training step each (forward, softmax cross-entropy,
backward, update), timed in ONE process with the contenders interleaved and
each timed run after a short idle pause (see ``benchmarks/run.py``):

* ``mnist1d_cnn``: the MNIST-1D paper's CNN (three Conv1d of 25 channels,
  kernel 5/3/3, stride 2, padding 1, ReLU, Linear(125, 10)), batch 100, 40 steps
  per timed run;
* ``lenet5``: a LeNet-5-shaped Conv2d network on 28×28 inputs (conv 5×5 ×6
  "same", max-pool 2, conv 5×5 ×16, max-pool 2, 400-120-84-10 with ReLU),
  batch 128, 10 steps per timed run.

``hand`` is the same step written directly in NumPy (windows from
``sliding_window_view``, one ``tensordot`` per GEMM): the floor for a NumPy
program, and the reference of the peak-memory ratio (tracemalloc over one
step). ``gemm GFLOP/s`` is the convolutions' and linears' multiply-adds per
second of the nu_xp step, beside this machine's float32 GEMM peak.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv.py [--backend numpy|torch|cupy] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import gemm_peak, peak_memory, timed, torch_contender  # the shared timing helpers

import nu_xp

NETS: dict[str, dict[str, Any]] = {
    "mnist1d_cnn": {"input": (1, 40), "batch": 100, "steps": 40},
    "lenet5": {"input": (1, 28, 28), "batch": 128, "steps": 10},
}


def build_nu_xp(name: str, backend: str, device: Any, lib: Any = nu_xp) -> Any:
    """The network ``name``, built with ``lib`` (nu_xp, or another version of it: ``versions.py``)."""
    nu_xp = lib
    kw = {"backend": backend, "device": device}
    if name == "mnist1d_cnn":
        return nu_xp.Sequential(
            nu_xp.Conv1d(1, 25, 5, stride=2, padding=1, seed=0, **kw),
            nu_xp.ReLU(),
            nu_xp.Conv1d(25, 25, 3, stride=2, padding=1, seed=1, **kw),
            nu_xp.ReLU(),
            nu_xp.Conv1d(25, 25, 3, stride=2, padding=1, seed=2, **kw),
            nu_xp.ReLU(),
            nu_xp.Flatten(),
            nu_xp.Linear(125, 10, seed=3, **kw),
        )
    return nu_xp.Sequential(
        nu_xp.Conv2d(1, 6, 5, padding=2, seed=0, **kw),
        nu_xp.ReLU(),
        nu_xp.MaxPool2d(2),
        nu_xp.Conv2d(6, 16, 5, seed=1, **kw),
        nu_xp.ReLU(),
        nu_xp.MaxPool2d(2),
        nu_xp.Flatten(),
        nu_xp.Linear(400, 120, seed=2, **kw),
        nu_xp.ReLU(),
        nu_xp.Linear(120, 84, seed=3, **kw),
        nu_xp.ReLU(),
        nu_xp.Linear(84, 10, seed=4, **kw),
    )


def torch_twin(model: nu_xp.Sequential, torch: Any, device: str) -> Any:
    layers: list[Any] = []
    for layer in model:
        kind = type(layer).__name__
        if kind in ("Conv1d", "Conv2d"):
            cls = getattr(torch.nn, kind)
            layers.append(cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding))
        elif kind == "Linear":
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features))
        elif kind == "MaxPool2d":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers.append(getattr(torch.nn, kind)())
    twin = torch.nn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    return twin.to(device)


def gemm_flops(name: str, x_shape: tuple[int, ...]) -> float:
    """2·MACs of forward (1 GEMM) and backward (2 GEMMs) of every conv and linear of a step: 6·MACs."""
    model = build_nu_xp(name, "numpy", None)
    h, total = np.zeros(x_shape, np.float32), 0.0
    for layer in model:
        out = layer.forward(h)
        if isinstance(layer, (nu_xp.Conv1d, nu_xp.Conv2d)):
            per_position = layer.in_channels // layer.groups * math.prod(layer.kernel_size) * layer.out_channels
            total += 6.0 * out.shape[0] * math.prod(out.shape[2:]) * per_position
        elif isinstance(layer, nu_xp.Linear):
            total += 6.0 * out.shape[0] * layer.in_features * layer.out_features
        h = out
    return total


# ---------------------------------------------------------------------------- the hand-written NumPy step


def _windows(x: np.ndarray, kernel: tuple[int, ...], stride: int) -> np.ndarray:
    """(N, C, *out, *kernel) strided view of the windows."""
    view = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=tuple(range(2, x.ndim)))
    index = (slice(None), slice(None), *(slice(None, None, stride),) * len(kernel))
    return view[index]


def hand_step(name: str, params: list[np.ndarray], x: np.ndarray, y: np.ndarray, lr: float) -> float:
    """One SGD step of the network, by hand; returns the loss."""
    acts: list[Any] = []
    h = x
    if name == "mnist1d_cnn":
        for i in range(3):
            w, b = params[2 * i], params[2 * i + 1]
            k = w.shape[-1]
            hp = np.pad(h, ((0, 0), (0, 0), (1, 1)))
            win = _windows(hp, (k,), 2)  # (N, C, L, k)
            z = np.tensordot(win, w, axes=([1, 3], [1, 2])).transpose(0, 2, 1) + b[:, None]
            acts.append((hp.shape, win, z))
            h = np.maximum(z, 0)
        flat = h.reshape(h.shape[0], -1)
        logits = flat @ params[6].T + params[7]
    else:
        h = np.pad(h, ((0, 0), (0, 0), (2, 2), (2, 2)))
        for i in range(2):
            w, b = params[2 * i], params[2 * i + 1]
            win = _windows(h, (5, 5), 1)  # (N, C, H, W, 5, 5)
            z = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[:, None, None]
            r = np.maximum(z, 0)
            n, c, hh, ww = r.shape
            blocks = r.reshape(n, c, hh // 2, 2, ww // 2, 2)
            pooled = blocks.max(axis=(3, 5))
            acts.append((h.shape, win, z, blocks, pooled))
            h = pooled
        flat = h.reshape(h.shape[0], -1)
        dense = []
        for i in range(2):
            zd = flat @ params[4 + 2 * i].T + params[5 + 2 * i]
            dense.append((flat, zd))
            flat = np.maximum(zd, 0)
        logits = flat @ params[8].T + params[9]
    # softmax cross-entropy
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    g = p
    g[np.arange(n), y] -= 1.0
    g /= n
    grads: list[Any] = [None] * len(params)
    last = len(params) - 2
    grads[last], grads[last + 1] = g.T @ flat, g.sum(axis=0)
    g = g @ params[last]
    if name == "lenet5":
        for i in (1, 0):
            inp, zd = dense[i]
            g = g * (zd > 0)
            grads[4 + 2 * i], grads[5 + 2 * i] = g.T @ inp, g.sum(axis=0)
            g = g @ params[4 + 2 * i]
        g = g.reshape(acts[-1][4].shape)
        for i in (1, 0):
            shape, win, z, blocks, pooled = acts[i]
            mask = blocks == pooled[:, :, :, None, :, None]
            gz = (mask * g[:, :, :, None, :, None]).reshape(z.shape) * (z > 0)
            w = params[2 * i]
            grads[2 * i] = np.tensordot(gz, win, axes=([0, 2, 3], [0, 2, 3]))
            grads[2 * i + 1] = gz.sum(axis=(0, 2, 3))
            if i == 0:
                break
            dwin = np.tensordot(gz, w, axes=([1], [0]))  # (N, H, W, C, 5, 5)
            dx = np.zeros(shape, np.float32)
            for a in range(5):
                for c in range(5):
                    dx[:, :, a : a + z.shape[2], c : c + z.shape[3]] += dwin[:, :, :, :, a, c].transpose(0, 3, 1, 2)
            g = dx
    else:
        g = g.reshape(h.shape)
        for i in (2, 1, 0):
            shape, win, z = acts[i]
            gz = g * (z > 0)
            w = params[2 * i]
            grads[2 * i] = np.tensordot(gz, win, axes=([0, 2], [0, 2]))
            grads[2 * i + 1] = gz.sum(axis=(0, 2))
            if i == 0:
                break
            dwin = np.tensordot(gz, w, axes=([1], [0]))  # (N, L, C, k)
            dx = np.zeros(shape, np.float32)
            k, out = w.shape[-1], z.shape[2]
            for t in range(k):
                dx[:, :, t : t + 2 * out - 1 : 2] += dwin[:, :, :, t].transpose(0, 2, 1)
            g = dx[:, :, 1:-1]
    for p_, g_ in zip(params, grads):
        p_ -= lr * g_
    return loss


# ---------------------------------------------------------------------------- the harness


def bench(name: str, args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    spec = NETS[name]
    rng = np.random.default_rng(0)
    x_host = rng.normal(size=(spec["batch"], *spec["input"])).astype(np.float32)
    y_host = rng.integers(0, 10, spec["batch"])
    steps = spec["steps"]
    model = build_nu_xp(name, args.backend, args.device)
    loss = nu_xp.CrossEntropyLoss()
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.01)
    x = nu_xp.asarray(x_host, like=model)
    y = nu_xp.asarray(y_host, like=model)
    hand_params = [np.array(v) for v in model.state_dict().values()]
    gpu = args.backend == "cupy" or args.device == "cuda"

    def run_nu() -> float:
        value: Any = 0.0
        for _ in range(steps):
            value = nu_xp.training.train_step(model, loss, opt, x, y)[0]
        return float(value)

    def run_hand() -> float:
        return [hand_step(name, hand_params, x_host, y_host, 0.01) for _ in range(steps)][-1]

    contenders: dict[str, Any] = {"nu_xp": run_nu}
    if not gpu:
        contenders["hand"] = run_hand
    if torch is not None:
        tdev = "cuda" if gpu else "cpu"
        twin = torch_twin(model, torch, tdev)
        topt = torch.optim.SGD(twin.parameters(), lr=0.01)
        tloss = torch.nn.CrossEntropyLoss()
        tx, ty = torch.as_tensor(x_host, device=tdev), torch.as_tensor(y_host, device=tdev)

        def run_torch() -> float:
            out: Any = 0.0
            for _ in range(steps):
                topt.zero_grad()
                out = tloss(twin(tx), ty)
                out.backward()
                topt.step()
            return float(out.detach())

        contenders["torch"] = run_torch

    def sync() -> None:
        model.backend.synchronize()
        if torch is not None and gpu:
            torch.cuda.synchronize()

    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(args.repeats):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            elapsed, _ = timed(contenders[k], sync, pause=args.pause)
            times[k].append(elapsed / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        f"nu_xp/{k}": statistics.median(a / b for a, b in zip(times["nu_xp"], v))
        for k, v in times.items()
        if k != "nu_xp"
    }
    result: dict[str, Any] = {
        "net": name,
        "batch": spec["batch"],
        "ms_per_step": {k: v * 1e3 for k, v in med.items()},
        "ratios": ratios,
    }
    flops = gemm_flops(name, tuple(x_host.shape))
    result["gemm_gflops"] = flops / med["nu_xp"] / 1e9
    if args.backend == "numpy":  # tracemalloc sees NumPy's allocations, not torch's or CuPy's
        one_nu = lambda: nu_xp.training.train_step(model, loss, opt, x, y)  # noqa: E731
        one_hand = lambda: hand_step(name, hand_params, x_host, y_host, 0.01)  # noqa: E731
        result["peak_bytes"] = {"nu_xp": peak_memory(one_nu), "hand": peak_memory(one_hand)}
        result["peak_ratio"] = result["peak_bytes"]["nu_xp"] / result["peak_bytes"]["hand"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", choices=["numpy", "torch", "cupy", "array_api_strict"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--nets", default="mnist1d_cnn,lenet5")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch, info = torch_contender(args.no_torch)
    env = {"numpy": np.__version__, "torch": getattr(torch, "__version__", None), "blas": info, "backend": args.backend}
    print(json.dumps(env, indent=1))
    results = [bench(name, args, torch) for name in args.nets.split(",")]
    peak = gemm_peak(5) if args.backend == "numpy" else None
    for r in results:
        cells = "  ".join(f"{k} {v:.3f}" for k, v in r["ms_per_step"].items())
        ratios = "  ".join(f"{k} = {v:.2f}" for k, v in r["ratios"].items())
        print(f"{r['net']:<12} [ms/step] {cells}\n{'':<12} ratios: {ratios}")
        line = f"{'':<12} nu_xp GEMM work {r['gemm_gflops']:.1f} GFLOP/s"
        if peak:
            line += f" ({r['gemm_gflops'] / peak:.0%} of gemm_peak {peak:.0f})"
        print(line)
        if "peak_ratio" in r:
            b = r["peak_bytes"]
            print(
                f"{'':<12} peak memory of one step: nu_xp/hand = {r['peak_ratio']:.2f} "
                f"({b['nu_xp'] / 2**20:.2f} MiB vs {b['hand'] / 2**20:.2f} MiB)"
            )
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results, "gemm_peak": peak}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
