"""What a forward keeps for its backward: one node per call of a layer, and ``no_grad()``.

Every call of a layer's ``forward`` outside [`no_grad`][] makes a node:
the layer, what its forward kept (``Layer.save_for_backward``) and the
nodes of the layers it called inside. Its ``backward`` consumes that node:
``Layer.saved_tensors()`` reads what the forward kept, and the layers it
calls backward inside consume their nodes from it. The rule, the same for
every layer and loss, built-in or written by a user:

* **where a node goes.** A call inside another layer's forward (a
  ``Sequential``'s, a user's composite) belongs to that call's node; a call
  at the top level (``model(x)``, or a sub-layer called on its own) goes on
  the layer's own list of *pending* forwards. A call made inside a
  backward (recomputation) belongs to that backward's node.
* **which node a backward consumes.** Inside another layer's backward, the
  latest unconsumed node of this layer in the caller's node; at the top
  level, the layer's latest pending forward. So backward calls in the
  reverse order of the forward calls get PyTorch's gradients, inside one
  model (a layer used at several places) and across top-level calls (a
  siamese model ``model(a); model(b); model.backward(gb); model.backward(ga)``,
  truncated backpropagation through time), and a sub-layer called on its
  own between a model's forward and backward never disturbs the model's.
* **how long.** A node lives until its backward consumes it. A layer keeps
  at most ``MAX_PENDING`` (16) top-level forwards waiting for a backward; a
  newer one lets the oldest go, so forwards that are never followed by a
  backward (inference outside ``no_grad``) hold bounded memory.
* **errors.** A backward that cannot be matched to its forward raises
  ``RuntimeError`` saying why (no forward pending, the forward let go, a
  forward under ``no_grad``, a sub-layer whose forward did not run inside
  its caller's forward), never a silently wrong gradient. A backward that
  fails before it consumed any sub-layer's node (a gradient of the wrong
  shape) leaves its node pending, so it can be called again.

A layer's own methods run inside its call: ``super().forward(x)`` in a
subclass does not make a second node. ``no_grad()`` (and ``predict``,
``evaluate``, ``summary``) makes no node at all. The grad mode and the nodes
being run are per thread (``threading.local``), as PyTorch's grad mode is;
the nodes themselves are plain values, which is what lets a whole training
step be traced (``jax.jit``): nothing here reads an array's value.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "CONSUMED",
    "INNER",
    "LAYER",
    "MAX_PENDING",
    "SAVED",
    "THREAD",
    "GradState",
    "Node",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
    "take",
    "tracked_backward",
    "tracked_forward",
]

#: the most top-level forwards a layer keeps waiting for their backward; a newer one lets the oldest go
MAX_PENDING = 16


#: A node is one call of a layer, as a list ``[layer, saved, inner, consumed]`` (the cheapest record Python
#: makes, and there is one per call of every layer): ``node[LAYER]`` the layer called, ``node[SAVED]`` what its
#: forward kept (a tuple, or None), ``node[INNER]`` the nodes of the calls made inside it, in call order (a list,
#: or None), ``node[CONSUMED]`` whether a backward consumed one of them (then a failed backward cannot be retried).
LAYER, SAVED, INNER, CONSUMED = 0, 1, 2, 3
Node = list


def take(outer: Node, layer: Any) -> tuple[Node, int]:
    """``(node, index)``: the latest unconsumed call of ``layer`` made inside the call ``outer``, removed from it."""
    inner = outer[INNER]
    if inner:
        for index in range(len(inner) - 1, -1, -1):
            if inner[index][LAYER] is layer:
                outer[CONSUMED] = True
                return inner.pop(index), index
    caller = type(outer[LAYER]).__name__
    name = type(layer).__name__
    raise RuntimeError(
        f"{name}.backward was called inside {caller}.backward, but {caller}'s forward did not call {name} "
        f"(or called it fewer times than its backward does, or under nu_xp.no_grad()): a backward inside "
        f"{caller}.backward needs a forward of the same layer inside {caller}'s forward"
    )


class GradState:
    """One thread's grad mode: whether forwards keep anything, and the nodes being run forward and backward."""

    __slots__ = ("backward", "enabled", "forward")

    def __init__(self) -> None:
        self.enabled = True
        self.forward: list | None = None
        self.backward: list | None = None


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.grad = GradState()


#: ``THREAD.grad`` is the calling thread's [`GradState`][]. Hot code reads it once per call
#: (one thread-local lookup) and then plain slots, which cost a tenth of a thread-local attribute.
THREAD = _PerThread()


