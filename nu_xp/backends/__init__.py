"""Backends: which array library (and device, and dtype) an object computes with.

* [`ops`][] — ``Ops``, the base class: what nu_xp needs from an array
  library, each hot-path kernel defaulting to the array-API standard;
* [`numpy_ops`][], [`torch_ops`][], [`cupy_ops`][], [`strict_ops`][], [`jax_ops`][] —
  one class per backend, holding everything particular to it;
* [`numpy_windows`][] — NumPy's own convolution and pooling kernels (batch axis last),
  [`taps`][] — the kernel taps' geometry they share with the layers,
  [`host_memory`][] — glibc's malloc thresholds for a training loop's big arrays;
* [`registry`][] — names → classes (one line per backend);
* [`backend`][] — ``Backend`` (ops, device, dtype) and the default
  (``get_backend``, ``set_backend``, ``use_backend``);
* [`arrays`][] — ``ops_of`` an array (its namespace: ``ops_of(x).xp``), ``asarray``, ``to_host``;
* [`dtypes`][] — dtype names and kinds.
"""

from .arrays import asarray, backend_of, describe, is_writeable, ops_of, to_host
from .backend import Backend, get_backend, same_device, set_backend, use_backend
from .dtypes import FLOAT_DTYPES, dtype_kind, dtype_name
from .ops import Ops
from .registry import BACKENDS, OPS_CLASSES, normalize_name, ops_for

__all__ = [
    "BACKENDS",
    "FLOAT_DTYPES",
    "OPS_CLASSES",
    "Backend",
    "Ops",
    "asarray",
    "backend_of",
    "describe",
    "dtype_kind",
    "dtype_name",
    "get_backend",
    "is_writeable",
    "normalize_name",
    "ops_for",
    "ops_of",
    "same_device",
    "set_backend",
    "to_host",
    "use_backend",
]
