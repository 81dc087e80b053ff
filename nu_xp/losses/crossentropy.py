"""Multi-class classification: ``CrossEntropyLoss`` (on logits) and ``NLLLoss`` (on log-probabilities).

Both read the classes on axis 1: ``pred`` is ``(N, C)`` or ``(N, C, d1, …)``.
Each is written as ``ℓ = -Σ_c A_c · log p_c`` per sample (and position), with a
coefficient array ``A`` built from the target:

* class labels ``y`` (integers, shape ``(N, d1, …)``):
  ``A_c = (1 - ε) · w_y · [c = y] + (ε / C) · w_c``, zero where ``y = ignore_index``
  (``w``: the class ``weight``, 1 by default; ``ε``: ``label_smoothing``);
* class probabilities ``t`` (floats, the shape of ``pred``): ``A_c = w_c · ((1 - ε) t_c + ε / C)``.

For ``CrossEntropyLoss``, ``log p = log_softmax(z)`` (log-sum-exp stable), and
since ``d log p_c / d z_k = [c = k] - p_k``::

    dℓ/dz_k = p_k · Σ_c A_c - A_k

``reduction="mean"`` divides by ``Σ_n w_{y_n}`` over the samples not ignored
(labels) or by N (probabilities), as PyTorch does.
"""

from __future__ import annotations

import math
from typing import Any

from ..backends import Ops, dtype_kind, dtype_name, ops_of, same_device
from ..validation import check_number
from .base import Loss

__all__ = ["CrossEntropyLoss", "NLLLoss"]