def _signature_text(fn: Callable[..., Any]) -> tuple[str, str, dict[str, Any]] | None:
    """``(parameters, arguments, defaults)`` to write a wrapper with ``fn``'s own signature, or None.

    ``def f(self, grad, *, input_grad=True)`` gives ``("self, grad, *, input_grad=_d0",
    "self, grad, input_grad=input_grad", {"_d0": True})``. A wrapper that names its
    parameters, instead of taking ``*args, **kwargs``, costs a quarter less per call
    (no tuple and dict packed and unpacked), and every layer call goes through one.
    None for a signature with ``*args`` or ``**kwargs`` (then the wrapper takes those).
    """
    params: list[str] = []
    args: list[str] = []
    defaults: dict[str, Any] = {}
    star = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name.startswith("_"):
            return None
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        text = p.name
        if p.default is not p.empty:
            defaults[f"_d{len(defaults)}"] = p.default
            text += f"=_d{len(defaults) - 1}"
        params.append(text)
        args.append(f"{p.name}={p.name}" if p.kind is p.KEYWORD_ONLY else p.name)
    return ", ".join(params), ", ".join(args), defaults


def _wrapper(fn: Callable[..., Any], body: Callable[..., Any]) -> Callable[..., Any]:
    """``lambda *a, **k: body(fn, call, *a, **k)`` written out with ``fn``'s signature (see [`_signature_text`][]).

    ``body(fn, call)`` returns the wrapper's code as text, where ``call`` is
    the text of the call to ``fn`` with the wrapper's own arguments.
    """
    found = _signature_text(fn)
    params, args, defaults = found if found is not None else ("self, *args, **kwargs", "self, *args, **kwargs", {})
    namespace = {**defaults, "fn": fn, "THREAD": THREAD, "LAYER": LAYER, "INNER": INNER, "CONSUMED": CONSUMED,
                 "MAX_PENDING": MAX_PENDING, "take": take}  # fmt: skip
    exec(f"def call({params}):\n{body(f'fn({args})')}", namespace)
    return functools.wraps(fn)(namespace["call"])


def _forward_body(call: str) -> str:
    return f"""
    state = THREAD.grad
    outer = state.forward
    if not state.enabled or (outer is not None and outer[LAYER] is self):  # no_grad, or super().forward
        return {call}
    node = [self, None, None, False]
    state.forward = node
    try:
        out = {call}
    finally:
        state.forward = outer
    if outer is None:
        outer = state.backward  # a call made inside a backward (a recomputation) belongs to it
    if outer is None:  # a top-level call: pending on the layer until its backward
        pending = self._pending
        if type(pending) is list and len(pending) < MAX_PENDING:
            pending.append(node)
        else:
            self._keep_pending(node)
    elif outer[INNER] is None:
        outer[INNER] = [node]
    else:
        outer[INNER].append(node)
    return out
"""


def _backward_body(call: str) -> str:
    return f"""
    state = THREAD.grad
    outer = state.backward
    index = -1  # where the node was, if a failed backward puts it back (-1: at the end)
    if outer is None:  # a top-level backward: the layer's latest pending forward
        pending = self._pending
        node = pending.pop() if pending else self._take_pending()
    elif outer[LAYER] is self:  # super().backward(...): the same call
        return {call}
    else:
        inner = outer[INNER]
        if inner and inner[-1][LAYER] is self:  # the common case: backwards in the reverse order of forwards
            node = inner.pop()
            outer[CONSUMED] = True
        else:
            node, index = take(outer, self)
    state.backward = node
    try:
        return {call}
    except BaseException:
        if not node[CONSUMED]:  # it consumed nothing: the same backward may be called again
            if outer is None:
                self._keep_pending(node)
            elif index < 0:
                outer[INNER].append(node)
            else:
                outer[INNER].insert(index, node)
        raise
    finally:
        state.backward = outer
"""


def tracked_forward(forward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward`` as one call of its layer: it runs inside a new node (see the module docstring).

    ``Layer.__init_subclass__`` wraps every class's own ``forward`` with it,
    built-in or not, so ``layer(x)`` and ``layer.forward(x)`` are the same call.
    The wrapper (``_forward_body``) takes ``forward``'s own signature: it makes a
    node, runs ``forward`` with the node as the thread's running call, and puts
    the node in the call it ran inside, or on the layer's pending forwards.
    """
    return _wrapper(forward, _forward_body)


def tracked_backward(backward: Callable[..., Any]) -> Callable[..., Any]:
    """``backward`` consuming the node of its forward (see the module docstring).

    The wrapper (``_backward_body``) takes ``backward``'s own signature: it takes
    the node (from the running backward's node, or the layer's pending forwards),
    runs ``backward`` with it as the thread's running backward, and puts it back
    if ``backward`` raised before consuming anything.
    """
    return _wrapper(backward, _backward_body)


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
