"""JAX eager, JAX compiled (``nu_xp.compile_step``), NumPy and PyTorch eager: one training step, five networks.

Every contender trains the same network from the same weights on the same
batch with Adam (lr 1e-3); contenders are interleaved in one process, 0.5 s
idle before each timed run, and the table gives the median over rounds of
each one's time per step divided by nu_xp-on-NumPy's in the same round
(below 1: faster than NumPy). The compiled step's compile time (its first
call per shape, tracing included) is reported beside its step time. Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/compiled.py [--nets mlp_mid,lenet5] [--rounds 5]
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
STEPS = {"mlp_mid": 50, "mnist1d_cnn": 20, "lenet5": 5, "lstm": 5, "tiny_gpt": 3}


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


def contenders(name: str, torch: Any) -> tuple[dict[str, Any], dict[str, float]]:
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
        x, y = nu_xp.asarray(x_host, like=model, dtype=None if x_host.dtype.kind == "f" else "int64"), None
        y = nu_xp.asarray(y_host, like=model, dtype="int64")
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
    return runs, compile_seconds


def bench(name: str, rounds: int, pause: float, torch: Any) -> dict[str, Any]:
    runs, compile_seconds = contenders(name, torch)
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
    args = parser.parse_args(argv)
    torch, info = torch_contender(args.no_torch)
    import jax

    print(json.dumps({"blas": info, "jax": jax.__version__, "jax_devices": [str(d) for d in jax.devices()]}))
    results = []
    for name in args.nets.split(","):
        r = bench(name, args.rounds, args.pause, torch)
        results.append(r)
        ms = "  ".join(f"{k} {v:8.2f}" for k, v in r["ms_per_step"].items())
        over = "  ".join(f"{k} {v:5.2f}" for k, v in r["over_numpy"].items())
        print(f"{name:<12} [ms/step] {ms}\n{'':<12} / numpy:   {over}   compile {r['compile_s']['jax compiled']:.2f} s")
        if "PyTorch" in r["over_numpy"]:
            t = r["over_numpy"]["PyTorch"]
            print(f"{'':<12} / PyTorch: " + "  ".join(f"{k} {v / t:5.2f}" for k, v in r["over_numpy"].items()))
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
