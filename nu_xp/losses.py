"""Losses: ``value = loss.forward(pred, target)`` (a 0-d array), ``grad = loss.backward()``.

Every loss is the mean over all elements (``CrossEntropyLoss``: over the N
samples), with the same value as the PyTorch function of the same name and
``reduction="mean"``. ``backward`` returns ``dL/dpred`` of the shape of
``pred``; passing ``grad`` (the gradient of something downstream w.r.t. the
loss value) scales it. All four are stable for |x| up to 1e4 in float32: no
overflow or divide warnings, finite values and gradients.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from .backend import _backend_name_of, _same_device, describe, dtype_kind, dtype_name, namespace_of
from .layers import Layer, register_layer, stable_sigmoid

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "Loss", "MSELoss"]


def _scalar(xp: Any, value: Any) -> Any:
    """The loss value as a 0-d array (numpy turns 0-d results into numpy scalars)."""
    return xp.asarray(value)


class Loss(Layer):
    """Base class: ``__call__(pred, target)`` is ``forward(pred, target)``."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def __call__(self, pred: Any, target: Any) -> Any:  # type: ignore[override]
        return self.forward(pred, target)

    def forward(self, pred: Any, target: Any) -> Any:  # type: ignore[override]
        """The loss value for ``pred`` against ``target`` (a 0-d array)."""
        raise NotImplementedError

    def backward(self, grad: Any = None) -> Any:
        """``dL/dpred`` for the last ``forward`` (times ``grad`` when given)."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        dpred = self._grad()
        return dpred if grad is None else dpred * grad

    def _grad(self) -> Any:
        raise NotImplementedError

    def _check_same_place(self, pred: Any, target: Any) -> None:
        """Raise ``TypeError`` unless ``target`` is an array on pred's backend and device."""
        if _backend_name_of(target) is None:
            raise TypeError(
                f"{type(self).__name__}: target must be an array, got {type(target).__name__}; "
                "convert it with nu_xp.asarray(target, like=pred)"
            )
        if _backend_name_of(target) != _backend_name_of(pred) or not _same_device(
            array_api_compat.device(target), array_api_compat.device(pred)
        ):
            raise TypeError(
                f"{type(self).__name__}: target is {describe(target)} but pred is {describe(pred)}; "
                "use nu_xp.asarray(target, like=pred)"
            )

    def _prepare(self, pred: Any, target: Any, *, same_shape: bool = True, float_target: bool = True) -> tuple:
        """``(xp, pred, target)`` on one backend and device, pred floating, shapes checked."""
        xp = namespace_of(pred)
        if dtype_kind(xp, pred.dtype) != "f":
            raise TypeError(f"{type(self).__name__}: pred must be a floating array, got dtype {dtype_name(pred.dtype)}")
        if type(target) is not type(pred) or (
            _backend_name_of(pred) != "numpy" and not _same_device(target.device, pred.device)
        ):
            self._check_same_place(pred, target)
        if same_shape and tuple(pred.shape) != tuple(target.shape):
            raise ValueError(
                f"{type(self).__name__}: pred and target must have the same shape, got pred "
                f"{tuple(pred.shape)} and target {tuple(target.shape)} (no broadcasting)"
            )
        if float_target and target.dtype != pred.dtype:
            if dtype_kind(xp, target.dtype) == "c":
                raise TypeError(f"{type(self).__name__}: target must be real, got dtype {dtype_name(target.dtype)}")
            target = xp.astype(target, pred.dtype)
        return xp, pred, target


@register_layer
class MSELoss(Loss):
    """Mean squared error: ``L = mean((p - t)²)``;  ``dL/dp = 2 (p - t) / n`` (n = number of elements)."""

    def forward(self, pred: Any, target: Any) -> Any:  # type: ignore[override]
        xp, pred, target = self._prepare(pred, target)
        diff = pred - target
        n = math.prod(pred.shape)
        self._cache = (diff, n)
        return _scalar(xp, xp.sum(diff * diff) / n)

    def _grad(self) -> Any:
        diff, n = self._cache
        return diff * (2.0 / n)


@register_layer
class BCELoss(Loss):
    """Binary cross-entropy on probabilities p ∈ [0, 1], as ``torch.nn.BCELoss``:

    ``L = mean(-(t · log p + (1 - t) · log(1 - p)))`` with each log clamped at
    -100 (so p = 0 or 1 gives a finite loss, never a divide warning), and
    ``dL/dp = (p - t) / max(p (1 - p), 1e-12) / n``.

    Values outside [0, 1] raise ``ValueError``; for raw scores use
    :class:`BCEWithLogitsLoss`, which is also more accurate.
    """

    def forward(self, pred: Any, target: Any) -> Any:  # type: ignore[override]
        xp, p, t = self._prepare(pred, target)
        if not bool(xp.all((p >= 0.0) & (p <= 1.0))):
            raise ValueError(
                "BCELoss: pred must hold probabilities in [0, 1] (e.g. the output of Sigmoid); "
                "for raw scores use BCEWithLogitsLoss"
            )
        log_p = _clamped_log(xp, p)
        log_q = _clamped_log(xp, 1.0 - p)
        n = math.prod(p.shape)
        self._cache = (p, t, n)
        return _scalar(xp, -xp.sum(t * log_p + (1.0 - t) * log_q) / n)

    def _grad(self) -> Any:
        p, t, n = self._cache
        xp = namespace_of(p)
        return (p - t) / (xp.maximum(p * (1.0 - p), 1e-12) * n)


