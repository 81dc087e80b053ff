"""What an epoch of ``fit`` (and ``evaluate``) iterates: the data, checked once, on the model's backend, in batches.

Two sources, one interface (``epoch(e)`` gives epoch ``e``'s ``(x_b, y_b)``):

* [`ArrayBatches`][]: arrays given to ``fit(x, y)``, checked and moved once
  ([`prepare_data`][]), cut into minibatches of epoch ``e``'s order
  ([`EpochOrder`][nu_xp.data.order.EpochOrder]: from the seed and ``e`` only);
* [`LoaderBatches`][]: a ``DataLoader`` (each batch checked and moved on its
  background thread by [`batch_placer`][]) or any iterable of ``(x, y)``
  batches (placed in the caller's thread).

The rules, the same for both: real numbers only, NaN and Inf refused
(``check_inputs=False`` skips that), floats cast to the model's dtype,
integer class labels kept integer for the losses that take them
(``Loss.takes_labels``: ``CrossEntropyLoss``, ``NLLLoss``) and a 1-D target
made one column for the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..backends import asarray, dtype_kind, ops_of
from ..data import DataLoader, EpochOrder
from ..layers import Layer
from ..losses import Loss

__all__ = [
    "ArrayBatches",
    "LoaderBatches",
    "batch_placer",
    "batches_of",
    "is_batch_source",
    "minibatches",
    "prepare_data",
    "to_model",
]


def to_model(x: Any, model: Layer, name: str, *, labels: bool = False, check_finite: bool = True) -> Any:
    """Move data onto the model's backend; floats (and, unless labels, ints) take the model dtype.

    Anything but real numbers (booleans, complex numbers, dates, strings,
    objects) is a ``TypeError``; NaN or Inf a ``ValueError`` unless
    ``check_finite`` is off (checked on the host when the data is there,
    before it moves: no device synchronisation).
    """
    dtypes = getattr(x, "dtypes", None)  # a pandas DataFrame: name the columns that are not numbers
    if dtypes is not None and hasattr(x, "columns") and hasattr(dtypes, "items"):
        bad = {str(col): str(dt) for col, dt in dtypes.items() if getattr(dt, "kind", "O") not in "fiub"}
        if bad:
            raise TypeError(
                f"{name}: columns {list(bad)} do not hold numbers (dtypes {list(bad.values())}); "
                "encode or drop them first (e.g. pandas.get_dummies or .astype(float))"
            )
    checked = False
    if not hasattr(x, "shape") or isinstance(x, np.ndarray):
        host = np.asarray(x)
        if host.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {host.dtype} (convert it first)")
        if check_finite and host.dtype.kind == "f" and not np.all(np.isfinite(host)):
            raise ValueError(f"{name} holds NaN or Inf values; clean the data (or pass check_inputs=False to fit)")
        checked = True
    be = model.backend
    arr = asarray(x, like=be)
    kind = dtype_kind(be.xp, arr.dtype)
    if kind not in ("f", "i"):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype} (convert it first)")
    if check_finite and not checked and kind == "f" and not be.ops.all(be.xp.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or Inf values; clean the data (or pass check_inputs=False to fit)")
    if labels and kind == "i":
        return arr
    return be.ops.astype(arr, be.dtype) if arr.dtype != be.dtype else arr


def _targets_shape(model: Layer, loss: Loss, ys: Any, what: str) -> Any:
    """The target's shape rule: 1-D labels stay for losses that take labels (if integer), else one column."""
    labels = loss.takes_labels
    if labels and ys.ndim == 1 and dtype_kind(model.backend.xp, ys.dtype) != "i":
        raise TypeError(
            f"{type(loss).__name__} needs integer class labels for a 1-D {what} y, got floats of shape "
            f"{tuple(ys.shape)}; cast them (y.astype(int))"
            + (" or pass one-hot targets of shape (N, C)" if type(loss).__name__ == "CrossEntropyLoss" else "")
        )
    if ys.ndim == 1 and not labels:
        return model.backend.xp.reshape(ys, (-1, 1))  # a 1-D target for a one-output model
    return ys


def prepare_data(
    model: Layer, loss: Loss, x: Any, y: Any, what: str = "training", *, check_finite: bool = True
) -> tuple[Any, Any]:
    """``(x, y)`` on the model's backend and dtype, checked once for the whole of ``fit``.

    Integer labels stay integers for the losses that take them; a 1-D ``y``
    for any other loss becomes one column ``(N, 1)``. Empty data, mismatched
    sample counts, non-real values and (with ``check_finite``) NaN or Inf raise.
    """
    for name, value in (("x", x), ("y", y)):
        if value is None:
            raise TypeError(f"{what} {name} is None; fit and evaluate need both inputs x and targets y")
    xs = to_model(x, model, f"{what} x", labels=model.input_is_indices(), check_finite=check_finite)
    ys = to_model(y, model, f"{what} y", labels=loss.takes_labels, check_finite=check_finite)
    if xs.ndim == 0 or ys.ndim == 0:
        raise ValueError(f"{what} x and y need a sample axis, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}")
    if xs.shape[0] != ys.shape[0]:
        raise ValueError(f"{what} x has {xs.shape[0]} samples but y has {ys.shape[0]}")
    if xs.shape[0] == 0:
        raise ValueError(f"{what} data is empty (x has shape {tuple(xs.shape)}); pass at least one sample")
    return xs, _targets_shape(model, loss, ys, what)


