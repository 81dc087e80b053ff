"""The ``"numpy"`` backend: NumPy arrays on the CPU (the default).

The namespace is ``array_api_compat.numpy``. Its fast kernels skip NumPy's
Python-level dispatch: ``numpy.sum``/``max``/``min``/``all`` pass through
``_wrapreduction`` before reaching ``ufunc.reduce``, which costs 2-5 µs per
call, as much as reducing a whole minibatch (measured on the 2-core benchmark
machine; see ``benchmarks/RESULTS.md``). The overrides call the ufuncs'
``reduce`` directly, with the same results and dtypes for floating inputs;
``tests/backends/test_ops.py`` checks them against the standard functions.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from . import numpy_elementwise, numpy_norms, numpy_recurrent, numpy_windows
from .host_memory import keep_freed_memory
from .ops import Ops

__all__ = ["NumpyOps"]

_add: Any = np.add
_maximum: Any = np.maximum
_minimum: Any = np.minimum
_logical_and: Any = np.logical_and


#: numbers from which [`NumpyOps.sum`][nu_xp.backends.numpy_ops.NumpyOps.sum] over leading axes is a product
#: with ones (saved: 0.1 µs at 64 × 64 numbers, 1.3 at 128 × 120, 38 at 512 × 1024; below, the checks cost more)
GEMV_SUM_SIZE = 4096


def _leading(axis: Any, ndim: int) -> int:
    """How many leading axes ``axis`` names when it is ``0``, ``(0,)``, ``(0, 1)``… and leaves one or more
    axes after them; else 0."""
    if axis == 0 and ndim >= 2:
        return 1
    if type(axis) is tuple and 0 < len(axis) < ndim and axis == tuple(range(len(axis))):
        return len(axis)
    return 0


class NumpyOps(Ops):
    """NumPy on the CPU; reductions sent straight to the ufuncs."""

    name: ClassVar[str] = "numpy"
    modules: ClassVar[tuple[str, ...]] = ("numpy", "array_api_compat.numpy")
    namespace_module: ClassVar[str] = "array_api_compat.numpy"
    package: ClassVar[str] = "numpy"
    array_noun: ClassVar[str] = "a numpy array"
    single_device: ClassVar[bool] = True

    @classmethod
    def is_array(cls, x: Any) -> bool:
        return array_api_compat.is_numpy_array(x)

    def default_device(self) -> Any:
        return "cpu"

    def resolve_device(self, device: Any) -> Any:
        if device not in (None, "cpu"):
            raise ValueError(f"the numpy backend runs on 'cpu' only, got device={device!r}")
        return "cpu"

    def device_of(self, x: Any) -> Any:
        return "cpu"

    def asarray(self, a: Any, dtype: Any = None, device: Any = None) -> Any:
        """``numpy.asarray`` directly (the compat wrapper costs ~1 µs); no copy when ``a`` already has the dtype."""
        return np.asarray(a, dtype=dtype)

    # fast kernels: ufunc.reduce without numpy's Python dispatch (2-5 µs saved per call)
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``np.add.reduce`` for floating arrays (the standard ``sum`` for integers, which widens them).

        A sum over the leading axes of a large contiguous array (a bias's
        gradient: ``Σ_rows g``) is [`numpy_norms.column_sums`][nu_xp.backends.numpy_norms.column_sums]
        of its rows, a product ``1ᵀ G`` with BLAS. Below ``GEMV_SUM_SIZE``
        numbers the checks would cost more than they save.
        """
        if x.dtype.kind == "f":
            if x.size >= GEMV_SUM_SIZE and not keepdims and x.flags.c_contiguous:
                lead = _leading(axis, x.ndim)
                if lead:
                    rest = x.shape[lead:]
                    return numpy_norms.column_sums(x.reshape(-1, math.prod(rest))).reshape(rest)
            return _add.reduce(x, axis=axis, keepdims=keepdims)
        return self.xp.sum(x, axis=axis, keepdims=keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``np.maximum.reduce``."""
        return _maximum.reduce(x, axis=axis, keepdims=keepdims)

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``np.minimum.reduce``."""
        return _minimum.reduce(x, axis=axis, keepdims=keepdims)

    def __init__(self) -> None:
        super().__init__()
        keep_freed_memory()  # glibc keeps a step's large freed arrays for the next step (see host_memory)
        # the clamps are numpy's ufuncs themselves: ``ops.clamp_min(x, 0.0)`` is one C call, no Python frame
        self.clamp_min = _maximum  # type: ignore[method-assign]
        self.clamp_max = _minimum  # type: ignore[method-assign]

    def all(self, x: Any) -> bool:
        """``np.logical_and.reduce`` over every axis."""
        return bool(_logical_and.reduce(x, axis=None))

    def astype(self, x: Any, dtype: Any) -> Any:
        """The ``ndarray.astype`` method (the compat wrapper adds ~1 µs of argument handling)."""
        return x.astype(dtype)

    def erf(self, x: Any) -> Any:
        """``scipy.special.erf`` when SciPy is installed (numpy has no erf), else the standard formulation."""
        try:
            from scipy.special import erf
        except ImportError:
            return super().erf(x)
        return erf(x)

    pad = Ops.pad_by_writing  # one allocation and one copy instead of a concat per axis

    # convolution and pooling: the layers' formulas computed batch last (numpy_windows), where every tap is a
    # run of contiguous numbers; the layers' own windows stay the reference (and array_api_strict's path)
    native_conv = True
    native_conv_transpose = True
    native_pool = True
    conv = staticmethod(numpy_windows.conv)  # type: ignore[assignment]
    conv_backward = staticmethod(numpy_windows.conv_backward)  # type: ignore[assignment]
    conv_transpose = staticmethod(numpy_windows.conv_transpose)  # type: ignore[assignment]
    conv_transpose_backward = staticmethod(numpy_windows.conv_transpose_backward)  # type: ignore[assignment]
    max_pool = staticmethod(numpy_windows.max_pool)  # type: ignore[assignment]
    max_pool_backward = staticmethod(numpy_windows.max_pool_backward)  # type: ignore[assignment]
    avg_pool = staticmethod(numpy_windows.avg_pool)  # type: ignore[assignment]
    avg_pool_backward = staticmethod(numpy_windows.avg_pool_backward)  # type: ignore[assignment]

    def gelu(self, x: Any, approximate: str = "none") -> tuple[Any, Any]:
        """Exact GELU of float32 input: value and slope in one pass of cache-sized blocks, ``Φ``'s tail as a
        fitted Mills ratio (``numpy_elementwise``: 4.4 ms against 20 ms for 1 M numbers); else the reference formula."""
        if approximate == "none" and x.dtype == np.float32:
            return numpy_elementwise.gelu(x)
        return super().gelu(x, approximate)

    def layer_norm(self, x: Any, weight: Any, bias: Any, dims: int, eps: float) -> tuple[Any, Any]:
        """LayerNorm on rows, every pass in place (``numpy_norms``), for float input whose parameters share its
        dtype; else the reference formula."""
        if x.dtype.kind == "f" and all(p is None or p.dtype == x.dtype for p in (weight, bias)):
            return numpy_norms.layer_norm(x, weight, bias, dims, eps)
        return super().layer_norm(x, weight, bias, dims, eps)

    def layer_norm_backward(
        self, grad: Any, kept: Any, weight: Any, bias: Any, dims: int, needs: tuple[bool, bool, bool]
    ) -> tuple[Any, Any, Any]:
        """``numpy_norms.layer_norm_backward`` after its forward; else the reference formula."""
        if isinstance(kept, numpy_norms.LayerNormKept):
            return numpy_norms.layer_norm_backward(grad, kept, weight, dims, needs)
        return super().layer_norm_backward(grad, kept, weight, bias, dims, needs)

    masked_softmax = staticmethod(numpy_norms.masked_softmax)  # type: ignore[assignment]
    softmax_backward = staticmethod(numpy_norms.softmax_backward)  # type: ignore[assignment]

    # the LSTM's loop with every step written into buffers made once per sequence (numpy_recurrent)
    native_lstm = True
    lstm = staticmethod(numpy_recurrent.lstm_forward)  # type: ignore[assignment]
    lstm_backward = staticmethod(numpy_recurrent.lstm_backward)  # type: ignore[assignment]

    def index_add(self, table: Any, indices: Any, values: Any) -> Any:
        """``table`` plus ``values[i]`` at row ``indices[i]``, repeats summed: the values sorted by row (a stable
        sort: each row's values add in their order), one ``add.reduceat`` per run of equal rows, one addition per
        distinct row. ``numpy.add.at`` does the same one value at a time: 0.45 ms against 0.06 ms for a
        character model's 1600 rows of 32 (measured on the 2-core benchmark machine)."""
        out = table.copy()
        if indices.shape[0] == 0:
            return out
        rows = indices.astype(np.intp, copy=False)
        if int(_minimum.reduce(rows)) < 0:  # numpy's negative indices count from the end: one name per row
            rows = np.where(rows < 0, rows + table.shape[0], rows)
        order = np.argsort(rows, kind="stable")
        ranked = rows[order]
        starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
        out[ranked[starts]] += np.add.reduceat(values[order], starts, axis=0)
        return out
