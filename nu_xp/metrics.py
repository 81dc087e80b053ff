"""Metrics for ``fit``: streamed over minibatches, reduced on the device, read once per epoch.

Each metric keeps running sums as 0-d backend arrays (no host sync per batch)
and turns them into a float in ``result()``. By name:

============================  ==============================================================
``"accuracy"``                multi-class: mean(argmax(p) == label) (labels, or argmax of
                              one-hot targets); one output column: same as binary_accuracy
``"binary_accuracy"``         mean([p ≥ 0.5] == [t ≥ 0.5]) over all elements (p = probability)
``"mse"``                     mean((p - t)²)
``"mae"``                     mean(|p - t|)
``"r2"``                      1 - Σ(t - p)² / Σ(t - mean t)², per output, averaged (as sklearn)
============================  ==============================================================

A callable ``f(y_true, y_pred) -> float`` (e.g. from ``sklearn.metrics``) is
also accepted; it gets the epoch's host (numpy) arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .backends import ops_of, to_host

__all__ = ["METRICS", "Metric", "make_metric", "make_metrics"]


class Metric:
    """Streaming metric: ``reset()``, ``update(pred, target)`` per batch, ``result()`` per epoch."""

    name = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every batch."""
        self._sums: list[Any] = []
        self._count = 0

    def _add(self, *values: Any, count: int) -> None:
        self._sums = list(values) if not self._sums else [a + b for a, b in zip(self._sums, values)]
        self._count += count

    def update(self, pred: Any, target: Any) -> None:
        """Add one batch."""
        raise NotImplementedError

    def result(self) -> float:
        """The metric over every batch since ``reset()``."""
        raise NotImplementedError

    def state(self) -> Any:
        """What this process has seen, as host values (its running sums and count), for [`merge`][]."""
        return [np.asarray(to_host(s), dtype=np.float64) for s in self._sums], self._count

    def merge(self, states: list[Any]) -> None:
        """Become the metric over the batches of every ``state()`` in ``states`` (one per process)."""
        seen = [sums for sums, _ in states if sums]
        self._sums = [sum(parts) for parts in zip(*seen)] if seen else []
        self._count = sum(count for _, count in states)


class BinaryAccuracy(Metric):
    """Fraction of elements where ``[p ≥ 0.5] == [t ≥ 0.5]``."""

    name = "binary_accuracy"

    def update(self, pred: Any, target: Any) -> None:
        xp = ops_of(pred).xp
        hit = (pred >= 0.5) == (target >= 0.5)
        self._add(xp.sum(xp.astype(hit, xp.int32)), count=int(np.prod(pred.shape)))  # int32: every backend has it

    def result(self) -> float:
        return float(self._sums[0]) / max(self._count, 1) if self._sums else float("nan")


class Accuracy(BinaryAccuracy):
    """Fraction of samples (or positions, for ``(N, C, d1, …)``) whose arg-max class equals the label.

    One output column: the same as binary_accuracy. With a binary loss
    (independent sigmoid outputs, multilabel), ``fit`` uses binary accuracy
    under this name, as Keras does.
    """

    name = "accuracy"

    def update(self, pred: Any, target: Any) -> None:
        if pred.ndim == 1 or pred.shape[1] == 1:
            super().update(pred, target if target.ndim == pred.ndim else target[:, None])
            return
        xp = ops_of(pred).xp
        guess = xp.argmax(pred, axis=1)  # (N,) or, for (N, C, d1, …) logits, one class per position (N, d1, …)
        labels = target if target.ndim == guess.ndim else xp.argmax(target, axis=1)
        if tuple(labels.shape) != tuple(guess.shape):
            raise ValueError(
                f"accuracy: predictions of shape {tuple(pred.shape)} (classes on axis 1) need labels of shape "
                f"{tuple(guess.shape)} or one-hot targets of the predictions' shape; got {tuple(target.shape)}"
            )
        hit = guess == xp.astype(labels, guess.dtype)
        self._add(xp.sum(xp.astype(hit, xp.int32)), count=int(np.prod(guess.shape)))