def _clamped_log(xp: Any, p: Any) -> Any:
    """``max(log p, -100)`` for p ≥ 0, computed without ``log(0)``."""
    positive = p > 0.0
    return xp.where(positive, xp.maximum(xp.log(xp.where(positive, p, 1.0)), -100.0), -100.0)


@register_layer
class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits x (sigmoid fused in), as ``torch.nn.BCEWithLogitsLoss``:

    ``L = mean(max(x, 0) - x · t + log(1 + exp(-|x|)))``;  ``dL/dx = (σ(x) - t) / n``.
    """

    def forward(self, pred: Any, target: Any) -> Any:  # type: ignore[override]
        xp, x, t = self._prepare(pred, target)
        n = math.prod(x.shape)
        self._cache = (stable_sigmoid(xp, x), t, n)
        return _scalar(xp, xp.sum(xp.maximum(x, 0.0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))) / n)

    def _grad(self) -> Any:
        sig, t, n = self._cache
        return (sig - t) * (1.0 / n)


@register_layer
class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits z of shape (N, C), as ``torch.nn.CrossEntropyLoss``.

    With ``s = softmax(z)`` (log-sum-exp stable) and targets either integer
    class labels of shape (N,) (one-hot ``t``) or probabilities/one-hot of
    shape (N, C)::

        L = -(1/N) Σ_n Σ_c t_nc · log s_nc
        dL/dz = (s · Σ_c t_nc - t) / N        (= (s - t) / N for rows of t summing to 1)
    """

    def forward(self, pred: Any, target: Any) -> Any:  # type: ignore[override]
        name = type(self).__name__
        if getattr(pred, "ndim", None) != 2:
            raise ValueError(
                f"{name}: pred must be logits of shape (N, C), got shape {tuple(getattr(pred, 'shape', ()))}"
            )
        n, c = pred.shape
        labels = getattr(target, "ndim", None) == 1
        xp, z, t = self._prepare(pred, target, same_shape=not labels, float_target=not labels)
        if labels:
            if t.shape[0] != n:
                raise ValueError(
                    f"{name}: pred {tuple(z.shape)} needs {n} labels, got target of shape {tuple(t.shape)}"
                )
            if dtype_kind(xp, t.dtype) != "i":
                raise TypeError(
                    f"{name}: a 1-D target must hold integer class labels, got dtype {dtype_name(t.dtype)}; "
                    "cast it (e.g. y.astype(int)) or pass one-hot targets of shape (N, C)"
                )
            if n and not bool(xp.all((t >= 0) & (t < c))):
                raise ValueError(f"{name}: class labels must be in [0, {c}) for {c} classes")
            t = xp.astype(t[:, None] == self._class_indices(xp, c, t), z.dtype)  # one-hot
        # log s_nc = shifted_nc - log Σ_c exp(shifted_nc), with shifted = z - max_c z (no overflow), so
        # N·L = Σ_n (Σ_c t_nc) log Σ_c exp(shifted_nc) - Σ_nc t_nc shifted_nc
        shifted = z - xp.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        sum_e = xp.sum(e, axis=1, keepdims=True)
        log_sum = xp.log(sum_e)
        if not labels:
            log_sum = log_sum * xp.sum(t, axis=1, keepdims=True)
        self._cache = (e / sum_e, t, labels, max(n, 1))
        return _scalar(xp, (xp.sum(log_sum) - xp.sum(t * shifted)) / max(n, 1))

    _classes: Any = None

    def _class_indices(self, xp: Any, c: int, labels: Any) -> Any:
        """``arange(c)`` in the labels' dtype and device, kept between calls."""
        cached = self._classes
        if cached is None or cached.shape[0] != c or type(cached) is not type(labels) or cached.dtype != labels.dtype:
            cached = self._classes = xp.arange(c, dtype=labels.dtype, device=array_api_compat.device(labels))
        return cached

    def _grad(self) -> Any:
        probs, t, labels, n = self._cache
        if labels:
            return (probs - t) * (1.0 / n)
        xp = namespace_of(probs)
        return (probs * xp.sum(t, axis=1, keepdims=True) - t) * (1.0 / n)
