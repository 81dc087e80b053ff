"""``DataLoader``: batches of a dataset, in a seeded order, read (and moved) on a background thread.

For epoch ``e`` the loader draws the order of the samples
([`EpochOrder`][nu_xp.data.order.EpochOrder]: from ``seed`` and ``e`` only),
cuts it into batches of ``batch_size`` (the last one smaller, or dropped with
``drop_last``), reads each batch ([`BatchReader`][nu_xp.data.dataset.BatchReader]),
applies ``transform`` and, inside ``fit``, checks it and moves it to the
model's backend and device. ``prefetch`` batches are prepared ahead on a
background thread while the current one trains (reading a file, augmenting,
the host-to-device copy: numpy and the array libraries release the GIL for
those). An error in the dataset or the transform is raised in the caller,
with its own traceback; the thread never outlives the iteration (a ``break``
or an error in training stops it), and a thread that ended without a word
is reported, never waited for.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..validation import check_positive_int
from .dataset import BatchReader
from .order import EpochOrder

__all__ = ["DataLoader"]

_POLL = 0.1  # seconds between two looks at the other side (a stop request, a thread that ended)


class DataLoader:
    """Batches of a map-style dataset (PyTorch's ``DataLoader``), shuffled from a seed, prefetched.

    Iterating gives the next epoch's batches as tuples of host arrays
    (``for x, y in loader``); ``fit(model, loss, optimizer, loader, epochs=...)``
    and ``evaluate`` take a loader in place of ``x, y`` and get its batches
    checked and moved to the model's backend and device on the loader's thread.
    With the same ``batch_size``, ``shuffle`` and ``seed``, a loader over
    arrays in memory trains bit-identically to ``fit(x, y, ...)``.

    Parameters
    ----------
    dataset : map-style dataset
        ``__len__`` and ``__getitem__`` (an [`ArrayDataset`][nu_xp.data.dataset.ArrayDataset], or your own;
        ``__getitem__`` may take an index array and return the whole batch).
    batch_size : int, default 1
        Samples per batch.
    shuffle : bool, default False
        A new order each epoch (else the dataset's order).
    seed : int or None
        The orders (and ``transform``'s generators) come from ``seed`` and the epoch only, so a run
        resumed at epoch ``e`` sees what it would have seen; None: a seed drawn now from nu_xp's global
        generator (``nu_xp.manual_seed``).
    drop_last : bool, default False
        Drop the last batch when it is smaller than ``batch_size``.
    transform : callable, optional
        ``transform(*batch, rng) -> batch``, on the host before anything moves (augmentation): ``batch``
        is the tuple of arrays (``x, y``), ``rng`` a numpy Generator of this batch (seeded from ``seed``,
        the epoch and the batch's position).
    prefetch : int, default 2
        Batches prepared ahead on a background thread (0: in the caller's thread, one at a time).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> loader = nu_xp.data.DataLoader(nu_xp.data.ArrayDataset(np.arange(10.0), np.arange(10)), batch_size=4)
    >>> [x.tolist() for x, y in loader]
    [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        *,
        seed: Any = None,
        drop_last: bool = False,
        transform: Callable[..., Any] | None = None,
        prefetch: int = 2,
    ) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"DataLoader takes a map-style dataset (__len__ and __getitem__), got {type(dataset).__name__}; "
                "for arrays use nu_xp.data.ArrayDataset(x, y)"
            )
        self.dataset = dataset
        self.batch_size = check_positive_int("batch_size", batch_size)
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"DataLoader {name} must be True or False, got {flag!r}")
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader transform must be callable (transform(*batch, rng)), got {transform!r}")
        self.transform = transform
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"DataLoader prefetch must be a non-negative integer, got {prefetch!r}")
        self.prefetch = int(prefetch)
        self.order = EpochOrder(seed)
        self.reader = BatchReader(dataset)
        self.epoch = 0  #: the epoch the next iteration gives
        if len(self) == 0:
            n = len(dataset)
            raise ValueError(
                f"DataLoader has no batches: the dataset holds {n} samples"
                + (f", fewer than batch_size={self.batch_size} with drop_last=True" if n else "")
                + "; give more samples"
                + (", a smaller batch_size or drop_last=False" if n else "")
            )

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration give epoch ``epoch``'s order (``fit`` does, so a resumed run lines up)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def indices(self, epoch: int) -> list[np.ndarray]:
        """The index array of every batch of epoch ``epoch``."""
        n = len(self.dataset)
        order = self.order.permutation(n, epoch) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        return [order[start : min(start + self.batch_size, stop)] for start in range(0, stop, self.batch_size)]

    def batches(self, epoch: int, place: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None) -> Iterator[Any]:
        """Epoch ``epoch``'s batches, each ``place``d (checked and moved, as ``fit`` asks) on the loader's thread."""

        def make(position: int, indices: np.ndarray) -> tuple[Any, ...]:
            batch = self.reader(indices)
            if self.transform is not None:
                rng = self.order.generator_for(epoch, position)
                out = self.transform(*batch, rng)
                if not isinstance(out, tuple) or len(out) != len(batch):
                    raise TypeError(
                        f"DataLoader transform must return a tuple of {len(batch)} arrays (as many as it took), "
                        f"got {type(out).__name__}"
                    )
                batch = out
            return place(batch) if place is not None else batch

        work = list(enumerate(self.indices(epoch)))
        if self.prefetch == 0:
            return (make(position, indices) for position, indices in work)
        return _prefetched(work, make, self.prefetch)

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, prefetch={self.prefetch})"
        )


def _prefetched(work: list[tuple[int, np.ndarray]], make: Callable[..., Any], depth: int) -> Iterator[Any]:
    """``make(*item)`` for every item, made up to ``depth`` ahead on a background thread, in order."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(message, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in work:
                if stop.is_set() or not offer(("batch", make(*item))):
                    return
            offer(("end", None))
        except BaseException as exc:  # the caller re-raises it: a dataset's error is the caller's error
            offer(("error", exc))

    thread = threading.Thread(target=produce, name="nu_xp DataLoader", daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = ready.get(timeout=_POLL)
            except queue.Empty:
                if not thread.is_alive() and ready.empty():
                    raise RuntimeError("the DataLoader's thread ended without a batch or an error") from None
                continue
            if kind == "batch":
                yield value
            elif kind == "end":
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join(timeout=10 * _POLL)
