"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import numpy as np

import nu_xp


def on(backend: str, a: Any, dtype: str | None = "float64") -> Any:
    """``a`` as an array of ``backend`` (float64 by default; dtype=None keeps it)."""
    return nu_xp.asarray(np.asarray(a), like=backend, dtype=dtype)


def host(a: Any) -> np.ndarray:
    return nu_xp.to_host(a)


def torch_reference_grads(torch_module: Any, fn: Any, *arrays: np.ndarray) -> tuple[Any, list[np.ndarray]]:
    """Value of ``fn(*tensors)`` and the autograd gradients w.r.t. every float input (float64, CPU)."""
    tensors = [
        torch_module.tensor(a, dtype=torch_module.float64, requires_grad=True)
        if np.asarray(a).dtype.kind == "f"
        else torch_module.tensor(a)
        for a in arrays
    ]
    out = fn(*tensors)
    return out, tensors
