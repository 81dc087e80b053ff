"""Before and after: this checkout's nu_xp against another checkout of it, paired in ONE process.

The other checkout (a ``git worktree`` of an older commit, say) is imported
under the name ``nu_xp_before``, so both versions train the same networks
(the MLP workloads of ``run.py`` and the convolutional ones of ``conv.py``,
same seeds, same data; and the LSTM and tiny GPT of ``sequence.py``) in the same process, with the two interleaved (the
order alternates each round, each timed run after a short idle pause). The
result per workload is the median over rounds of ``time(now) / time(before)``
(paired: a slow phase of a shared machine hits both). ``--jax-compiled`` runs
the convolutional and sequence networks on JAX instead, each version's ``compile_step``
(compiled once, in the warm-up):

    git worktree add /tmp/nu_xp_before <commit>
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/versions.py /tmp/nu_xp_before [--rounds 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv  # the convolutional networks
import run  # the MLP workloads and the timing helpers
import sequence  # the LSTM and the tiny GPT

import nu_xp


def load_other(root: Path) -> Any:
    """The nu_xp package of checkout ``root``, imported as ``nu_xp_before`` (beside this one)."""
    package = root / "nu_xp"
    spec = importlib.util.spec_from_file_location(
        "nu_xp_before", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"{root} holds no nu_xp package")
    module = importlib.util.module_from_spec(spec)
    sys.modules["nu_xp_before"] = module
    spec.loader.exec_module(module)
    return module


def mlp_runner(lib: Any, name: str) -> Any:
    w = run.WORKLOADS[name]
    x_host, y_host = run.make_data(w)
    model, loss = run.build_nu_xp(w, "numpy", None, lib)
    x, y = lib.asarray(x_host, like=model, dtype=model.dtype), lib.asarray(y_host, like=model)
    if w.loss != "ce":
        y = lib.asarray(y_host, like=model, dtype=model.dtype)
    return lambda: run.run_nu_xp(w, model, loss, x, y, lib)


def _steps(count: int, one_step: Any) -> Any:
    """A timed run: ``one_step()`` ``count`` times, the last loss as a float (which waits for a JAX step)."""

    def run() -> float:
        value: Any = 0.0
        for _ in range(count):
            value = one_step()
        return float(value)

    return run


def conv_runner(lib: Any, name: str, jax_compiled: bool = False) -> Any:
    spec = conv.NETS[name]
    rng = np.random.default_rng(0)
    x_host = rng.normal(size=(spec["batch"], *spec["input"])).astype(np.float32)
    model = conv.build_nu_xp(name, "jax" if jax_compiled else "numpy", None, lib)
    loss = lib.CrossEntropyLoss()
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    x, y = lib.asarray(x_host, like=model), lib.asarray(rng.integers(0, 10, spec["batch"]), like=model)
    if jax_compiled:
        compiled = lib.compile_step(model, loss, opt)
        return _steps(spec["steps"], lambda: compiled(x, y))

    def step() -> Any:
        value = loss.forward(model.forward(x), y)
        opt.zero_grad()
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        return value

    return _steps(spec["steps"], step)


def _sequence_model(lib: Any, name: str) -> Any:
    """``sequence.py``'s LSTM classifier or tiny GPT, written with ``lib``'s own layers only (the demos import
    ``nu_xp`` by name, so they would mix the two checkouts)."""

    class LastStep(lib.Layer):  # y = x[:, -1, :]
        def forward(self, x: Any) -> Any:
            self.save_for_backward(tuple(x.shape))
            return x[:, -1, :]

        def backward(self, grad: Any) -> Any:
            (shape,) = self.saved_tensors()
            xp = lib.backends.ops_of(grad).xp
            zeros = xp.zeros((shape[0], shape[1] - 1, shape[2]), dtype=grad.dtype)
            return xp.concat([zeros, grad[:, None, :]], axis=1)

    class TokenAndPosition(lib.Layer):  # y[n, t] = E_tok[x[n, t]] + E_pos[t]
        takes_indices = True

        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = lib.Embedding(sequence.VOCAB, 128), lib.Embedding(64, 128)

        def forward(self, x: Any) -> Any:
            xp = self.tok.backend.xp
            return self.tok(x) + self.pos(xp.arange(x.shape[1]))[None, ...]

        def backward(self, grad: Any) -> None:
            self.pos.backward(self.tok.backend.xp.sum(grad, axis=0))
            self.tok.backward(grad)

    if name == "lstm":
        return lib.Sequential(
            lib.Embedding(sequence.VOCAB, 32, seed=0),
            lib.LSTM(32, 128, batch_first=True, seed=1),
            lib.Select(0),
            LastStep(),
            lib.Linear(128, 10, seed=2),
        )
    blocks = [
        lib.TransformerEncoderLayer(
            128, 4, 512, dropout=0.0, activation="gelu", batch_first=True, norm_first=True, causal=True, seed=i
        )
        for i in range(2)
    ]
    embed = TokenAndPosition()
    head = lib.Linear(128, sequence.VOCAB, bias=False)
    head.weight = embed.tok.weight
    return lib.Sequential(embed, *blocks, lib.LayerNorm(128), head)


def sequence_runner(lib: Any, name: str, jax_compiled: bool = False) -> Any:
    """An Adam step of ``sequence.py``'s LSTM or tiny GPT on ``lib`` (``jax_compiled``: on JAX, ``compile_step``;
    the GPT's output flattened to ``(N·L, V)`` for the loss, as ``compiled.py`` does)."""
    x_host, y_host = sequence.data(name)
    model = _sequence_model(lib, name)
    if jax_compiled:
        model = model.to("jax") if name == "lstm" else lib.Sequential(*model, lib.Flatten(0, 1)).to("jax")
        y_host = y_host if name == "lstm" else y_host.reshape(-1)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    loss = lib.CrossEntropyLoss()
    x, y = lib.asarray(x_host, like=model, dtype=None), lib.asarray(y_host, like=model, dtype=None)
    if jax_compiled:
        compiled = lib.compile_step(model, loss, opt)
        return _steps(sequence.STEPS_PER_RUN, lambda: compiled(x, y))
    return _steps(sequence.STEPS_PER_RUN, lambda: sequence.step_nu_xp(name, model, opt, loss, x, y))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (its root folder)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workloads", default="xor_tiny,regression,mlp_mid,mlp_large,mnist1d_cnn,lenet5,lstm,tiny_gpt")
    parser.add_argument("--jax-compiled", action="store_true", help="the CNNs and sequence nets on JAX, compiled")
    args = parser.parse_args(argv)
    before = load_other(args.other.resolve())
    print(f"CPU {cpu_model()}; BLAS {run.blas_info()}")
    print(f"{'workload':12s} {'now ms':>9s} {'before ms':>10s} {'now/before':>11s}  ({args.rounds} paired rounds)")
    for name in args.workloads.split(","):
        if args.jax_compiled and name not in (*conv.NETS, "lstm", "tiny_gpt"):
            raise SystemExit(f"--jax-compiled times the CNNs ({', '.join(conv.NETS)}), lstm and tiny_gpt, not {name}")
        make = mlp_runner if name in run.WORKLOADS else sequence_runner if name in ("lstm", "tiny_gpt") else conv_runner
        extra = {"jax_compiled": True} if args.jax_compiled else {}
        runners = {"now": make(nu_xp, name, **extra), "before": make(before, name, **extra)}
        for fn in runners.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {"now": [], "before": []}
        ratios = []
        for r in range(args.rounds):
            order = ["now", "before"] if r % 2 == 0 else ["before", "now"]
            for who in order:
                times[who].append(run.timed(runners[who])[0])
            ratios.append(times["now"][-1] / times["before"][-1])
        now, old = statistics.median(times["now"]), statistics.median(times["before"])
        print(f"{name:12s} {now * 1e3:9.1f} {old * 1e3:10.1f} {statistics.median(ratios):11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
