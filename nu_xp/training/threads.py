"""How many BLAS threads training uses: measured on the first steps, or set by the user.

OpenBLAS (and MKL, and OpenMP) start one thread per core and spin while they
wait for work. On small matrix products a second thread buys little even on
a quiet machine, and when another process holds a core the spinning threads
wait for each other: a digits CNN that trains in 0.9 s took 3.2 s with one
busy process beside it at the default two threads, and 1.0 s at one thread
(``benchmarks/RESULTS.md``).

``fit(..., threads="auto")`` (the default) therefore times the steps: after
one warm-up step, ``TRIAL`` steps at the library's thread count, then
``TRIAL`` steps at one thread, and it keeps one thread when those ran at
least 10 % faster (the median step), else the default. The steps are real
training steps: nothing is wasted, and the thread count never changes
results beyond the reduction order of a product. ``threads=n`` fixes ``n``
threads for the whole ``fit``; ``threads=None`` leaves the libraries alone.
Everything is restored when ``fit`` returns. The choice is made on the CPU
only (a GPU step's time is not the host's threads'), with
``threadpoolctl``, which finds the BLAS and OpenMP libraries loaded in the
process (numpy's OpenBLAS, PyTorch's OpenMP…).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ..layers import Layer
from ..losses import Loss
from .hooks import StepHooks, WrappingHooks

__all__ = ["TRIAL", "AutoThreads", "ThreadPolicy", "check_threads"]

#: steps timed at each thread count by ``threads="auto"``
TRIAL = 3
#: one thread is kept when its median step is below this share of the default's
FASTER = 0.9
#: the clock the steps are timed with
clock = time.perf_counter


def check_threads(value: Any) -> Any:
    """``"auto"``, ``None`` or a positive int; ``ValueError``/``TypeError`` naming ``threads`` otherwise."""
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"threads must be 'auto', None or a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"threads must be 'auto', None or a positive int, got {value!r}")
    return value


def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


class ThreadPolicy:
    """The thread count of one ``fit``: applied by ``start``, wrapped around the step hooks, undone by ``restore``.

    Parameters
    ----------
    setting : "auto", int or None
        What ``fit(threads=...)`` asked for.
    on_host : bool
        Whether the model computes on the CPU (otherwise nothing is changed).
    """

    def __init__(self, setting: Any, on_host: bool) -> None:
        self.setting = check_threads(setting)
        self.active = on_host and self.setting is not None
        self.controller = _controller() if self.active else None
        self.limit: Any = None
        self.chooser: AutoThreads | None = None

    @property
    def default_threads(self) -> int:
        infos = self.controller.info() if self.controller is not None else []
        return max((int(i.get("num_threads", 1)) for i in infos), default=1)

    def wrap(self, hooks: StepHooks) -> StepHooks:
        """Fix the thread count now (an int), or return hooks that choose it (``"auto"``)."""
        if not self.active:
            return hooks
        if self.setting == "auto":
            if self.default_threads < 2:
                return hooks  # one thread already: nothing to choose
            self.chooser = AutoThreads(hooks, self)
            return self.chooser
        self.set(int(self.setting))
        return hooks

    def set(self, threads: int | None) -> None:
        """``threads`` for every BLAS/OpenMP library from now on (None: their own count again)."""
        if self.limit is not None:
            self.limit.restore_original_limits()
            self.limit = None
        if threads is not None and self.controller is not None:
            self.limit = self.controller.limit(limits=threads)

    def restore(self) -> None:
        """The libraries' thread counts as they were before ``fit``."""
        self.set(None)


class AutoThreads(WrappingHooks):
    """Step hooks that time the first steps at the default thread count and at one thread, then keep the faster.

    Parameters
    ----------
    inner : StepHooks
        The hooks the loop would use otherwise.
    policy : ThreadPolicy
        Applies the choice (and undoes it after ``fit``).
    """

    def __init__(self, inner: StepHooks, policy: ThreadPolicy) -> None:
        super().__init__(inner)
        self.policy = policy
        self.steps = 0
        self.times: dict[int | None, list[float]] = {None: [], 1: []}
        self.chosen: int | str | None = "undecided"

    def forward_backward(self, model: Layer, loss: Loss, xs: Any, ys: Any) -> tuple[Any, Any]:
        if self.chosen != "undecided":
            return super().forward_backward(model, loss, xs, ys)
        trial = None if self.steps <= TRIAL else 1  # step 0 warms up, 1..TRIAL default, then one thread
        if self.steps == TRIAL + 1:
            self.policy.set(1)
        start = clock()
        out = super().forward_backward(model, loss, xs, ys)
        elapsed = clock() - start
        if self.steps > 0:  # the first step warms caches and allocators up: not timed
            self.times[trial].append(elapsed)
        self.steps += 1
        if len(self.times[1]) == TRIAL:
            one, default = statistics.median(self.times[1]), statistics.median(self.times[None])
            self.chosen = 1 if one < FASTER * default else None
            if self.chosen is None:
                self.policy.set(None)
        return out
