"""Arrays of any backend: their namespace and ``Ops``, and moving them between backends.

``ops_of(x)`` (and its namespace ``ops_of(x).xp``) is what parameter-free layers and losses
call on their input: one dict lookup per call (cached per array
type), because ``array_api_compat.array_namespace`` costs microseconds and the
hot paths ask on every minibatch.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .backend import Backend, describe, get_backend
from .dtypes import FLOAT_DTYPES, dtype_kind, dtype_name
from .ops import Ops
from .registry import BACKENDS, ops_class_of, ops_for

__all__ = [
    "asarray",
    "backend_of",
    "describe",
    "dtype_kind",
    "dtype_name",
    "is_writeable",
    "ops_of",
    "to_host",
]


_OPS_BY_TYPE: dict[type, Ops] = {}


def ops_of(x: Any) -> Ops:
    """The [`Ops`][nu_xp.backends.ops.Ops] of the backend ``x`` belongs to (one dict lookup, cached per type).

    Raises ``TypeError`` for objects that are not arrays of a supported backend.
    """
    try:
        return _OPS_BY_TYPE[type(x)]
    except KeyError:
        pass
    cls = ops_class_of(x)
    if cls is None:
        raise TypeError(
            f"expected an array of a nu_xp backend ({', '.join(BACKENDS)}), got {type(x).__name__}; "
            "convert it first, e.g. nu_xp.asarray(x, like=model)"
        )
    ops = _OPS_BY_TYPE[type(x)] = ops_for(cls.name)
    return ops


_WRITEABLE: dict[type, bool] = {}


def is_writeable(x: Any) -> bool:
    """True when arrays of ``x``'s type can be updated in place (``x -= d``); cached per type.

    The one place nu_xp asks: NumPy, CuPy, torch and array_api_strict arrays
    are writeable, JAX's are not (optimizers then rebind ``p.data``).
    """
    try:
        return _WRITEABLE[type(x)]
    except KeyError:
        _WRITEABLE[type(x)] = ok = bool(array_api_compat.is_writeable_array(x))
        return ok


def backend_of(x: Any) -> Backend:
    """The [`Backend`][nu_xp.backends.backend.Backend] an array lives on (its dtype if floating, else the default)."""
    ops = ops_of(x)
    dt = dtype_name(x.dtype)
    return get_backend(ops.name, device=ops.device_of(x), dtype=dt if dt in FLOAT_DTYPES else None)


def to_host(a: Any) -> np.ndarray:
    """Copy (or view) any supported array as a ``numpy.ndarray`` in host memory.

    cupy arrays are fetched with ``.get()``, torch tensors with
    ``.detach().cpu().numpy()``, array_api_strict arrays through DLPack.
    Lists and scalars go through ``numpy.asarray``. The dtype is kept.

    Examples
    --------
    >>> import nu_xp
    >>> nu_xp.to_host([1.0, 2.0])
    array([1., 2.])
    """
    cls = ops_class_of(a)
    if cls is None:
        return np.asarray(a)
    return ops_for(cls.name).to_host(a)


def asarray(a: Any, like: Any = None, dtype: Any = None) -> Any:
    """Move ``a`` onto the backend and device of ``like`` (a layer, a model or an array).

    Parameters
    ----------
    a : array or array-like
        Any supported array, a list, or a scalar.
    like : Layer, Backend, array, str or None
        Where ``a`` should go; a backend name also works. None: the default backend.
    dtype : str or dtype, optional
        Cast to this dtype. By default the dtype is kept (integer labels stay
        integers; numpy's float64 stays float64; on JAX without its 64-bit mode
        float64 becomes float32, JAX's own rule, while ``dtype="float64"``
        raises the ``ValueError`` that says how to enable it).

    Examples
    --------
    >>> import nu_xp
    >>> model = nu_xp.Linear(2, 1, seed=0)
    >>> nu_xp.asarray([[1.0, 2.0]], like=model, dtype=model.dtype).dtype
    dtype('float32')
    """
    target = _target_backend(like)
    if dtype is not None:
        target.ops.check_dtype(dtype_name(dtype))  # float64 asked of JAX without 64-bit mode: ValueError, as layers
        dtype = getattr(target.xp, dtype_name(dtype))
    if target.owns(a):
        if dtype is None or a.dtype == dtype:
            return a
        return target.ops.astype(a, dtype)
    host = to_host(a)
    if host.dtype == object:
        raise TypeError(f"cannot convert {describe(a)} of Python objects into an array")
    return target.ops.asarray(host, dtype=dtype, device=target.device)


def _target_backend(like: Any) -> Backend:
    if like is None or isinstance(like, (str, Backend)):
        return get_backend(like)
    backend = getattr(like, "backend", None)
    if isinstance(backend, Backend):
        return backend
    if ops_class_of(like) is not None:
        return backend_of(like)
    if hasattr(like, "__name__"):
        return get_backend(like)
    raise TypeError(f"like= must be a layer, an array or a backend name, got {type(like).__name__}")
