"""``model.summary(input_shape)``: one row per layer (name, type, output shape, parameters) and the totals.

The shapes come from one forward pass of zeros, under ``no_grad()``, through
a deep copy of the model in eval mode, so the model itself is left exactly as
it was (no running statistics updated, no saved arrays touched).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..grad_mode import no_grad
from ..validation import check_positive_int, check_sample_shape
from .probe import probe_input

__all__ = ["summary"]


def summary(model: Any, input_shape: tuple[int, ...], batch_size: int = 1) -> str:
    """The table, for inputs of shape ``(batch_size, *input_shape)`` (the batch axis is shown as ``N``)."""
    shape = check_sample_shape("summary", input_shape)
    check_positive_int("batch_size", batch_size)
    # two samples at least: a normalization without running statistics needs a batch to normalize over
    batch_size = max(int(batch_size), 2)
    probe = copy.deepcopy(model).eval()
    rows: list[tuple[str, str, str, int]] = []
    _record(probe, "", rows, top=True)
    be = probe.backend
    x = probe_input("summary", probe, shape, batch_size)
    with no_grad():
        out = probe(x)
    shapes = {name: text for name, text in getattr(probe, "_summary_shapes", {}).items()}
    total = model.num_parameters()
    buffers = sum(int(np.prod(b.shape)) for b in model.buffers())
    table = [("layer", "type", "output shape", "parameters")]
    for name, kind, _, count in rows:
        table.append((name, kind, shapes.get(name, "?"), f"{count:,}"))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    text = [_fmt(table[0], widths), line, *(_fmt(row, widths) for row in table[1:]), line]
    text.append(f"input (N, {', '.join(map(str, shape))}) → output {_shape(out)}")
    text.append(
        f"total parameters: {total:,} ({be.dtype_name}, {total * np.dtype(be.dtype_name).itemsize / 2**20:.2f} MiB)"
        + (f"; buffers: {buffers:,}" if buffers else "")
        + f"; on {be.name} ({be.device_name})"
    )
    return "\n".join(text)


def _fmt(row: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))


def _shape(x: Any) -> str:
    if isinstance(x, (tuple, list)):  # a recurrent layer's (output, state): the output's shape, then "…"
        return _shape(x[0]) + " + …" if x else "()"
    return "(" + ", ".join(["N", *map(str, tuple(x.shape)[1:])]) + ")"


def _record(layer: Any, name: str, rows: list, top: bool = False) -> None:
    """A row for every layer below ``layer`` (containers too), and a hook that records each one's output shape."""
    root = layer
    stack = [(layer, name)]
    while stack:
        current, path = stack.pop(0)
        children = list(current.named_slots())
        if not (top and current is root):
            rows.append((path, type(current).__name__, "", current.num_parameters()))
            _hook(current, path, root)
        stack[0:0] = [(child, f"{path}.{child_name}" if path else child_name) for child_name, child in children]


def _hook(layer: Any, path: str, root: Any) -> None:
    forward = layer.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        out = forward(*args, **kwargs)
        root.__dict__.setdefault("_summary_shapes", {})[path] = _shape(out)
        return out

    layer.forward = recording_forward
