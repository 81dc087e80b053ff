"""Argument checks shared by layers, optimizers and ``fit``: messages name the parameter."""

from __future__ import annotations

import math
import operator
from typing import Any, overload

import numpy as np

__all__ = ["check_bool", "check_number", "check_positive_int"]


@overload
def check_positive_int(name: str, value: Any) -> int: ...
@overload
def check_positive_int(name: str, value: Any, *, allow_none: bool) -> int | None: ...
def check_positive_int(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    """``int(value)`` for a positive integer (or None when allowed), else ``ValueError`` naming ``name``."""
    if allow_none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is True or False (a numpy bool too), else ``TypeError`` naming ``name``.

    Not ``bool(value)``: ``"no"`` and ``[True]`` are truthy, and a flag read from a file must not become True.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_number(name: str, value: Any, low: float = 0.0, high: float = math.inf, *, open_low: bool = False) -> float:
    """``float(value)`` for a finite real number in ``[low, high]`` (``(low, high]`` with ``open_low``).

    Raises ``TypeError`` for a non-number and ``ValueError`` for one out of range, infinite or NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not (low < value if open_low else low <= value) or not value <= high or math.isnan(value):
        lo = "(" if open_low else "["
        raise ValueError(f"{name} must be in {lo}{low}, {high}], got {value!r}")
    return value


def check_sample_shape(caller: str, input_shape: Any) -> tuple[int, ...]:
    """One sample's shape (an int or a sequence of positive ints) as a tuple; errors name ``caller``."""
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    try:
        if any(isinstance(n, bool) for n in input_shape):
            raise TypeError
        shape = tuple(operator.index(n) for n in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"{caller}: input_shape must be ints (one sample's shape), got {input_shape!r}") from None
    if any(n < 1 for n in shape):
        raise ValueError(f"{caller}: input_shape must hold positive sizes (one sample's shape), got {input_shape!r}")
    return shape
