"""``fit(threads=...)``: the BLAS thread count while training, fixed or chosen from the work, then restored."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import nu_xp
from nu_xp.training import threads as policy


def _blas_threads() -> int:
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


class ThreadProbe(nu_xp.Layer):
    """Records the BLAS thread count at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def forward(self, x: Any) -> Any:
        self.seen.append(_blas_threads())
        return x

    def backward(self, grad: Any) -> Any:
        return grad


def _fit(threads: Any, steps: int = 12) -> ThreadProbe:
    probe = ThreadProbe()
    model = nu_xp.Sequential(nu_xp.Linear(4, 8, seed=0), probe, nu_xp.ReLU(), nu_xp.Linear(8, 1, seed=1))
    x = np.random.default_rng(0).normal(size=(4 * steps, 4)).astype(np.float32)
    nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters(), lr=0.01), x, x[:, :1], epochs=1,
              batch_size=4, progress=False, threads=threads)  # fmt: skip
    return probe


def test_a_fixed_count_holds_during_fit_and_is_restored():
    with threadpool_limits(limits=2, user_api="blas"):
        probe = _fit(1)
        assert set(probe.seen) == {1}
        assert _blas_threads() == 2


def test_none_leaves_the_libraries_alone():
    with threadpool_limits(limits=2, user_api="blas"):
        assert set(_fit(None).seen) == {2}


@pytest.mark.parametrize(("width", "expected"), [(8, 1), (200_000, 2)])
def test_auto_decides_from_the_work_never_the_clock(width, expected):
    """``"auto"``: one thread for small products (batch × parameters below AUTO_LIMIT), the libraries' count else."""
    probe = ThreadProbe()
    model = nu_xp.Sequential(nu_xp.Linear(4, width, seed=0), probe, nu_xp.ReLU(), nu_xp.Linear(width, 1, seed=1))
    assert (model.num_parameters() * 4 < policy.AUTO_LIMIT) == (expected == 1)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    with threadpool_limits(limits=2, user_api="blas"):
        nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters(), lr=0.01), x, x[:, :1], epochs=1,
                  batch_size=4, progress=False)  # fmt: skip
        assert _blas_threads() == 2  # restored
    assert set(probe.seen) == {expected}


def test_seeded_runs_with_auto_threads_are_bit_identical():
    weights = []
    for _ in range(2):
        model = nu_xp.Sequential(nu_xp.Linear(4, 32, seed=0), nu_xp.Tanh(), nu_xp.Linear(32, 1, seed=1))
        x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
        nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.Adam(model.parameters(), lr=0.01), x, x[:, :1], epochs=3,
                  batch_size=8, seed=0, progress=False)  # fmt: skip
        weights.append([nu_xp.to_host(p.data) for p in model.parameters()])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("width", [8, 256], ids=["one-thread", "library-threads"])
def test_seeded_runs_are_bit_identical_beside_a_busy_process(width):
    """Two seeded fits, while another process keeps every core busy with matrix products, end on the same bits
    (the thread count follows from the work, so the load cannot change the summation order)."""
    import subprocess
    import sys

    busy = (
        "import numpy as np\na = np.ones((400, 400))\nprint('busy', flush=True)\nwhile True:\n    a = (a @ a) * 1e-3\n"
    )
    hog = subprocess.Popen([sys.executable, "-c", busy], stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout is not None and hog.stdout.readline().strip() == "busy"  # it computes from now on
        weights = []
        for _ in range(2):
            model = nu_xp.Sequential(nu_xp.Linear(256, width, seed=0), nu_xp.Tanh(), nu_xp.Linear(width, 1, seed=1))
            x = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
            nu_xp.fit(model, nu_xp.MSELoss(), nu_xp.optim.Adam(model.parameters(), lr=0.01), x, x[:, :1],
                      epochs=4, batch_size=64, seed=0, progress=False)  # fmt: skip
            weights.append([nu_xp.to_host(p.data) for p in model.parameters()])
        assert hog.poll() is None, "the busy process ended early: the test measured nothing"
    finally:
        hog.kill()
        hog.wait()
    assert (model.num_parameters() * 64 >= policy.AUTO_LIMIT) == (width == 256)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_set_num_threads_for_hand_written_loops():
    torch = pytest.importorskip("torch")
    before_torch = torch.get_num_threads()
    with threadpool_limits(limits=2, user_api="blas"):
        try:
            nu_xp.set_num_threads(np.int64(1))
            assert nu_xp.get_num_threads() == 1 and _blas_threads() == 1 and torch.get_num_threads() == 1
            assert set(_fit("auto").seen) == {1}  # fit keeps the count the user set
            assert _blas_threads() == 1
            nu_xp.set_num_threads(2)
            assert nu_xp.get_num_threads() == 2
        finally:
            policy._PROCESS_LIMIT.pop().restore_original_limits()
            torch.set_num_threads(before_torch)
    with pytest.raises(TypeError, match="set_num_threads takes a positive int"):
        nu_xp.set_num_threads("auto")


def test_auto_on_one_thread_changes_nothing():
    with threadpool_limits(limits=1, user_api="blas"):
        assert set(_fit("auto").seen) == {1}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-2, ValueError),
        ("many", TypeError),
        (True, TypeError),
        (2.0, TypeError),
        (2**32 + 1, ValueError),
    ],
)
def test_bad_threads(value, error):
    with pytest.raises(error, match="threads must be"):
        _fit(value)


def test_numpy_integers_are_thread_counts():
    assert set(_fit(np.int64(1)).seen) == {1}