class _ClassLoss(Loss):
    """What ``CrossEntropyLoss`` and ``NLLLoss`` share: targets, class weights, ignored labels."""

    takes_labels = True

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise TypeError(f"{type(self).__name__}: ignore_index must be an integer, got {ignore_index!r}")
        self.weight, self.ignore_index = weight, ignore_index
        self._classes: Any = None

    def _check_pred(self, pred: Any) -> tuple[int, int]:
        name = type(self).__name__
        if getattr(pred, "ndim", 0) < 2:
            raise ValueError(
                f"{name}: pred must be logits of shape (N, C) or (N, C, d1, ...) (classes on axis 1), "
                f"got shape {tuple(getattr(pred, 'shape', ()))}"
            )
        return pred.shape[0], pred.shape[1]

    def _coefficients(self, ops: Ops, pred: Any, target: Any, smoothing: float) -> tuple[Any, Any, Any]:
        """``(A, Σ_c A_c or None when it is 1, normalizer for the mean)`` for ``pred`` of shape ``(N, C, …)``."""
        name = type(self).__name__
        xp = ops.xp
        c = pred.shape[1]
        if (
            getattr(target, "ndim", None) == 2
            and pred.ndim == 2
            and target.shape[1] == 1
            and c > 1
            and dtype_kind(xp, target.dtype) == "i"
        ):
            raise ValueError(
                f"{name}: labels of shape {tuple(target.shape)} for {c} classes: class labels have shape (N,); "
                "pass y.ravel() (or y[:, 0]), or class probabilities of pred's shape"
            )
        if getattr(target, "ndim", None) != pred.ndim - 1:  # class probabilities, of pred's shape
            ops, pred, target = self._prepare(pred, target)
            w = None if self.weight is None else self._class_weights(pred, c)
            coeff = target if not smoothing else (1.0 - smoothing) * target + smoothing / c
            if w is not None:
                coeff = coeff * xp.reshape(w, (1, c, *([1] * (pred.ndim - 2))))
            return coeff, ops.sum(coeff, axis=1, keepdims=True), math.prod(pred.shape) // c
        want = (pred.shape[0], *pred.shape[2:])
        if tuple(target.shape) != want:
            raise ValueError(
                f"{name}: pred {tuple(pred.shape)} needs labels of shape {want}, got {tuple(target.shape)}"
            )
        if dtype_kind(xp, target.dtype) != "i":
            raise TypeError(
                f"{name}: a target without the class axis must hold integer class labels, got dtype "
                f"{dtype_name(target.dtype)}; cast them (e.g. y.astype(int)) or pass class probabilities "
                "of pred's shape"
            )
        if dtype_name(target.dtype) not in ("int32", "int64"):  # uint8/int8/int16 labels: compare in a wide type
            target = ops.astype(target, xp.int32)
        onehot = ops.astype(target[:, None, ...] == self._class_axis(ops, c, pred.ndim, target), pred.dtype)
        in_range = (target >= 0) & (target < c)
        valid = None  # None: every label counts (the common case costs one check)
        traced = ops.is_traced(target)  # inside a compiled step: labels were checked on the data, no value here
        if traced and 0 <= self.ignore_index < c:
            valid = target != self.ignore_index
            onehot = onehot * ops.astype(valid, pred.dtype)[:, None, ...]
        elif not traced and (not ops.all(in_range) or 0 <= self.ignore_index < c):
            valid = target != self.ignore_index
            if not ops.all(in_range | ~valid):
                raise ValueError(f"{name}: class labels must be in [0, {c}) for {c} classes (or ignore_index)")
            onehot = onehot * ops.astype(valid, pred.dtype)[:, None, ...]
        w = None if self.weight is None else self._class_weights(pred, c)
        if w is not None:
            w = xp.reshape(w, (1, c, *([1] * (pred.ndim - 2))))
            onehot = onehot * w  # w_y at the label, 0 elsewhere and for ignored labels
        if w is None and valid is None:
            normalizer: Any = math.prod(want)
        elif w is None and ops.single_device and not traced:
            normalizer = int(ops.sum(ops.astype(valid, pred.dtype)))
        else:
            normalizer = ops.sum(onehot)  # Σ w_y over the labels that count
        if not smoothing:
            a_sum = None if w is None and valid is None else ops.sum(onehot, axis=1, keepdims=True)
            return onehot, a_sum, normalizer
        spread = smoothing / c * (w if w is not None else xp.ones_like(onehot[:, :1, ...]))
        if valid is not None:
            spread = spread * ops.astype(valid, pred.dtype)[:, None, ...]
        coeff = (1.0 - smoothing) * onehot + spread
        return coeff, ops.sum(coeff, axis=1, keepdims=True), normalizer

    def _class_weights(self, pred: Any, c: int) -> Any:
        """``weight`` on pred's backend, checked to hold one weight per class: shape ``(C,)``."""
        w = self._weights(self.weight, pred, "weight")
        if tuple(w.shape) != (c,):
            raise ValueError(
                f"{type(self).__name__}: weight must hold one weight per class, shape ({c},) for {c} classes; "
                f"got shape {tuple(w.shape)}"
            )
        return w

    def _class_axis(self, ops: Ops, c: int, ndim: int, labels: Any) -> Any:
        """``arange(C)`` shaped ``(1, C, 1, …)`` in the labels' dtype and device, kept between calls."""
        cached = self._classes
        if (
            cached is None
            or cached.shape[1] != c
            or cached.ndim != ndim
            or type(cached) is not type(labels)
            or cached.dtype != labels.dtype
            or not (ops.single_device or same_device(ops.device_of(cached), ops.device_of(labels)))
        ):
            classes = ops.xp.arange(c, dtype=labels.dtype, device=ops.device_of(labels))
            cached = ops.xp.reshape(classes, (1, c, *([1] * (ndim - 2))))
            if not ops.is_traced(cached):  # a value made while jax.jit traces must not outlive the trace
                self._classes = cached
        return cached

    def _expand(self, grad: Any) -> Any:
        return ops_of(grad).xp.expand_dims(grad, axis=1)


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross-entropy on logits, as ``torch.nn.CrossEntropyLoss``; see
    [`nu_xp.losses.crossentropy`][nu_xp.losses.crossentropy].

    Parameters
    ----------
    weight : array of shape (C,), optional
        Per-class weights (any array or list; moved to the logits' backend).
    ignore_index : int, default -100
        Labels equal to it add nothing and do not count in the mean.
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1]
        ``ε``: the target becomes ``(1 - ε) · onehot + ε / C``.
    """

    def __init__(
        self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0
    ) -> None:
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = check_number("label_smoothing", label_smoothing, 0.0, 1.0)

    def forward(self, pred: Any, target: Any) -> Any:
        self._check_pred(pred)
        ops, z, target = self._prepare(pred, target, same_shape=False, float_target=False)
        coeff, a_sum, normalizer = self._coefficients(ops, z, target, self.label_smoothing)
        xp = ops.xp
        # log p_c = shifted_c - log Σ exp(shifted), with shifted = z - max z (no overflow), so
        # ℓ = -Σ_c A_c log p_c = (Σ_c A_c) · log Σ exp(shifted) - Σ_c A_c shifted_c
        shifted = z - ops.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        sum_e = ops.sum(e, axis=1, keepdims=True)
        log_sum = xp.log(sum_e) if a_sum is None else a_sum * xp.log(sum_e)
        kept = (e / sum_e, coeff, a_sum)
        if self.reduction != "none":  # the total directly: one reduction fewer than summing ℓ per sample
            return self._reduce_total(ops, ops.sum(log_sum) - ops.sum(coeff * shifted), normalizer, kept)
        elementwise = xp.reshape(log_sum, (log_sum.shape[0], *log_sum.shape[2:])) - ops.sum(coeff * shifted, axis=1)
        return self._reduce(ops, elementwise, normalizer, kept)

    def _grad(self, kept: Any, scale: Any) -> Any:
        probs, coeff, a_sum = kept
        return ((probs if a_sum is None else probs * a_sum) - coeff) * scale


class NLLLoss(_ClassLoss):
    """Negative log-likelihood on log-probabilities (e.g. the output of ``LogSoftmax``), as ``torch.nn.NLLLoss``.

    ``ℓ = -w_y · logp_y`` (0 where ``y = ignore_index``);  ``dℓ/dlogp_c = -w_y · [c = y]``.
    ``reduction="mean"`` divides by the summed weights of the samples not ignored.

    Parameters
    ----------
    weight : array, optional
        A weight per class ``(C,)``; the mean divides by the summed weights of the targets.
    ignore_index : int, default -100
        Targets equal to it contribute nothing (nor to the mean's denominator).
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-element losses are combined: their mean, their sum, or none (the value has their shape).
    """

    def forward(self, pred: Any, target: Any) -> Any:
        self._check_pred(pred)
        ops, logp, target = self._prepare(pred, target, same_shape=False, float_target=False)
        if getattr(target, "ndim", None) != pred.ndim - 1:
            raise ValueError(
                f"NLLLoss: pred {tuple(pred.shape)} needs integer labels of shape "
                f"{(pred.shape[0], *pred.shape[2:])}, got {tuple(getattr(target, 'shape', ()))}"
            )
        coeff, _, normalizer = self._coefficients(ops, logp, target, 0.0)
        return self._reduce(ops, -ops.sum(coeff * logp, axis=1), normalizer, coeff)

    def _grad(self, kept: Any, scale: Any) -> Any:
        return -kept * scale