class MeanSquaredError(Metric):
    """mean((p - t)²) over all elements."""

    name = "mse"

    def _err(self, xp: Any, diff: Any) -> Any:
        return diff * diff

    def update(self, pred: Any, target: Any) -> None:
        xp = ops_of(pred).xp
        diff = xp.astype(pred, xp.float64) - xp.astype(target, xp.float64)
        self._add(xp.sum(self._err(xp, diff)), count=int(np.prod(pred.shape)))

    def result(self) -> float:
        return float(self._sums[0]) / max(self._count, 1) if self._sums else float("nan")


class MeanAbsoluteError(MeanSquaredError):
    """mean(|p - t|) over all elements."""

    name = "mae"

    def _err(self, xp: Any, diff: Any) -> Any:
        return xp.abs(diff)


class R2Score(Metric):
    """Coefficient of determination per output column, averaged (sklearn's ``r2_score``)."""

    name = "r2"

    def update(self, pred: Any, target: Any) -> None:
        xp = ops_of(pred).xp
        p = xp.astype(pred, xp.float64)
        t = xp.astype(target, xp.float64)
        if p.ndim == 1:
            p, t = p[:, None], t[:, None]
        self._add(xp.sum((t - p) ** 2, axis=0), xp.sum(t, axis=0), xp.sum(t * t, axis=0), count=p.shape[0])

    def result(self) -> float:
        if not self._sums:
            return float("nan")
        ss_res, s1, s2 = (to_host(s) for s in self._sums)
        n = self._count
        ss_tot = s2 - s1 * s1 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
        return float(np.mean(r2))


class FunctionMetric(Metric):
    """Wraps ``f(y_true, y_pred) -> float``; collects the epoch's arrays on the host.

    Parameters
    ----------
    fn : callable
        ``fn(y_true, y_pred) -> float`` on host arrays, evaluated on the whole epoch's data.
    """

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], float]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)
        super().__init__()

    def update(self, pred: Any, target: Any) -> None:
        self._sums.append((to_host(target), to_host(pred)))

    def state(self) -> Any:
        return self._sums

    def merge(self, states: list[Any]) -> None:
        self._sums = [pair for pairs in states for pair in pairs]

    def result(self) -> float:
        if not self._sums:
            return float("nan")
        y_true = np.concatenate([t for t, _ in self._sums])
        y_pred = np.concatenate([p for _, p in self._sums])
        return float(self.fn(y_true, y_pred))


METRICS: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "r2": R2Score,
}


def make_metrics(specs: Any, *, binary: bool = False) -> list[Metric]:
    """Fresh metrics from ``fit``'s ``metrics=``: a name, a callable, a Metric, a sequence of those, or None.

    Names are made unique (a second ``<lambda>`` becomes ``<lambda>_1``), so
    no metric hides another in the History. With ``binary`` (the loss is
    ``BCELoss``/``BCEWithLogitsLoss``: one independent probability per
    output), ``"accuracy"`` is binary accuracy, as Keras does.
    """
    if specs is None:
        return []
    if isinstance(specs, (str, Metric)) or callable(specs):
        specs = [specs]
    try:
        items = list(specs)
    except TypeError:
        raise TypeError(f"metrics must be a name, a callable or a list of them, got {specs!r}") from None
    made: list[Metric] = []
    names: set[str] = set()
    for spec in items:
        metric = make_metric(spec)
        if binary and type(metric) is Accuracy:
            metric = BinaryAccuracy()
            metric.name = "accuracy" if str(spec).lower() == "accuracy" else "acc"
        base, k = metric.name, 0
        while metric.name in names:
            k += 1
            metric.name = f"{base}_{k}"
        names.add(metric.name)
        made.append(metric)
    return made


def make_metric(spec: str | Callable | Metric) -> Metric:
    """A fresh [`Metric`][] from a name in `METRICS`, a callable or a Metric."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        try:
            return METRICS[spec.lower()]()
        except KeyError:
            raise ValueError(
                f"unknown metric {spec!r}; choose from {sorted(set(METRICS))} or pass a callable"
            ) from None
    if callable(spec):
        return FunctionMetric(spec)
    raise TypeError(f"metrics entries must be names or callables, got {spec!r}")
