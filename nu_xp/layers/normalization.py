"""Normalization: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``, as ``torch.nn``.

Each normalizes ``x`` over a set of axes ``A`` holding ``m`` elements, then scales and shifts::

    μ = mean_A(x)     σ² = mean_A((x - μ)²)     x̂ = (x - μ) / √(σ² + ε)     y = γ · x̂ + β

Backward, with ``ĝ = g · γ`` (μ and σ depend on every element they average)::

    dL/dx = (ĝ - mean_A(ĝ) - x̂ · mean_A(ĝ · x̂)) / √(σ² + ε)
    dL/dγ = Σ g · x̂        dL/dβ = Σ g          (summed over the axes γ is shared along)

BatchNorm averages over the batch and spatial axes, per channel, in training
mode, and keeps running estimates (buffers ``running_mean``, ``running_var``
with the unbiased variance, ``num_batches_tracked``); in eval mode it uses
them, so ``x̂ = (x - running_mean) / √(running_var + ε)`` is an affine map and
``dL/dx = ĝ / √(running_var + ε)``. LayerNorm averages over the trailing
``normalized_shape`` axes of each sample, in every mode; GroupNorm over each
sample's groups of channels and their spatial positions.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..backends import Backend
from ..validation import check_number, check_positive_int
from .base import Layer, check_grad
from .parameter import Parameter, accumulate
from .registry import register_layer

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"]


class _BatchNorm(Layer):
    """Batch normalization per channel (axis 1); subclasses say which input ranks they take."""

    ranks: ClassVar[tuple[int, ...]] = ()
    layout: ClassVar[str] = ""
    _backend: Backend
    running_mean: Any  # buffers (register_buffer), when track_running_stats
    running_var: Any
    num_batches_tracked: Any

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        self.parameter_shapes({"num_features": num_features, "affine": affine})
        super().__init__(backend=backend, device=device, dtype=dtype)
        self.num_features = int(num_features)
        self.eps = check_number("eps", eps, 0.0, open_low=True)
        self.momentum = None if momentum is None else check_number("momentum", momentum, 0.0, 1.0)
        if not isinstance(track_running_stats, (bool, np.bool_)):
            raise TypeError(f"track_running_stats must be True or False, got {track_running_stats!r}")
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        be = self.backend
        c = self.num_features
        self.weight = Parameter(be.from_host(np.ones(c, be.dtype_name))) if affine else None
        self.bias = Parameter(be.from_host(np.zeros(c, be.dtype_name))) if affine else None
        if self.track_running_stats:
            self.register_buffer("running_mean", be.from_host(np.zeros(c, be.dtype_name)))
            self.register_buffer("running_var", be.from_host(np.ones(c, be.dtype_name)))
            self.register_buffer("num_batches_tracked", be.ops.asarray(np.array(0, np.int64), device=be.device))

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight`` and ``bias`` of shape ``(num_features,)`` when ``affine``, and the buffers
        ``running_mean``, ``running_var`` ``(num_features,)`` and ``num_batches_tracked`` ``()`` when
        ``track_running_stats``: a file is checked against all of them before anything is allocated."""
        c = check_positive_int("num_features", config.get("num_features"))
        affine = config.get("affine", True)
        track = config.get("track_running_stats", True)
        for name, flag in (("affine", affine), ("track_running_stats", track)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        shapes: dict[str, tuple[int, ...]] = {"weight": (c,), "bias": (c,)} if affine else {}
        if track:
            shapes.update({"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()})
        return shapes

    def get_config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }

    def _channel_shape(self, x: Any) -> tuple[int, ...]:
        return (1, self.num_features, *([1] * (x.ndim - 2)))

    def forward(self, x: Any) -> Any:
        be = self._backend
        x = be.check(x)
        name = type(self).__name__
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            raise ValueError(
                f"{name}({self.num_features}) expects input of shape {self.layout} with C = {self.num_features}, "
                f"got {tuple(x.shape)}"
            )
        xp = be.xp
        axes = (0, *range(2, x.ndim))
        shape = self._channel_shape(x)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            m = math.prod(x.shape[i] for i in axes)
            if m < 2:
                raise ValueError(
                    f"{name}: training needs more than 1 value per channel to compute a variance, got input of "
                    f"shape {tuple(x.shape)}; use a larger batch or model.eval()"
                )
            mean = xp.mean(x, axis=axes, keepdims=True)
            centered = x - mean
            var = xp.mean(centered * centered, axis=axes, keepdims=True)
            if self.training and self.track_running_stats:
                self._update_running(xp.reshape(mean, (-1,)), xp.reshape(var, (-1,)), m)
        else:
            mean, var = xp.reshape(self.running_mean, shape), xp.reshape(self.running_var, shape)
            if mean.dtype != x.dtype:  # float32 running statistics in a low-precision step (mixed precision)
                mean, var = be.ops.astype(mean, x.dtype), be.ops.astype(var, x.dtype)
            centered = x - mean
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_hat = centered * inv_std
        self.save_for_backward(x_hat, inv_std, axes, use_batch)
        if not self.affine:
            return x_hat
        return x_hat * xp.reshape(self.weight.data, shape) + xp.reshape(self.bias.data, shape)  # type: ignore[union-attr]

    def _update_running(self, mean: Any, var: Any, m: int) -> None:
        """``r ← (1 - f) r + f · batch`` with ``f = momentum`` (or ``1/num_batches_tracked`` when None)."""
        count = self.num_batches_tracked + 1
        self.register_buffer("num_batches_tracked", count)
        f = self.momentum if self.momentum is not None else 1.0 / float(count)
        if mean.dtype != self.running_mean.dtype:  # low-precision batch statistics (mixed precision): kept float32
            ops = self._backend.ops
            mean, var = ops.astype(mean, self.running_mean.dtype), ops.astype(var, self.running_var.dtype)
        self.register_buffer("running_mean", (1.0 - f) * self.running_mean + f * mean)
        self.register_buffer("running_var", (1.0 - f) * self.running_var + f * var * (m / (m - 1)))

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        x_hat, inv_std, axes, use_batch = self.saved_tensors()
        be = self._backend
        grad = check_grad(self, grad, x_hat.shape, be)
        ops, xp = be.ops, be.xp
        g_hat = grad
        if self.affine:
            if self.weight.requires_grad:  # type: ignore[union-attr]
                accumulate(self.weight, ops.sum(grad * x_hat, axis=axes))  # type: ignore[arg-type]
            if self.bias.requires_grad:  # type: ignore[union-attr]
                accumulate(self.bias, ops.sum(grad, axis=axes))  # type: ignore[arg-type]
            g_hat = grad * xp.reshape(self.weight.data, self._channel_shape(grad))  # type: ignore[union-attr]
        if not input_grad:
            return None
        if use_batch:
            return ops.normalize_backward(g_hat, x_hat, inv_std, axes)
        return g_hat * inv_std


@register_layer
class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` per channel; see
    [`nu_xp.layers.normalization`][nu_xp.layers.normalization].

    Parameters
    ----------
    num_features : int
        ``C``, the channels (axis 1 of the input).
    eps : float, default 1e-5
        Added to the variance before the square root.
    momentum : float or None, default 0.1
        Weight of the batch in the running statistics' update; ``None``: their cumulative average.
    affine : bool, default True
        Whether to learn a scale ``weight`` and shift ``bias`` per channel.
    track_running_stats : bool, default True
        Whether to keep running statistics (for eval mode); without them eval mode uses the batch's.
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> bn = nu_xp.BatchNorm1d(3)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    ranks = (2, 3)
    layout = "(N, C) or (N, C, L)"


@register_layer
class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` per channel; see
    [`nu_xp.layers.normalization`][nu_xp.layers.normalization].

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats, backend, device, dtype :
        As for [`BatchNorm1d`][nu_xp.layers.normalization.BatchNorm1d], on ``(N, C, H, W)``.
    """

    ranks = (4,)
    layout = "(N, C, H, W)"


@register_layer
class LayerNorm(Layer):
    """Normalization of each sample over its trailing ``normalized_shape`` axes; see
    [`nu_xp.layers.normalization`][nu_xp.layers.normalization].

    ``weight`` (γ, ones) and ``bias`` (β, zeros) have shape ``normalized_shape``
    (no bias with ``bias=False``, neither with ``elementwise_affine=False``).

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing axes to normalize over (their sizes).
    eps : float, default 1e-5
        Added to the variance before the square root.
    elementwise_affine : bool, default True
        Whether to learn ``weight`` (ones) and ``bias`` (zeros) of ``normalized_shape``.
    bias : bool, default True
        Whether the affine part has a ``bias``.
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).
    """

    _backend: Backend

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        shapes = self.parameter_shapes(
            {"normalized_shape": normalized_shape, "elementwise_affine": elementwise_affine, "bias": bias}
        )
        super().__init__(backend=backend, device=device, dtype=dtype)
        self.normalized_shape = self._shape(normalized_shape)
        self.eps = check_number("eps", eps, 0.0, open_low=True)
        self.elementwise_affine = bool(elementwise_affine)
        self._bias_argument = bool(bias)
        be = self.backend
        self.weight = (
            Parameter(be.from_host(np.ones(self.normalized_shape, be.dtype_name))) if "weight" in shapes else None
        )
        self.bias = (
            Parameter(be.from_host(np.zeros(self.normalized_shape, be.dtype_name))) if "bias" in shapes else None
        )

    @staticmethod
    def _shape(value: Any) -> tuple[int, ...]:
        items = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise TypeError(f"normalized_shape must be an int or a non-empty tuple of ints, got {value!r}")
        return tuple(check_positive_int("normalized_shape", v) for v in items)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight`` and ``bias`` of shape ``normalized_shape`` (as the flags say)."""
        shape = cls._shape(config.get("normalized_shape"))
        affine, bias = config.get("elementwise_affine", True), config.get("bias", True)
        for name, flag in (("elementwise_affine", affine), ("bias", bias)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if not affine:
            return {}
        return {"weight": shape, **({"bias": shape} if bias else {})}

    def get_config(self) -> dict[str, Any]:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self._bias_argument,
        }

    def forward(self, x: Any) -> Any:
        be = self._backend
        x = be.check(x)
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != self.normalized_shape:
            raise ValueError(
                f"LayerNorm({list(self.normalized_shape)}) expects input whose last axes are "
                f"{self.normalized_shape}, got {tuple(x.shape)}"
            )
        weight = None if self.weight is None else self.weight.data
        bias = None if self.bias is None else self.bias.data
        y, kept = be.ops.layer_norm(x, weight, bias, k, self.eps)  # the formula, or the backend's own kernel
        self.save_for_backward(kept, tuple(x.shape))
        return y

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        kept, shape = self.saved_tensors()
        be = self._backend
        grad = check_grad(self, grad, shape, be)
        weight, bias = self.weight, self.bias
        needs = (
            input_grad,
            weight is not None and weight.requires_grad,
            bias is not None and bias.requires_grad,
        )
        d_x, d_weight, d_bias = be.ops.layer_norm_backward(
            grad,
            kept,
            None if weight is None else weight.data,
            None if bias is None else bias.data,
            len(self.normalized_shape),
            needs,
        )
        if d_weight is not None:
            accumulate(weight, d_weight)  # type: ignore[arg-type]
        if d_bias is not None:
            accumulate(bias, d_bias)  # type: ignore[arg-type]
        return d_x


@register_layer
class GroupNorm(Layer):
    """Normalization of each sample over groups of channels (and all spatial positions), as ``torch.nn.GroupNorm``.

    The channels of ``x`` (``(N, C, *spatial)``) are split into ``num_groups``
    groups of ``C/G`` consecutive channels; each sample's group is normalized
    over its ``C/G · prod(spatial)`` elements (the formulas of
    [`nu_xp.layers.normalization`][nu_xp.layers.normalization], ``A`` = one group),
    then every channel gets its own scale and shift: ``y = γ_c · x̂ + β_c``. It
    does not depend on the batch (nothing is averaged across samples, no
    running statistics), so it suits small batches and generative models;
    ``num_groups = 1`` normalizes each sample over all its channels,
    ``num_groups = C`` each channel on its own (instance normalization).

    Parameters
    ----------
    num_groups : int
        ``G``, which must divide ``num_channels``.
    num_channels : int
        ``C``, the channels (axis 1) of the input.
    eps : float, default 1e-5
        Added to the variance before the square root.
    affine : bool, default True
        Whether to learn ``weight`` (γ, ones) and ``bias`` (β, zeros), one per channel.
    backend, device, dtype : optional
        Where the parameters live, as for every [`Layer`][nu_xp.layers.base.Layer] (default: the current backend).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> norm = nu_xp.GroupNorm(2, 4)
    >>> y = norm(np.arange(32, dtype=np.float32).reshape(1, 4, 8))
    >>> np.round(y[0, :2].mean(), 6), np.round(y[0, :2].std(), 3)  # the first group: channels 0 and 1
    (np.float32(0.0), np.float32(1.0))
    """

    _backend: Backend

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        backend: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        shapes = self.parameter_shapes({"num_groups": num_groups, "num_channels": num_channels, "affine": affine})
        super().__init__(backend=backend, device=device, dtype=dtype)
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps = check_number("eps", eps, 0.0, open_low=True)
        self.affine = bool(affine)
        be = self.backend
        self.weight = Parameter(be.from_host(np.ones(shapes["weight"], be.dtype_name))) if self.affine else None
        self.bias = Parameter(be.from_host(np.zeros(shapes["bias"], be.dtype_name))) if self.affine else None

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """``weight`` and ``bias`` of shape ``(num_channels,)`` (none without ``affine``)."""
        groups = check_positive_int("num_groups", config.get("num_groups"))
        channels = check_positive_int("num_channels", config.get("num_channels"))
        if channels % groups:
            raise ValueError(f"GroupNorm: num_groups={groups} must divide num_channels={channels}")
        affine = config.get("affine", True)
        if not isinstance(affine, (bool, np.bool_)):
            raise TypeError(f"affine must be True or False, got {affine!r}")
        return {"weight": (channels,), "bias": (channels,)} if affine else {}

    def get_config(self) -> dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "num_channels": self.num_channels,
            "eps": self.eps,
            "affine": self.affine,
        }

    def forward(self, x: Any) -> Any:
        be = self._backend
        x = be.check(x)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm({self.num_groups}, {self.num_channels}) expects input (N, {self.num_channels}, …), "
                f"got {tuple(x.shape)}"
            )
        xp = be.xp
        shape = tuple(x.shape)
        grouped = xp.reshape(x, (shape[0], self.num_groups, -1))  # (N, G, C/G · spatial)
        mean = xp.mean(grouped, axis=2, keepdims=True)
        centered = grouped - mean
        inv_std = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=2, keepdims=True) + self.eps)
        x_hat = xp.reshape(centered * inv_std, shape)
        self.save_for_backward(x_hat, inv_std)
        if self.weight is None or self.bias is None:
            return x_hat
        per_channel = (self.num_channels, *([1] * (x.ndim - 2)))
        return x_hat * xp.reshape(self.weight.data, per_channel) + xp.reshape(self.bias.data, per_channel)

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """``dL/dγ_c = Σ g·x̂`` and ``dL/dβ_c = Σ g`` over the batch and spatial axes; ``dL/dx`` per group."""
        x_hat, inv_std = self.saved_tensors()
        be = self._backend
        grad = check_grad(self, grad, x_hat.shape, be)
        ops, xp = be.ops, be.xp
        shape = tuple(grad.shape)
        shared = (0, *range(2, grad.ndim))  # γ and β are shared along the batch and spatial axes
        g_hat = grad
        if self.weight is not None:
            if self.weight.requires_grad:
                accumulate(self.weight, ops.sum(grad * x_hat, axis=shared))
            if self.bias is not None and self.bias.requires_grad:
                accumulate(self.bias, ops.sum(grad, axis=shared))
            g_hat = grad * xp.reshape(self.weight.data, (self.num_channels, *([1] * (grad.ndim - 2))))
        if not input_grad:
            return None
        groups = (shape[0], self.num_groups, -1)
        dx = ops.normalize_backward(xp.reshape(g_hat, groups), xp.reshape(x_hat, groups), inv_std, (2,))
        return xp.reshape(dx, shape)
