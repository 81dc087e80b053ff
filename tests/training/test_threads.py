"""``fit(threads=...)``: the BLAS thread count while training, fixed or chosen from timed steps, then restored."""

from __future__ import annotations

import itertools
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


def _fake_clock(monkeypatch: pytest.MonkeyPatch, default_step: float, one_thread_step: float) -> None:
    """perf_counter as seen by the chooser: each step lasts what its thread count is told to cost."""
    now = itertools.count()
    state = {"t": 0.0}

    def perf_counter() -> float:
        tick = next(now)
        if tick % 2:  # the end of a step: advance by that step's cost
            state["t"] += one_thread_step if _blas_threads() == 1 else default_step
        return state["t"]

    monkeypatch.setattr(policy, "clock", perf_counter)


@pytest.mark.parametrize(("default_step", "one_step", "expected"), [(2.0, 1.0, 1), (1.0, 0.95, 2), (1.0, 2.0, 2)])
def test_auto_keeps_the_faster_count(monkeypatch, default_step, one_step, expected):
    """One warm-up step and TRIAL steps at the default count, TRIAL at one thread; one thread stays only when
    at least 10 % faster. Times come from a fake clock: the rule is tested, not this machine."""
    _fake_clock(monkeypatch, default_step, one_step)
    with threadpool_limits(limits=2, user_api="blas"):
        seen = _fit("auto").seen
        assert _blas_threads() == 2  # restored
    trial = policy.TRIAL
    assert seen[: trial + 1] == [2] * (trial + 1)
    assert seen[trial + 1 : 2 * trial + 1] == [1] * trial
    assert set(seen[2 * trial + 1 :]) == {expected}


def test_auto_on_one_thread_changes_nothing():
    with threadpool_limits(limits=1, user_api="blas"):
        assert set(_fit("auto").seen) == {1}


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-2, ValueError), ("many", TypeError), (True, TypeError)]
)
def test_bad_threads(value, error):
    with pytest.raises(error, match="threads must be 'auto', None or a positive int"):
        _fit(value)
