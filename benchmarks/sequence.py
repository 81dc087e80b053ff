"""Sequence training steps: nu_xp against PyTorch eager (its fused CPU LSTM kernel included), as ratios.

Two models, one Adam training step each (forward, softmax cross-entropy,
backward, update), timed in ONE process with the contenders interleaved and
each timed run after a short idle pause (see ``benchmarks/run.py``):

* ``lstm``: ``Embedding(100, 32)`` → ``LSTM(32, 128)`` → the last step → ``Linear(128, 10)``,
  sequences of 50, batch 32 (a sequence classifier);
* ``tiny_gpt``: token and position embeddings (vocabulary 100, width 128), two pre-norm
  ``TransformerEncoderLayer(128, 4, 512, causal=True)`` blocks with GELU, ``LayerNorm``,
  a linear head; context 64, batch 32, the loss at every position.

Contenders: nu_xp on numpy, nu_xp on torch tensors, and ``torch.nn`` eager with
the same weights (``ratio`` = nu_xp time / PyTorch time; below 1 is faster).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/sequence.py [--device cuda] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import timed, torch_contender  # the shared timing helpers

import nu_xp
from nu_xp.demos.chargpt import build, torch_twin

VOCAB, STEPS_PER_RUN = 100, 5


def data(name: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "lstm":
        return rng.integers(0, VOCAB, size=(32, 50)), rng.integers(0, 10, size=32)
    tokens = rng.integers(0, VOCAB, size=(32, 65))
    return tokens[:, :-1], tokens[:, 1:]


def build_nu_xp(name: str, backend: str, device: Any) -> Any:
    kw = {"backend": backend, "device": device}
    if name == "lstm":
        return nu_xp.Sequential(
            nu_xp.Embedding(VOCAB, 32, seed=0, **kw),
            nu_xp.LSTM(32, 128, batch_first=True, seed=1, **kw),
            nu_xp.Select(0),
            nu_xp.TimeStep(-1, batch_first=True),
            nu_xp.Linear(128, 10, seed=2, **kw),
        )
    args = argparse.Namespace(backend=backend, seed=0, width=128, heads=4, context=64, layers=2)
    model = build(VOCAB, args)
    return model.to(backend, device) if device is not None else model


def build_torch(name: str, model: Any, torch: Any, device: str) -> Any:
    if name == "lstm":

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = torch.nn.Embedding(VOCAB, 32)
                self.lstm = torch.nn.LSTM(32, 128, batch_first=True)
                self.head = torch.nn.Linear(128, 10)

            def forward(self, x: Any) -> Any:
                return self.head(self.lstm(self.emb(x))[0][:, -1])

        net = Net()
        state = model.state_dict()
        mapping = {"emb": "0", "lstm": "1", "head": "4"}
        net.load_state_dict(
            {k: torch.from_numpy(state[mapping[k.split(".")[0]] + k[k.index(".") :]]) for k in net.state_dict()}
        )
        return net.to(device)
    args = argparse.Namespace(width=128, heads=4, context=64, layers=2)
    return torch_twin(model, args).to(device)


def step_nu_xp(name: str, model: Any, opt: Any, loss: Any, x: Any, y: Any) -> float:
    xp = model.backend.xp
    out = model(x)
    if name == "lstm":
        value = loss(out, y)
        g = loss.backward()
    else:
        value = loss(xp.reshape(out, (-1, VOCAB)), xp.reshape(y, (-1,)))
        g = xp.reshape(loss.backward(), out.shape)
    opt.zero_grad()
    model.backward(g)
    opt.step()
    return value


def step_torch(name: str, torch: Any, net: Any, opt: Any, x: Any, y: Any) -> Any:
    out = net(x)
    value = torch.nn.functional.cross_entropy(
        out if name == "lstm" else out.flatten(0, 1), y.flatten() if name != "lstm" else y
    )
    opt.zero_grad()
    value.backward()
    opt.step()
    return value


def bench(name: str, args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    x_host, y_host = data(name)
    device = args.device
    contenders: dict[str, Any] = {}
    sync = None
    for backend in ("numpy", "torch"):
        if device == "cuda" and backend == "numpy":
            continue
        model = build_nu_xp(name, backend, device if backend == "torch" else None)
        opt = nu_xp.optim.Adam(model.parameters(), lr=1e-3)
        x, y = nu_xp.asarray(x_host, like=model), nu_xp.asarray(y_host, like=model)
        loss = nu_xp.CrossEntropyLoss()
        contenders[f"nu_xp[{backend}]"] = lambda m=model, o=opt, lo=loss, xx=x, yy=y: [
            step_nu_xp(name, m, o, lo, xx, yy) for _ in range(STEPS_PER_RUN)
        ]
    if torch is not None:
        reference = build_nu_xp(name, "numpy", None)
        net = build_torch(name, reference, torch, device or "cpu")
        topt = torch.optim.Adam(net.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x_host).to(device or "cpu"), torch.from_numpy(y_host).to(device or "cpu")
        contenders["torch"] = lambda: [step_torch(name, torch, net, topt, xt, yt) for _ in range(STEPS_PER_RUN)]
        if device == "cuda":
            sync = torch.cuda.synchronize
    for fn in contenders.values():  # warm-up (allocators, kernels)
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.repeats):
        for key, fn in contenders.items():  # interleaved
            seconds, _ = timed(fn, sync, args.pause)
            times[key].append(seconds / STEPS_PER_RUN)
    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    ratios = {k: ms[k] / ms["torch"] for k in ms if k != "torch"} if "torch" in ms else {}
    return {"model": name, "ms_per_step": ms, "ratios": ratios}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda: nu_xp on torch-CUDA against torch-CUDA")
    parser.add_argument("--models", default="lstm,tiny_gpt")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch, info = torch_contender(args.no_torch)
    env = {"cpu": cpu_model(), "numpy": np.__version__, "torch": getattr(torch, "__version__", None), "blas": info}
    print(json.dumps(env, indent=1))
    results = [bench(name, args, torch) for name in args.models.split(",")]
    for r in results:
        cells = "  ".join(f"{k} {v:.2f}" for k, v in r["ms_per_step"].items())
        ratios = "  ".join(f"{k}/torch = {v:.2f}" for k, v in r["ratios"].items())
        print(f"{r['model']:<9} [ms/step] {cells}\n{'':<9} {ratios}")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
