"""``nu_xp.data``: datasets, the DataLoader, and ``fit``/``evaluate`` on batches that stream."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import nu_xp
from nu_xp.data import ArrayDataset, DataLoader
from tests.helpers import host


def _data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n)


def test_array_dataset_and_its_errors():
    x, y = _data(5)
    ds = ArrayDataset(x, y)
    assert len(ds) == 5 and ds[2][1] == y[2]
    xb, yb = ds[np.array([4, 1])]
    np.testing.assert_array_equal(xb, x[[4, 1]])
    np.testing.assert_array_equal(yb, y[[4, 1]])
    with pytest.raises(ValueError, match=r"\[5, 4\] rows"):
        ArrayDataset(x, y[:4])
    with pytest.raises(TypeError, match="at least one array"):
        ArrayDataset()


def test_loader_order_drop_last_and_epochs():
    x, y = _data(10)
    loader = DataLoader(ArrayDataset(x, y), batch_size=4, shuffle=True, seed=3, drop_last=True)
    assert len(loader) == 2
    first = [host_b[1].tolist() for host_b in loader]
    second = [b[1].tolist() for b in loader]
    assert [len(b) for b in first] == [4, 4] and first != second  # a new order each epoch
    loader.set_epoch(0)
    assert [b[1].tolist() for b in loader] == first  # epoch 0 again: the same order
    again = DataLoader(ArrayDataset(x, y), batch_size=4, shuffle=True, seed=3, drop_last=True, prefetch=0)
    assert [b[1].tolist() for b in again] == first  # the seed and the epoch decide, not the thread
    plain = DataLoader(ArrayDataset(x, y), batch_size=4)
    assert [len(b[0]) for b in plain] == [4, 4, 2] and np.array_equal(next(iter(plain))[0], x[:4])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"batch_size": 20, "drop_last": True}, ValueError, "no batches.*fewer than batch_size=20"),
        ({"prefetch": -1}, ValueError, "prefetch"),
        ({"transform": 3}, TypeError, "transform must be callable"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ],
)
def test_loader_argument_errors(kwargs, error, match):
    x, y = _data(10)
    with pytest.raises(error, match=match):
        DataLoader(ArrayDataset(x, y), **kwargs)
    with pytest.raises(TypeError, match="map-style dataset"):
        DataLoader([1, 2, 3.0] and 5)


class Samples:
    """A map-style dataset of single samples (no index arrays), with a fault to inject."""

    def __init__(self, n=12, bad=None, odd_shape=None):
        self.x, self.y = _data(n)
        self.bad, self.odd_shape = bad, odd_shape

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if not isinstance(i, int):
            raise TypeError("one sample at a time")
        if i == self.bad:
            raise KeyError(f"sample {i} is missing")
        if i == self.odd_shape:
            return self.x[i, :2], self.y[i]
        return self.x[i], self.y[i]


def test_per_sample_datasets_errors_reach_the_caller_and_nothing_hangs():
    ds = Samples()
    batches = list(DataLoader(ds, batch_size=5))
    np.testing.assert_array_equal(batches[0][0], ds.x[:5])
    with pytest.raises(KeyError, match="sample 7 is missing"):
        list(DataLoader(Samples(bad=7), batch_size=5))
    with pytest.raises(ValueError, match=r"dataset\[3\] part 0 has shape \(2,\)"):
        list(DataLoader(Samples(odd_shape=3), batch_size=5))

    def broken(x, y, rng):
        raise RuntimeError("the augmentation failed")

    before = threading.active_count()
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="the augmentation failed"):
        list(DataLoader(Samples(), batch_size=2, transform=broken))
    # a loop that stops early stops the loader's thread too
    for _ in DataLoader(Samples(), batch_size=2, prefetch=1):
        break
    time.sleep(0.3)
    assert threading.active_count() <= before and time.perf_counter() - start < 10


def test_transform_gets_a_generator_of_its_batch():
    x, y = _data(8)
    seen = []

    def jitter(xb, yb, rng):
        seen.append(rng.integers(1000))
        return xb + rng.normal(size=xb.shape).astype(xb.dtype), yb

    loader = DataLoader(ArrayDataset(x, y), batch_size=4, shuffle=True, seed=1, transform=jitter)
    a = [b[0] for b in loader]
    loader.set_epoch(0)
    b = [b[0] for b in loader]
    assert seen[:2] == seen[2:] and seen[0] != seen[1]
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(TypeError, match="must return a tuple of 2"):
        list(DataLoader(ArrayDataset(x, y), batch_size=4, transform=lambda xb, yb, rng: xb))


def _model(backend):
    return nu_xp.Sequential(
        nu_xp.Linear(3, 8, seed=0, backend=backend), nu_xp.Dropout(0.2, seed=1), nu_xp.Tanh(),
        nu_xp.Linear(8, 2, seed=2, backend=backend),
    )  # fmt: skip


def test_a_loader_trains_bit_identically_to_arrays(backend):
    x, y = _data(50)
    results = []
    for use_loader in (False, True):
        model = _model(backend)
        opt = nu_xp.optim.Adam(model.parameters(), lr=0.01)
        kwargs = {"epochs": 3, "progress": False, "metrics": ["accuracy"]}
        if use_loader:
            data = DataLoader(ArrayDataset(x, y), batch_size=8, shuffle=True, seed=4)
            val = DataLoader(ArrayDataset(x[:20], y[:20]), batch_size=6)
            history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, data, validation_data=val, **kwargs)
        else:
            history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, batch_size=8, shuffle=True, seed=4,
                                validation_data=(x[:20], y[:20]), **kwargs)  # fmt: skip
        results.append(([host(p.data) for p in model.parameters()], history))
    (w0, h0), (w1, h1) = results
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    assert h0["loss"] == h1["loss"] and h0["accuracy"] == h1["accuracy"]
    np.testing.assert_allclose(h0["val_loss"], h1["val_loss"], rtol=1e-5)  # one mean against batch means
    assert h0["val_accuracy"] == h1["val_accuracy"]


def test_evaluate_and_fit_take_any_iterable_of_batches(backend):
    x, y = _data(30)
    model = _model(backend)
    batches = [(x[i : i + 10], y[i : i + 10]) for i in range(0, 30, 10)]
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, batches, epochs=2, progress=False)
    assert len(history) == 2
    whole = nu_xp.evaluate(model, nu_xp.CrossEntropyLoss(), x, y, metrics=["accuracy"])
    streamed = nu_xp.evaluate(model, nu_xp.CrossEntropyLoss(), batches, metrics=["accuracy"])
    assert whole["accuracy"] == streamed["accuracy"]
    np.testing.assert_allclose(whole["loss"], streamed["loss"], rtol=1e-5)
    with pytest.raises(ValueError, match="a generator only once"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, (b for b in batches), epochs=2, progress=False)
    with pytest.raises(TypeError, match="do not pass y"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, DataLoader(ArrayDataset(x, y)), y, epochs=1)
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, batches, epochs=1, validation_split=0.2)
    with pytest.raises(TypeError, match=r"batch must be a pair \(x, y\)"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, [(x,)], epochs=1, progress=False)


def test_nll_loss_takes_1d_labels_and_fit_keeps_the_models_mode(backend):
    """PyTorch's MNIST example: LogSoftmax + NLLLoss with 1-D integer labels."""
    x, y = _data(40)
    model = nu_xp.Sequential(nu_xp.Linear(3, 4, seed=0, backend=backend), nu_xp.Dropout(0.5, seed=0),
                             nu_xp.Linear(4, 2, seed=1, backend=backend), nu_xp.LogSoftmax(dim=1))  # fmt: skip
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.01)
    model.eval()
    nu_xp.fit(model, nu_xp.NLLLoss(), opt, x, y, epochs=2, batch_size=8, progress=False)
    assert not model.training and not model[1].training  # left as found
    model.train()
    history = nu_xp.fit(model, nu_xp.NLLLoss(), opt, x, y, epochs=1, batch_size=8, progress=False)
    assert model.training and np.isfinite(history["loss"][-1])
    ce = nu_xp.evaluate(model, nu_xp.NLLLoss(), x, y)
    assert np.isfinite(ce["loss"]) and model.training