def batch_placer(model: Layer, loss: Loss, what: str, *, check_finite: bool) -> Callable[[Any], tuple[Any, Any]]:
    """``place(batch) -> (x_b, y_b)``: one batch through the rules of [`prepare_data`][] (a loader's thread runs it)."""

    def place(batch: Any) -> tuple[Any, Any]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(
                f"a {what} batch must be a pair (x, y), got {type(batch).__name__}"
                + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                + "; a dataset's samples are (x, y) tuples"
            )
        return prepare_data(model, loss, batch[0], batch[1], what, check_finite=check_finite)

    return place


def minibatches(xs: Any, ys: Any, batch_size: int, *, shuffle: bool, order: Any, epoch: int = 0) -> Iterator[Any]:
    """``(x_b, y_b)`` over one epoch: epoch ``epoch``'s permutation from ``order`` (an
    [`EpochOrder`][nu_xp.data.order.EpochOrder], a seed, or a numpy generator) when ``shuffle``, else in order."""
    n = xs.shape[0]
    if shuffle and n > 1:
        order = order if isinstance(order, EpochOrder) else EpochOrder(order)
        ops = ops_of(xs)
        index = ops.asarray(order.permutation(n, epoch), device=ops.device_of(xs))
        xs, ys = ops.xp.take(xs, index, axis=0), ops.xp.take(ys, index, axis=0)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield xs[start:stop, ...], ys[start:stop, ...]


class ArrayBatches:
    """Minibatches of arrays prepared once (on the model's backend): epoch ``e`` in ``e``'s order.

    Parameters
    ----------
    xs, ys : arrays
        The data, already through [`prepare_data`][].
    batch_size : int or None
        None: one batch of everything.
    shuffle : bool
        A new order every epoch.
    order : EpochOrder
        Where the orders come from.
    """

    def __init__(self, xs: Any, ys: Any, batch_size: int | None, shuffle: bool, order: EpochOrder) -> None:
        self.xs, self.ys, self.shuffle, self.order = xs, ys, shuffle, order
        n = xs.shape[0]
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        self.steps: int | None = -(-n // self.batch_size)  #: batches per epoch

    def epoch(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        """Epoch ``epoch``'s minibatches."""
        return minibatches(self.xs, self.ys, self.batch_size, shuffle=self.shuffle, order=self.order, epoch=epoch)


class LoaderBatches:
    """Batches of a ``DataLoader`` (placed on its background thread) or of any iterable of ``(x, y)`` pairs.

    Parameters
    ----------
    source : DataLoader or iterable
        Where the batches come from (an iterable is iterated once per epoch: a list, not a generator,
        for more than one epoch).
    place : callable
        ``place(batch) -> (x_b, y_b)`` on the model's backend ([`batch_placer`][]).
    """

    def __init__(self, source: Any, place: Callable[[Any], tuple[Any, Any]]) -> None:
        self.source, self.place = source, place
        self.steps: int | None = len(source) if hasattr(source, "__len__") else None

    def epoch(self, epoch: int) -> Iterator[tuple[Any, Any]]:
        """Epoch ``epoch``'s batches (a ``DataLoader``'s order for ``epoch``), placed."""
        if isinstance(self.source, DataLoader):
            self.source.set_epoch(epoch + 1)  # a later plain iteration goes on from here
            yield from self.source.batches(epoch, self.place)
            return
        seen = False
        for batch in self.source:
            seen = True
            yield self.place(batch)
        if not seen:
            raise ValueError(
                f"the batches of epoch {epoch} were empty: an iterable of (x, y) batches is iterated once per "
                "epoch (a generator only once); pass a DataLoader or a list of batches"
            )


def is_batch_source(x: Any, y: Any) -> bool:
    """True when ``x`` is a ``DataLoader``, or an iterable of batches given without ``y``."""
    if isinstance(x, DataLoader):
        return True
    return y is None and x is not None and not hasattr(x, "shape") and isinstance(x, Iterable)


def batches_of(
    model: Layer, loss: Loss, x: Any, y: Any, what: str, *, batch_size: int | None, shuffle: bool, order: EpochOrder,
    check_finite: bool,
) -> ArrayBatches | LoaderBatches:  # fmt: skip
    """The batches of ``fit``'s (or ``evaluate``'s) data: a loader's or an iterable's, or minibatches of arrays."""
    if is_batch_source(x, y):
        if y is not None:
            raise TypeError(f"{what} data is a DataLoader: it gives the targets itself; do not pass y")
        return LoaderBatches(x, batch_placer(model, loss, what, check_finite=check_finite))
    xs, ys = prepare_data(model, loss, x, y, what, check_finite=check_finite)
    return ArrayBatches(xs, ys, batch_size, shuffle, order)
