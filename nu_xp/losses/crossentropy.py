"""Multi-class classification: ``CrossEntropyLoss`` (softmax fused in, on logits)."""

from __future__ import annotations

from typing import Any

from ..backends import Ops, dtype_kind, dtype_name, ops_of
from .base import Loss, scalar

__all__ = ["CrossEntropyLoss"]


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits z of shape (N, C), as ``torch.nn.CrossEntropyLoss``.

    With ``s = softmax(z)`` (log-sum-exp stable) and targets either integer
    class labels of shape (N,) (one-hot ``t``) or probabilities/one-hot of
    shape (N, C)::

        L = -(1/N) Σ_n Σ_c t_nc · log s_nc
        dL/dz = (s · Σ_c t_nc - t) / N        (= (s - t) / N for rows of t summing to 1)

    The gradient follows from ``log s_nc = z_nc - log Σ_k exp z_nk``, whose
    derivative with respect to ``z_nk`` is ``δ_ck - s_nk``.
    """

    _classes: Any = None

    def forward(self, pred: Any, target: Any) -> Any:
        name = type(self).__name__
        if getattr(pred, "ndim", None) != 2:
            raise ValueError(
                f"{name}: pred must be logits of shape (N, C), got shape {tuple(getattr(pred, 'shape', ()))}"
            )
        n, c = pred.shape
        labels = getattr(target, "ndim", None) == 1
        ops, z, t = self._prepare(pred, target, same_shape=not labels, float_target=not labels)
        xp = ops.xp
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
            if n and not ops.all((t >= 0) & (t < c)):
                raise ValueError(f"{name}: class labels must be in [0, {c}) for {c} classes")
            t = ops.astype(t[:, None] == self._class_indices(ops, c, t), z.dtype)  # one-hot
        # log s_nc = shifted_nc - log Σ_c exp(shifted_nc), with shifted = z - max_c z (no overflow), so
        # N·L = Σ_n (Σ_c t_nc) log Σ_c exp(shifted_nc) - Σ_nc t_nc shifted_nc
        shifted = z - ops.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        sum_e = ops.sum(e, axis=1, keepdims=True)
        log_sum = xp.log(sum_e)
        if not labels:
            log_sum = log_sum * ops.sum(t, axis=1, keepdims=True)
        self._cache = (e / sum_e, t, labels, max(n, 1))
        return scalar(ops, (ops.sum(log_sum) - ops.sum(t * shifted)) / max(n, 1))

    def _class_indices(self, ops: Ops, c: int, labels: Any) -> Any:
        """``arange(c)`` in the labels' dtype and device, kept between calls."""
        cached = self._classes
        if cached is None or cached.shape[0] != c or type(cached) is not type(labels) or cached.dtype != labels.dtype:
            cached = self._classes = ops.xp.arange(c, dtype=labels.dtype, device=ops.device_of(labels))
        return cached

    def clear_cache(self) -> None:
        self._cache = None
        self._classes = None

    def _grad(self) -> Any:
        probs, t, labels, n = self._cache
        if labels:
            return (probs - t) * (1.0 / n)
        return (probs * ops_of(probs).sum(t, axis=1, keepdims=True) - t) * (1.0 / n)