def test_a_memmap_larger_than_memory_trains_in_bounded_memory(tmp_path):
    """A 2 GB float32 file streams through a DataLoader; the process's peak memory stays near a few batches."""
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        pytest.skip("peak memory is measured on Linux (VmHWM) and macOS (ru_maxrss) only")
    script = textwrap.dedent(
        f"""
        import resource, numpy as np, nu_xp
        path = {str(tmp_path / "x.npy")!r}
        rows, width = 262_144, 2048  # 2 GiB of float32
        with open(path, "wb") as f:  # written through a file, not a mapping: nothing of it stays in this process
            header = {{"descr": "<f4", "fortran_order": False, "shape": (rows, width)}}
            np.lib.format.write_array_header_1_0(f, header)
            for start in range(0, rows, 4096):
                block = np.full((4096, width), 0.001 * (start % 7), dtype=np.float32)
                f.write(block.tobytes())
        x = np.load(path, mmap_mode="r")
        y = (np.arange(rows) % 10).astype(np.int64)
        loader = nu_xp.data.DataLoader(nu_xp.data.ArrayDataset(x, y), batch_size=2048, shuffle=True, seed=0)
        model = nu_xp.Sequential(nu_xp.Linear(width, 10, seed=0))
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), nu_xp.optim.SGD(model.parameters(), lr=0.01), loader,
                  epochs=1, progress=False)
        try:  # Linux: this process's own high-water mark (ru_maxrss keeps the forking parent's across exec)
            status = open("/proc/self/status").read().split("VmHWM:")[1]
            print(int(status.split()[0]) // 1024)  # MiB
        except OSError:  # macOS: ru_maxrss in bytes, of this process alone
            print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 2**20)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    peak = int(out.stdout.split()[-1])
    assert peak < 400, f"peak RSS {peak} MiB while streaming a 2048 MiB file (batches of 16 MiB)"
