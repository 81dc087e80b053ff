"""The input ``summary`` and ``export_onnx`` run a model on: checked for size before it is made.

Both learn a model's shapes by running a copy of it on a small batch of
zeros (or random values) of the shape the caller gives. ``input_shape`` is
one sample's shape, so a wrong one (a batch size in it, a flattened image
where the model wants channels) can ask for any amount of memory: the probe
refuses to be larger than ``MAX_PROBE_BYTES`` (1 GiB) with a ``ValueError`` that
names the shape and the model's first layer, instead of a ``MemoryError``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MAX_PROBE_BYTES", "probe_input"]

#: the most memory a probe input may take (1 GiB)
MAX_PROBE_BYTES = 2**30


def probe_input(caller: str, model: Any, shape: tuple[int, ...], batch: int, *, random: bool = False) -> Any:
    """``batch`` samples of ``shape`` on ``model``'s backend and device: int64 zeros when the model takes indices,
    else zeros (or standard normal values from seed 0) in its dtype."""
    be = model.backend
    integer = model.input_is_indices()
    dtype = np.dtype(np.int64 if integer else be.dtype_name)
    count = batch * math.prod(shape)
    if count * dtype.itemsize > MAX_PROBE_BYTES:
        raise ValueError(
            f"{caller}: input_shape {shape} makes a probe of {batch} samples, {count:.3g} values "
            f"({count * dtype.itemsize / 2**30:.3g} GiB of {dtype.name}), more than the {MAX_PROBE_BYTES // 2**30} GiB "
            f"allowed; input_shape is one sample's shape without the batch axis (the model's first layer is "
            f"{model.first_layer()!r})"
        )
    if random and not integer:
        host = np.random.default_rng(0).standard_normal((batch, *shape)).astype(dtype)
    else:
        host = np.zeros((batch, *shape), dtype)
    return be.ops.asarray(host, device=be.device)
