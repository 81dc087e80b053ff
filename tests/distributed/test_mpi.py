"""Data-parallel training: ``mpiexec -n 2`` and ``-n 3`` from pytest, compared with one process.

Each test writes a small script, runs it under the venv's ``mpiexec`` (stdin
closed, a timeout, the whole process group killed on timeout) and reads back
what the ranks wrote. Skipped with a message where mpi4py or mpiexec is missing
(``pip install "nu_xp[mpi]"``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nu_xp

ROOT = Path(__file__).resolve().parents[2]


def mpiexec() -> str:
    pytest.importorskip("mpi4py", reason='needs mpi4py: pip install "nu_xp[mpi]"')
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        pytest.skip('needs mpiexec (the mpich wheel: pip install "nu_xp[mpi]")')
    return found


def run_ranks(n: int, script: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``mpiexec -n n python script`` with nu_xp importable; the process group dies on timeout."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        # harmless for MPICH; lets Open MPI (a cluster's, or a GPU machine's system MPI) run as root and
        # start more ranks than cores, as MPICH does by itself
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
    }
    proc = subprocess.Popen(
        [mpiexec(), "-n", str(n), sys.executable, str(path), str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} did not finish in {timeout} s:\n{out}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


TRAIN = """
import json, sys
from pathlib import Path
import numpy as np
import nu_xp
out = Path(sys.argv[1])
backend, opt_name, batch = {backend!r}, {opt!r}, {batch}
rng = np.random.default_rng(0)
x = rng.normal(size=(50, 3)).astype(np.float32)
y = rng.integers(0, 3, 50)
model = nu_xp.Sequential(
    nu_xp.Linear(3, 8, seed=0, backend=backend), nu_xp.Tanh(), nu_xp.Linear(8, 3, seed=1, backend=backend)
)
if opt_name == "sgd":
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
else:
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.01)
h = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=4, batch_size=batch, seed=3,
              metrics=["accuracy"], validation_data=(x[:10], y[:10]), progress=False, distributed=True)
