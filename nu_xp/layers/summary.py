"""``model.summary(input_shape)``: one row per layer (name, type, output shape, parameters) and the totals.

The shapes come from two forward passes of zeros (two batch sizes, so the
batch axis is found wherever it stands), under ``no_grad()``, through a deep
copy of the model in eval mode, so the model itself is left exactly as it was
(no running statistics updated, no saved arrays touched). The table comes
back as a [`Summary`][], a ``str`` whose ``repr`` is the table itself.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..grad_mode import no_grad
from ..validation import check_positive_int, check_sample_shape
from .probe import probe_input

__all__ = ["Summary", "summary"]


class Summary(str):
    """The table as a string that shows itself: at a prompt or in a notebook, ``model.summary(shape)`` alone
    displays the table (Keras prints it); ``print`` and string methods work as on any ``str``."""

    def __repr__(self) -> str:
        return str(self)


def summary(model: Any, input_shape: tuple[int, ...], batch_size: int = 1) -> Summary:
    """The table, for inputs of shape ``(batch_size, *input_shape)`` (the batch axis is shown as ``N``).

    The copy runs twice, on batches of two sizes: an axis whose size follows
    the batch is the batch axis, wherever it stands (``h_n`` of an LSTM is
    ``(1, N, H)``).
    """
    shape = check_sample_shape("summary", input_shape)
    check_positive_int("batch_size", batch_size)
    # two samples at least: a normalization without running statistics needs a batch to normalize over
    batch_size = max(int(batch_size), 2)
    probe = copy.deepcopy(model).eval()
    rows: list[tuple[str, str, str, int]] = []
    _record(probe, "", rows, top=True)
    be = probe.backend
    runs = []
    for batch in (batch_size, batch_size + 1):
        x = probe_input("summary", probe, shape, batch)
        probe.__dict__["_summary_shapes"] = {}
        with no_grad():
            out = probe(x)
        runs.append((probe.__dict__.pop("_summary_shapes"), _shapes(out)))
    (first, out_a), (second, out_b) = runs
    total = model.num_parameters()
    buffers = sum(int(np.prod(b.shape)) for b in model.buffers())
    table = [("layer", "type", "output shape", "parameters")]
    for name, kind, _, count in rows:
        text = _text(first[name], second[name]) if name in first and name in second else "?"
        table.append((name, kind, text, f"{count:,}"))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    lines = [_fmt(table[0], widths), line, *(_fmt(row, widths) for row in table[1:]), line]
    lines.append(f"input (N, {', '.join(map(str, shape))}) → output {_text(out_a, out_b)}")
    lines.append(
        f"total parameters: {total:,} ({be.dtype_name}, {total * np.dtype(be.dtype_name).itemsize / 2**20:.2f} MiB)"
        + (f"; buffers: {buffers:,}" if buffers else "")
        + f"; on {be.name} ({be.device_name})"
    )
    return Summary("\n".join(lines))


def _fmt(row: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))


def _shapes(x: Any) -> Any:
    """An output's shape, or a tuple of the shapes of its parts (a recurrent layer's ``(output, (h, c))``)."""
    if isinstance(x, (tuple, list)):
        return tuple(_shapes(part) for part in x)
    return None if x is None else ("shape", tuple(x.shape))  # None: attention weights not asked for


def _text(a: Any, b: Any) -> str:
    """``(N, 19, 64)``: the shapes of two runs, with ``N`` where the size followed the batch."""
    if a is None:
        return "None"
    if a and a[0] == "shape":
        return "(" + ", ".join("N" if da != db else str(da) for da, db in zip(a[1], b[1])) + ")"
    return "(" + ", ".join(_text(pa, pb) for pa, pb in zip(a, b)) + ("," if len(a) == 1 else "") + ")"


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
        root.__dict__.setdefault("_summary_shapes", {})[path] = _shapes(out)
        return out

    layer.forward = recording_forward
