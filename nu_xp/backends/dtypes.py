"""Dtype names and kinds, the same for every backend."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FLOAT_DTYPES", "dtype_kind", "dtype_name"]

#: the parameter dtypes nu_xp supports
FLOAT_DTYPES = ("float32", "float64")


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``"float32"``, ``numpy.float32``, ``torch.float32``, ``xp.float32``…"""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, np.dtype):
        return dtype.name
    if not isinstance(dtype, type):  # another library's dtype object (torch.int64): its text, no exception raised
        return str(dtype).rsplit(".", 1)[-1]  # (torch.compile cannot trace numpy raising on one)
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]


_KIND_BY_DTYPE: dict[tuple[type, Any], str] = {}


def dtype_kind(xp: Any, dtype: Any) -> str:
    """``"f"`` (real floating), ``"i"`` (integral), ``"b"`` (bool) or ``"c"`` (complex), cached per dtype.

    ``xp.isdtype`` costs about a microsecond; the hot paths of the losses ask
    for every batch, so the answer is kept in a dict.
    """
    key = (type(dtype), dtype)  # the type first: never compare dtypes of two libraries
    try:
        return _KIND_BY_DTYPE[key]
    except (KeyError, TypeError):
        pass
    kinds = (("f", "real floating"), ("i", "integral"), ("b", "bool"), ("c", "complex floating"))
    kind = next((k for k, name in kinds if xp.isdtype(dtype, name)), "?")
    try:
        _KIND_BY_DTYPE[key] = kind
    except TypeError:  # an unhashable dtype object
        pass
    return kind
