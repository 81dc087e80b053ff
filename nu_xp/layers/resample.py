"""Resampling the spatial axes: ``AdaptiveAvgPool1d/2d`` and ``Upsample``, as ``torch.nn``.

Each is linear and acts on every spatial axis on its own, so along an axis
of ``n`` positions it is one matrix ``M`` of shape ``(m, n)`` (``m`` output
positions), applied to every row of the input::

    y[..., i, ...] = Σ_j M[i, j] · x[..., j, ...]          dL/dx[..., j, ...] = Σ_i M[i, j] · g[..., i, ...]

(for 2-D inputs along the height, then the width: ``y = M_h · x · M_wᵀ``,
``dL/dx = M_hᵀ · g · M_w``). The matrices say everything a layer does:

* ``AdaptiveAvgPool``: row ``i`` averages the window ``[⌊i·n/m⌋, ⌈(i+1)·n/m⌉)``
  (PyTorch's windows: they overlap when ``m`` does not divide ``n``);
* ``Upsample(mode="nearest")``: row ``i`` picks position ``min(⌊i·r⌋, n - 1)``,
  ``r = n/m`` (or ``1/scale_factor`` when a scale factor is given);
* ``Upsample(mode="linear" | "bilinear")``: row ``i`` mixes the two positions
  around ``u = r·(i + ½) - ½`` (clamped at 0) with weights ``1 - (u - ⌊u⌋)`` and
  ``u - ⌊u⌋``; with ``align_corners=True``, ``u = i·(n - 1)/(m - 1)`` (the
  corner samples line up).

A product with a dense ``(m, n)`` matrix costs ``m·n`` per row: nothing for the
feature maps of a decoder, more than a gather for very large images. The
matrices are made on the host (float64, then the model's dtype) and cached
per size.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import numpy as np

from ..backends import ops_of
from ..validation import check_bool, check_positive_int
from .base import Layer, check_grad
from .registry import register_layer
from .windows import as_tuple

__all__ = ["AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Upsample"]


@functools.lru_cache(maxsize=256)
def average_matrix(n: int, m: int) -> np.ndarray:
    """The ``(m, n)`` matrix of adaptive average pooling: row ``i`` is the mean over ``[⌊i·n/m⌋, ⌈(i+1)·n/m⌉)``."""
    out = np.zeros((m, n))
    for i in range(m):
        start, stop = (i * n) // m, -((-(i + 1) * n) // m)
        out[i, start:stop] = 1.0 / (stop - start)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=256)
def interpolation_matrix(n: int, m: int, mode: str, align_corners: bool, scale: float | None) -> np.ndarray:
    """The ``(m, n)`` matrix of ``Upsample`` along one axis (PyTorch's source positions; see the module).

    ``scale`` is ``1/scale_factor`` when the layer was given one (PyTorch uses it as it is), else None (``n/m``).
    """
    out = np.zeros((m, n))
    rows = np.arange(m)
    ratio = scale if scale is not None else n / m
    if mode == "nearest":
        out[rows, np.minimum(np.floor(rows * ratio).astype(np.int64), n - 1)] = 1.0
    else:
        if align_corners:
            source = rows * ((n - 1) / (m - 1) if m > 1 else 0.0)
        else:
            source = np.maximum(ratio * (rows + 0.5) - 0.5, 0.0)
        low = np.minimum(np.floor(source).astype(np.int64), n - 1)
        high = np.minimum(low + 1, n - 1)
        frac = source - low
        np.add.at(out, (rows, low), 1.0 - frac)
        np.add.at(out, (rows, high), frac)
    out.setflags(write=False)
    return out


class _Resample(Layer):
    """A separable linear map of the spatial axes: one matrix per axis (see the module docstring)."""

    #: the spatial ranks the layer takes (1: ``(N, C, L)``, 2: ``(N, C, H, W)``)
    ranks: ClassVar[tuple[int, ...]] = ()

    def _matrices(self, spatial: tuple[int, ...]) -> list[np.ndarray]:
        """The ``(m, n)`` host matrix of every spatial axis, for an input of spatial shape ``spatial``."""
        raise NotImplementedError

    def _check_rank(self, x: Any) -> None:
        if x.ndim - 2 not in self.ranks:
            want = " or ".join("(N, C, L)" if r == 1 else "(N, C, H, W)" for r in self.ranks)
            raise ValueError(f"{self!r} expects input of shape {want}, got {tuple(x.shape)}")

    def forward(self, x: Any) -> Any:
        ops = ops_of(x)
        self._check_rank(x)
        if not ops.xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"{type(self).__name__} takes floating input, got dtype {x.dtype}")
        dtype = np.dtype(str(x.dtype).rsplit(".", 1)[-1])
        host = self._matrices(tuple(x.shape[2:]))
        mats = [ops.asarray(m.astype(dtype), device=ops.device_of(x)) for m in host]
        self.save_for_backward(mats, tuple(x.shape[:2]), tuple(m.shape[0] for m in host), type(x))
        return _apply(ops.xp, x, mats, transpose=False)

    def backward(self, grad: Any) -> Any:
        """``dL/dx``: the transposed matrices applied to ``grad`` (no parameters)."""
        mats, lead, out, array_type = self.saved_tensors()
        grad = check_grad(self, grad, (*lead, *out), array_type)
        return _apply(ops_of(grad).xp, grad, mats, transpose=True)


def _apply(xp: Any, x: Any, mats: list[Any], *, transpose: bool) -> Any:
    """``x`` with matrix ``mats[k]`` (or its transpose) applied along spatial axis ``k`` (axes 2, 3)."""
    last = mats[-1]
    x = x @ (last if transpose else xp.matrix_transpose(last))  # along the last axis: rows times Mᵀ
    if len(mats) == 2:
        first = mats[0]
        x = (xp.matrix_transpose(first) if transpose else first) @ x  # along the height: M times columns
    return x


class _AdaptiveAvgPool(_Resample):
    nd: ClassVar[int] = 0

    def __init__(self, output_size: int | tuple[int | None, ...]) -> None:
        super().__init__()
        self.output_size = self._check(output_size)

    @classmethod
    def _check(cls, value: Any) -> tuple[int | None, ...]:
        items = [value] * cls.nd if not isinstance(value, (tuple, list)) else list(value)
        if len(items) != cls.nd:
            raise TypeError(f"{cls.__name__}: output_size must be an int or {cls.nd} ints (or None), got {value!r}")
        return tuple(None if v is None else check_positive_int("output_size", v) for v in items)

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """No parameters; ``output_size`` checked."""
        cls._check(config.get("output_size"))
        return {}

    def get_config(self) -> dict[str, Any]:
        size = list(self.output_size)
        return {"output_size": size[0] if self.nd == 1 else size}

    def _matrices(self, spatial: tuple[int, ...]) -> list[np.ndarray]:
        return [average_matrix(n, n if m is None else m) for n, m in zip(spatial, self.output_size)]


@register_layer
class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Average pooling to a fixed length: ``(N, C, L)`` → ``(N, C, output_size)``, as ``torch.nn.AdaptiveAvgPool1d``.

    Output position ``i`` averages ``x[..., ⌊i·L/m⌋ : ⌈(i+1)·L/m⌉]``; any input length gives the same output
    length, so a classifier head after it takes inputs of every size. Matrices and gradients: see
    [`nu_xp.layers.resample`][nu_xp.layers.resample].

    Parameters
    ----------
    output_size : int
        ``m``, the output length.

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> nu_xp.AdaptiveAvgPool1d(2)(np.arange(5.0).reshape(1, 1, 5))  # windows [0, 3) and [2, 5)
    array([[[1., 3.]]])
    """

    nd = 1
    ranks = (1,)


@register_layer
class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Average pooling to a fixed size: ``(N, C, H, W)`` → ``(N, C, h, w)``, as ``torch.nn.AdaptiveAvgPool2d``.

    Each axis as in [`AdaptiveAvgPool1d`][nu_xp.layers.resample.AdaptiveAvgPool1d]; ``output_size=1`` is the
    global average pooling of the head of a modern CNN.

    Parameters
    ----------
    output_size : int or pair of (int or None)
        ``(h, w)``; an int for both; None keeps that axis's size.

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> nu_xp.AdaptiveAvgPool2d(1)(np.ones((2, 3, 7, 5), dtype=np.float32)).shape
    (2, 3, 1, 1)
    """

    nd = 2
    ranks = (2,)


@register_layer
class Upsample(_Resample):
    """Upsampling of ``(N, C, L)`` or ``(N, C, H, W)`` by nearest neighbours or (bi)linear interpolation, as
    ``torch.nn.Upsample``.

    Give either ``size`` (the output's spatial size) or ``scale_factor`` (the output is
    ``⌊n · scale_factor⌋`` per axis). The source positions, PyTorch's, and the gradients are in
    [`nu_xp.layers.resample`][nu_xp.layers.resample].

    Parameters
    ----------
    size : int or tuple of int, optional
        The output's spatial size.
    scale_factor : float or tuple of float, optional
        The factor per spatial axis.
    mode : {"nearest", "linear", "bilinear"}, default "nearest"
        ``"linear"`` takes ``(N, C, L)``, ``"bilinear"`` ``(N, C, H, W)``; ``"nearest"`` either.
    align_corners : bool, optional
        For the linear modes: whether the corner samples of input and output line up (default False,
        PyTorch's); not allowed with ``"nearest"``.

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> nu_xp.Upsample(scale_factor=2)(np.array([[[1.0, 2.0]]]))
    array([[[1., 1., 2., 2.]]])
    >>> nu_xp.Upsample(scale_factor=2, mode="linear")(np.array([[[1.0, 2.0]]]))
    array([[[1.  , 1.25, 1.75, 2.  ]]])
    """

    MODES: ClassVar[dict[str, int | None]] = {"nearest": None, "linear": 1, "bilinear": 2}

    def __init__(
        self,
        size: int | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
    ) -> None:
        super().__init__()
        self.parameter_shapes(
            {"size": size, "scale_factor": scale_factor, "mode": mode, "align_corners": align_corners}
        )
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """No parameters; ``size``/``scale_factor`` (exactly one), ``mode`` and ``align_corners`` checked."""
        size, scale, mode = config.get("size"), config.get("scale_factor"), config.get("mode", "nearest")
        corners = config.get("align_corners")
        if mode not in cls.MODES:
            raise ValueError(f"Upsample: mode must be one of {sorted(cls.MODES)}, got {mode!r}")
        if (size is None) == (scale is None):
            raise ValueError("Upsample: give either size or scale_factor (exactly one)")
        if corners is not None:
            check_bool("align_corners", corners)
            if mode == "nearest":
                raise ValueError("Upsample: align_corners applies to the linear modes only, not to 'nearest'")
        for value, name in ((size, "size"), (scale, "scale_factor")):
            if value is None:
                continue
            for v in value if isinstance(value, (tuple, list)) else [value]:
                if name == "size":
                    check_positive_int("size", v)
                elif isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                    raise ValueError(f"Upsample: scale_factor must hold positive finite numbers, got {value!r}")
        return {}

    def get_config(self) -> dict[str, Any]:
        as_list = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
        return {"size": as_list(self.size), "scale_factor": as_list(self.scale_factor), "mode": self.mode,
                "align_corners": self.align_corners}  # fmt: skip

    @property
    def ranks(self) -> tuple[int, ...]:  # type: ignore[override]
        """``"nearest"`` takes 1-D and 2-D inputs, ``"linear"`` 1-D, ``"bilinear"`` 2-D."""
        want = self.MODES[self.mode]
        return (1, 2) if want is None else (want,)

    def _per_axis(self, value: Any, nd: int, name: str) -> tuple[Any, ...]:
        if isinstance(value, (tuple, list)):
            if len(value) != nd:
                raise ValueError(f"Upsample: {name} {value!r} has {len(value)} entries for {nd} spatial axes")
            return tuple(value)
        return (value,) * nd

    def _matrices(self, spatial: tuple[int, ...]) -> list[np.ndarray]:
        nd = len(spatial)
        mode = "nearest" if self.mode == "nearest" else "linear"
        corners = bool(self.align_corners)
        if self.size is not None:
            out = as_tuple(self.size, nd, "size", "Upsample")
            return [interpolation_matrix(n, m, mode, corners, None) for n, m in zip(spatial, out)]
        factors = self._per_axis(self.scale_factor, nd, "scale_factor")
        out = tuple(math.floor(n * f) for n, f in zip(spatial, factors))
        if any(m < 1 for m in out):
            raise ValueError(f"Upsample: scale_factor {self.scale_factor} makes an empty output from {spatial}")
        return [interpolation_matrix(n, m, mode, corners, 1.0 / f) for n, m, f in zip(spatial, out, factors)]
