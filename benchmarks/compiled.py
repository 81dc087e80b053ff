"""JAX eager, JAX compiled (``nu_xp.compile_step``), NumPy, PyTorch eager and Keras 3 on JAX: one training step.

Every contender trains the same network from the same weights on the same
batch with Adam (lr 1e-3); contenders are interleaved in one process, 0.5 s
idle before each timed run, and the table gives the median over rounds of
each one's time per step divided by nu_xp-on-NumPy's in the same round
(below 1: faster than NumPy). The compiled step's compile time (its first
call per shape, tracing included) is reported beside its step time.

``--keras`` adds Keras 3 on its JAX backend (``pip install keras``; the
multi-backend peer), ``model.compile(jit_compile=True)`` and
``train_on_batch``, for the networks Keras has a twin of here (not the tiny
GPT): the same layers and sizes, channels last as Keras lays them out, its
own initial weights (a step's cost does not depend on the values). Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compiled.py [--nets lenet5] [--rounds 5] [--keras]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv
import sequence
from run import timed, torch_contender

import nu_xp

NETS = ("mlp_mid", "mnist1d_cnn", "lenet5", "lstm", "tiny_gpt")
STEPS = {"mlp_mid": 300, "mnist1d_cnn": 80, "lenet5": 8, "lstm": 8, "tiny_gpt": 3}  # ~0.1 s of NumPy per timed run


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "mlp_mid":
        return rng.standard_normal((64, 64)).astype(np.float32), rng.integers(0, 10, 64)
    if name in conv.NETS:
        spec = conv.NETS[name]
        return rng.normal(size=(spec["batch"], *spec["input"])).astype(np.float32), rng.integers(0, 10, spec["batch"])
    x, y = sequence.data("lstm" if name == "lstm" else "gpt")
    return x, (y if name == "lstm" else y.reshape(-1))


def build(name: str, backend: str) -> Any:
    if name == "mlp_mid":
        kw = {"backend": backend}
        return nu_xp.Sequential(
            nu_xp.Linear(64, 128, seed=0, **kw), nu_xp.ReLU(), nu_xp.Linear(128, 64, seed=1, **kw), nu_xp.ReLU(),
            nu_xp.Linear(64, 10, seed=2, **kw),
        )  # fmt: skip
    if name in conv.NETS:
        return conv.build_nu_xp(name, backend, None)
    model = sequence.build_nu_xp("lstm" if name == "lstm" else "gpt", backend, None)
    return model if name == "lstm" else nu_xp.Sequential(*model, nu_xp.Flatten(0, 1))


def torch_net(name: str, torch: Any) -> Any:
    reference = build(name, "numpy")
    if name == "mlp_mid":
        net = torch.nn.Sequential(
            torch.nn.Linear(64, 128),
            torch.nn.ReLU(),
            torch.nn.Linear(128, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        )
        net.load_state_dict({k: torch.from_numpy(v) for k, v in reference.state_dict().items()})
        return net
    if name in conv.NETS:
        return conv.torch_twin(reference, torch, "cpu")
    if name == "lstm":
        return sequence.build_torch("lstm", reference, torch, "cpu")
    body = sequence.build_torch("gpt", sequence.build_nu_xp("gpt", "numpy", None), torch, "cpu")
    return torch.nn.Sequential(body, torch.nn.Flatten(0, 1))


def keras_net(name: str, keras: Any) -> Any:
    """The Keras twin of network ``name`` (channels last), or None where there is none here."""
    layers = keras.layers
    if name == "mlp_mid":
        body = [layers.Input((64,)), layers.Dense(128, "relu"), layers.Dense(64, "relu"), layers.Dense(10)]
    elif name == "mnist1d_cnn":
        body = [layers.Input((40, 1))]
        for _ in range(3):
            body += [
                layers.ZeroPadding1D(1),
                layers.Conv1D(25, 5 if len(body) == 1 else 3, strides=2, activation="relu"),
            ]
        body += [layers.Flatten(), layers.Dense(10)]
    elif name == "lenet5":
        body = [
            layers.Input((28, 28, 1)), layers.Conv2D(6, 5, padding="same", activation="relu"), layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
            layers.Dense(120, "relu"), layers.Dense(84, "relu"), layers.Dense(10),
        ]  # fmt: skip
    elif name == "lstm":
        body = [layers.Input((50,), dtype="int32"), layers.Embedding(100, 32), layers.LSTM(128), layers.Dense(10)]
    else:
        return None
    model = keras.Sequential(body)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def contenders(name: str, torch: Any, keras: Any = None) -> tuple[dict[str, Any], dict[str, float]]:
    x_host, y_host = data(name)
    steps = STEPS[name]
    runs: dict[str, Any] = {}
    compile_seconds: dict[str, float] = {}
    for label, backend, compiled in (
        ("numpy", "numpy", False),
        ("jax eager", "jax", False),
        ("jax compiled", "jax", True),
    ):
        model = build(name, backend)
        opt = nu_xp.optim.Adam(model.parameters(), lr=1e-3)
        loss = nu_xp.CrossEntropyLoss()
        # integers keep their dtype: JAX without x64 holds them as int32 (asking for int64 there warns)
        x, y = nu_xp.asarray(x_host, like=model, dtype=None), nu_xp.asarray(y_host, like=model, dtype=None)
        if compiled:
            step = nu_xp.compile_step(model, loss, opt)
            step(x, y)  # eager: creates Adam's state
            start = time.perf_counter()
            step(x, y).block_until_ready()  # traces and compiles
            compile_seconds[label] = time.perf_counter() - start

            def run(step: Any = step, x: Any = x, y: Any = y) -> float:
                value = None
                for _ in range(steps):
                    value = step(x, y)
                return float(value)
        else:

            def run(model: Any = model, opt: Any = opt, loss: Any = loss, x: Any = x, y: Any = y) -> float:
                value = None
                for _ in range(steps):
                    value = nu_xp.training.train_step(model, loss, opt, x, y)[0]
                return float(value)

        runs[label] = run
    if torch is not None:
        net = torch_net(name, torch)
        topt = torch.optim.Adam(net.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x_host), torch.from_numpy(y_host)

        def run_torch() -> float:
            value = None
            for _ in range(steps):
                topt.zero_grad()
                value = torch.nn.functional.cross_entropy(net(tx), ty)
                value.backward()
                topt.step()
            return float(value.detach())

        runs["PyTorch"] = run_torch
    knet = keras_net(name, keras) if keras is not None else None
    if knet is not None:
        kx = x_host if x_host.ndim < 3 else np.ascontiguousarray(np.moveaxis(x_host, 1, -1))  # channels last
        kx = kx.astype(np.int32) if kx.dtype.kind == "i" else kx
        start = time.perf_counter()
        knet.train_on_batch(kx, y_host)  # traces and compiles
        compile_seconds["Keras (JAX)"] = time.perf_counter() - start

        def run_keras() -> float:
            value = None
            for _ in range(steps):
                value = knet.train_on_batch(kx, y_host)
            return float(value)

        runs["Keras (JAX)"] = run_keras
    return runs, compile_seconds


def bench(name: str, rounds: int, pause: float, torch: Any, keras: Any = None) -> dict[str, Any]:
    runs, compile_seconds = contenders(name, torch, keras)
    for fn in runs.values():  # warm-up
        fn()
    per_step: dict[str, list[float]] = {k: [] for k in runs}
    ratios: dict[str, list[float]] = {k: [] for k in runs}
    keys = list(runs)
    for r in range(rounds):
        seconds = {}
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:  # the order rotates each round
            seconds[key], _ = timed(runs[key], None, pause)
            per_step[key].append(seconds[key] / STEPS[name])
        for key in keys:
            ratios[key].append(seconds[key] / seconds["numpy"])
    return {
        "net": name,
        "ms_per_step": {k: 1e3 * statistics.median(v) for k, v in per_step.items()},
        "over_numpy": {k: statistics.median(v) for k, v in ratios.items()},
        "compile_s": compile_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keras", action="store_true", help="add Keras 3 on JAX (pip install keras)")
    args = parser.parse_args(argv)
    torch, info = torch_contender(args.no_torch)
    import jax

    keras = None
    if args.keras:
        import os

        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras

        if keras.backend.backend() != "jax":
            raise SystemExit(f"--keras compares Keras on JAX; KERAS_BACKEND is {keras.backend.backend()!r}")

    print(json.dumps({"blas": info, "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}))
    results = []
    for name in args.nets.split(","):
        r = bench(name, args.rounds, args.pause, torch, keras)
        results.append(r)
        ms = "  ".join(f"{k} {v:8.2f}" for k, v in r["ms_per_step"].items())
        over = "  ".join(f"{k} {v:5.2f}" for k, v in r["over_numpy"].items())
        compiles = "  ".join(f"{k} {v:.2f} s" for k, v in r["compile_s"].items())
        print(f"{name:<12} [ms/step] {ms}\n{'':<12} / numpy:   {over}   compile: {compiles}")
        if "PyTorch" in r["over_numpy"]:
            t = r["over_numpy"]["PyTorch"]
            print(f"{'':<12} / PyTorch: " + "  ".join(f"{k} {v / t:5.2f}" for k, v in r["over_numpy"].items()))
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