r = nu_xp.distributed.rank()
assert isinstance(r, int) and isinstance(nu_xp.distributed.world_size(), int)
np.savez(out / f"rank{{r}}.npz", **model.state_dict())
(out / f"history{{r}}.json").write_text(json.dumps(h.history))
nu_xp.save(model, out / "model.npz")  # rank 0 only
"""


def single_process(backend: str, opt: str, batch: int):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    model = nu_xp.Sequential(
        nu_xp.Linear(3, 8, seed=0, backend=backend), nu_xp.Tanh(), nu_xp.Linear(8, 3, seed=1, backend=backend)
    )
    optimizer = (
        nu_xp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if opt == "sgd"
        else nu_xp.optim.Adam(model.parameters(), lr=0.01)
    )
    h = nu_xp.fit(
        model, nu_xp.CrossEntropyLoss(), optimizer, x, y, epochs=4, batch_size=batch, seed=3,
        metrics=["accuracy"], validation_data=(x[:10], y[:10]), progress=False,
    )  # fmt: skip
    return model.state_dict(), h.history


@pytest.mark.parametrize(("n", "batch"), [(2, 16), (3, 16), (3, 7)])  # 50 = 3·16 + 2: uneven shares, a short last batch
@pytest.mark.parametrize("opt", ["sgd", "adam"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ranks_train_like_one_process(tmp_path, n, batch, opt, backend):
    pytest.importorskip(backend)
    result = run_ranks(n, TRAIN.format(backend=backend, opt=opt, batch=batch), tmp_path)
    assert result.returncode == 0, result.stdout
    expected, history = single_process(backend, opt, batch)
    eps = float(np.finfo(np.float32).eps)
    for r in range(n):
        with np.load(tmp_path / f"rank{r}.npz") as saved:
            for k, v in expected.items():
                np.testing.assert_allclose(saved[k], v, rtol=2000 * eps, atol=2000 * eps, err_msg=f"rank {r} {k}")
        assert json.loads((tmp_path / f"history{r}.json").read_text()) == json.loads(
            (tmp_path / "history0.json").read_text()
        ), "the History differs between ranks"
    got = json.loads((tmp_path / "history0.json").read_text())
    np.testing.assert_allclose(got["loss"], history["loss"], rtol=1e-4)
    assert got["accuracy"] == pytest.approx(history["accuracy"], abs=1e-9)
    assert (tmp_path / "model.npz").exists()


LOW_LEVEL = """
import sys
from pathlib import Path
import numpy as np
import nu_xp
from nu_xp import distributed as d
r, n = d.rank(), d.world_size()
layer = nu_xp.Linear(2, 2, seed=r, dtype="float64")
d.broadcast_parameters(layer, root=1)
ref = nu_xp.Linear(2, 2, seed=1, dtype="float64")
assert np.array_equal(layer.weight.data, ref.weight.data), "broadcast from root 1"
layer.weight.grad = np.full((2, 2), float(r + 1))
layer.bias.grad = None
(extra,) = d.allreduce_gradients(layer, extra=[r])
assert np.allclose(layer.weight.grad, sum(range(1, n + 1)) / n) and np.allclose(layer.bias.grad, 0.0)
assert extra == sum(range(n))
layer.weight.grad = np.full((2, 2), float(r + 1))
d.allreduce_gradients([layer.weight], weight=0.5 if r == 0 else 0.25)
assert np.allclose(layer.weight.grad, 0.5 * 1 + sum(0.25 * (k + 1) for k in range(1, n)))
opt = d.DistributedOptimizer(nu_xp.optim.SGD(layer.parameters(), lr=1.0))
before = np.array(layer.weight.data)
layer.weight.grad, layer.bias.grad = np.full((2, 2), float(r)), np.zeros(2)
opt.step()
assert np.allclose(layer.weight.data, before - sum(range(n)) / n) and opt.lr == 1.0
d.barrier()
print(f"rank {r} of {n} ok", flush=True)
"""


@pytest.mark.parametrize("n", [2, 3])
def test_low_level_functions_against_a_hand_computation(tmp_path, n):
    result = run_ranks(n, LOW_LEVEL, tmp_path)
    assert result.returncode == 0, result.stdout
    assert all(f"rank {r} of {n} ok" in result.stdout for r in range(n))


def test_a_failure_on_one_rank_ends_every_rank_quickly(tmp_path):
    script = """
    import time, numpy as np, nu_xp
    nu_xp.distributed.init()
    if nu_xp.distributed.rank() == 1:
        raise RuntimeError("rank one gives up")
    nu_xp.distributed.barrier()  # rank 0 would wait here forever without the abort
    time.sleep(60)
    """
    start = time.monotonic()
    result = run_ranks(2, script, tmp_path, timeout=60)
    assert result.returncode != 0
    assert "rank one gives up" in result.stdout
    assert time.monotonic() - start < 45  # seconds even on a loaded 2-core machine; a hang would hit the timeout


def test_different_data_on_a_rank_is_named(tmp_path):
    script = """
    import numpy as np, nu_xp
    r = nu_xp.distributed.rank()
    x = np.ones((8, 2), np.float32) * (2.0 if r == 2 else 1.0)
    model = nu_xp.Linear(2, 1, seed=0)
    nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model, lr=0.1), x, np.zeros((8, 1)), epochs=1, seed=0,
              progress=False, distributed=True)
    """
    start = time.monotonic()
    result = run_ranks(3, script, tmp_path, timeout=60)
    assert result.returncode != 0
    assert "x differs on rank 2" in result.stdout
    assert result.stdout.count("failed:") == 1  # every rank raised it alike; rank 0 alone reports it
    assert time.monotonic() - start < 45  # seconds even on a loaded 2-core machine; a hang would hit the timeout


def test_a_world_of_one_without_mpiexec(backend):
    """Plain python: rank 0 of 1, and fit(distributed=True) is fit."""
    assert nu_xp.distributed.rank() == 0 and nu_xp.distributed.world_size() == 1
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
    a = nu_xp.Linear(2, 1, seed=0, backend=backend)
    b = nu_xp.Linear(2, 1, seed=0, backend=backend)
    ha = nu_xp.fit(a, nu_xp.MSELoss(), nu_xp.optim.SGD(a, lr=0.1), x, y, epochs=3, batch_size=6, seed=1, progress=False)
    hb = nu_xp.fit(
        b,
        nu_xp.MSELoss(),
        nu_xp.optim.SGD(b, lr=0.1),
        x,
        y,
        epochs=3,
        batch_size=6,
        seed=1,
        progress=False,
        distributed=True,
    )
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-5)
    np.testing.assert_allclose(nu_xp.to_host(a.weight.data), nu_xp.to_host(b.weight.data), rtol=1e-5, atol=1e-6)
