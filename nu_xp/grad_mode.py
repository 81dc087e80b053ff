"""Gradient mode: ``no_grad()``, and the passes that let one layer serve several places of a model.

What a layer's ``forward`` keeps for its ``backward`` (``Layer.save_for_backward``)
goes on a small stack that belongs to the layer; ``backward`` pops the top
entry (``Layer.saved_tensors``). Two rules make that both correct and cheap:

* **no_grad**: inside ``with nu_xp.no_grad():`` (and in ``predict``,
  ``evaluate``, ``summary``) nothing is kept, so inference neither costs
  memory nor disturbs a forward whose backward is still pending;
* **passes**: a *pass* starts whenever a forward begins at the top level (a
  model, or a layer called on its own). Within one pass a layer used at ``k``
  places keeps ``k`` entries, popped in reverse order by the ``k`` backward
  calls (the order ``Sequential`` and ``Residual`` run them), exactly as
  PyTorch's graph would differentiate the same module reused. The first
  entry a layer keeps in a new pass drops what it kept in older passes and
  never got a backward for, so a model run forward again and again (in train
  mode, without ``no_grad``) still holds one pass's arrays, as before.

The state is per thread (``threading.local``), as PyTorch's grad mode is.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["THREAD", "GradState", "enable_grad", "in_pass", "is_grad_enabled", "no_grad", "set_grad_enabled"]


class GradState:
    """One thread's grad mode: whether forwards keep anything, how deep the current forward is, its pass."""

    __slots__ = ("depth", "enabled", "pass_id")

    def __init__(self) -> None:
        self.enabled = True
        self.depth = 0
        self.pass_id = 0


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.grad = GradState()


#: ``THREAD.grad`` is the calling thread's [`GradState`][]. Hot code reads it once per call
#: (one thread-local lookup) and then plain slots, which cost a tenth of a thread-local attribute.
THREAD = _PerThread()


def in_pass(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` as one step of the current pass (it starts a pass when none is running).

    Everything a layer runs inside keeps its saved arrays in the same pass, so a
    layer used at several places gets one entry per use. ``Layer.__call__``,
    ``Sequential.forward`` and users' composite layers run their forwards through it.
    """
    state = THREAD.grad
    if state.depth == 0:
        state.pass_id += 1
    state.depth += 1
    try:
        return call(*args, **kwargs)
    finally:
        state.depth -= 1


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``: forwards keep what backward needs."""
    return THREAD.grad.enabled


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Context manager: forwards keep what backward needs iff ``mode`` (restored on exit)."""
    state = THREAD.grad
    previous = state.enabled
    state.enabled = bool(mode)
    try:
        yield
    finally:
        state.enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager for inference: no forward inside keeps anything for backward.

    As ``torch.no_grad()``: outputs are the same, memory is not spent on
    saved activations, and a pending backward of an earlier forward is left
    intact. A ``backward`` of a forward made inside raises ``RuntimeError``.

    Examples
    --------
    >>> import nu_xp
    >>> layer = nu_xp.Linear(2, 1, seed=0)
    >>> with nu_xp.no_grad():
    ...     y = layer(nu_xp.asarray([[1.0, 2.0]]))
    >>> layer.pending_backwards()
    0
    """
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Context manager: forwards keep what backward needs, even inside ``no_grad()``."""
    return set_grad_enabled(True)
