"""``Layer``: the base of every layer, loss and model, and ``check_grad``.

Notation used by every layer: ``x`` is a layer's input, ``y`` its output,
``g = dL/dy`` the gradient that arrives in ``backward``; ``backward`` returns
``dL/dx`` and adds ``dL/dθ`` into ``θ.grad`` for every parameter ``θ``.

A layer owns its state, as a ``torch.nn.Module`` does:

* **parameters** ([`Parameter`][nu_xp.layers.parameter.Parameter] attributes): trained, saved, loaded;
* **buffers** ([`Layer.register_buffer`][nu_xp.layers.base.Layer.register_buffer]): arrays that are saved and
  loaded but never trained (BatchNorm's running statistics);
* **extra state** ([`Layer.get_extra_state`][nu_xp.layers.base.Layer.get_extra_state] /
  [`Layer.set_extra_state`][nu_xp.layers.base.Layer.set_extra_state]):
  anything else a checkpoint must restore, as JSON (Dropout's generator);
* **sub-layers**: attributes that are layers, or a
  [`LayerList`][nu_xp.layers.containers.LayerList]/[`LayerDict`][nu_xp.layers.containers.LayerDict] of them;
* **what a forward keeps for its backward**
  ([`Layer.save_for_backward`][nu_xp.layers.base.Layer.save_for_backward], read back by
  [`Layer.saved_tensors`][nu_xp.layers.base.Layer.saved_tensors]): held by one node per call, the rule in
  [`nu_xp.grad_mode`][nu_xp.grad_mode];
* **config** ([`Layer.get_config`][nu_xp.layers.base.Layer.get_config]): the constructor arguments that
  rebuild it, checked by ``Layer.parameter_shapes`` when a file is loaded.

The tree walks are PyTorch's (``named_parameters``, ``named_buffers``,
``named_children``, ``named_modules`` yield ``(name, item)`` pairs in
PyTorch's order). State dicts live in [`state`][nu_xp.layers.state], the
registry of loadable classes in [`registry`][nu_xp.layers.registry].
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..backends import Backend, asarray, describe, get_backend, to_host
from ..formats import read_weights
from ..grad_mode import LAYER, MAX_PENDING, SAVED, THREAD, Node, no_grad, tracked_backward, tracked_forward
from ..validation import check_positive_int
from . import state
from .parameter import Parameter, tree_changed

__all__ = ["Layer", "check_grad"]

L = TypeVar("L", bound="Layer")

#: constructor arguments that ``repr`` shows by value, as PyTorch does (``Conv2d(1, 6, kernel_size=(5, 5))``)
_SIZE_ARGUMENTS = frozenset(
    {"in_channels", "out_channels", "num_features", "num_embeddings", "embedding_dim", "normalized_shape"}
)
#: attributes of nu_xp's own bookkeeping, never sub-layers
_INTERNAL = frozenset({"_pending", "_buffers", "_layers"})


def check_grad(layer: Layer, grad: Any, shape: tuple[int, ...], like: Any) -> Any:
    """``grad`` if it can be dL/d(output) of ``layer``: an array like ``like``, of the output's ``shape``.

    The one gradient check of every ``backward``. ``like`` is either the
    output's array type (parameter-free layers: a gradient of another backend
    is a ``TypeError``) or the layer's [`Backend`][nu_xp.backends.backend.Backend] (layers with
    parameters: a real gradient of another dtype is cast to theirs, one of
    another backend or device refused, as [`Backend.check`][nu_xp.backends.backend.Backend.check] does for inputs).
    A gradient of another shape is a ``ValueError``, never a silent broadcast.
    The common case costs two or three comparisons, so every ``backward`` affords it.
    """
    if isinstance(like, Backend):
        if type(grad) is like.array_type and grad.dtype == like.dtype and grad.shape == shape:
            return grad
        grad = like.check(grad, role=f"{type(layer).__name__}.backward: grad")
    elif type(grad) is not like:
        raise TypeError(
            f"{type(layer).__name__}.backward: grad is {describe(grad)}, but the layer's output was not; "
            "pass dL/d(output) as an array like the output"
        )
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(
            f"{type(layer).__name__}.backward: grad has shape {tuple(grad.shape)}, but the output had shape "
            f"{tuple(shape)}; grad must be dL/d(output), of the output's shape"
        )
    return grad


def _refuse_plain_container(owner: Layer, name: str, value: Any) -> None:
    """``TypeError`` when a plain list, tuple or dict holds layers: nothing would train or save them."""
    items = value.values() if isinstance(value, dict) else value
    if any(isinstance(item, Layer) for item in items):
        kind, fix = ("dict", "LayerDict") if isinstance(value, dict) else (type(value).__name__, "LayerList")
        raise TypeError(
            f"{type(owner).__name__}.{name} is a plain {kind} holding layers: parameters(), save and .to() "
            f"would not see them; hold them in nu_xp.{fix}(...) (PyTorch's nn.Module{fix[5:]}), e.g. "
            f"self.{name} = nu_xp.{fix}({'{...}' if fix == 'LayerDict' else '[...]'})"
        )


class Layer:
    """Base class of every layer, loss and model.

    A layer implements ``forward(x)`` (compute ``y`` and keep what backward
    needs with [`save_for_backward`][]) and ``backward(grad, *, input_grad=True)``
    (given ``dL/dy``, read back what forward kept with [`saved_tensors`][],
    accumulate ``dL/dθ`` into each ``Parameter.grad`` and return ``dL/dx``;
    ``input_grad=False`` may skip ``dL/dx`` and return None, which a model's
    first layer never needs). A loss ([`nu_xp.losses.Loss`][nu_xp.losses.base.Loss]) is a Layer
    too, with ``forward(pred, target)`` and ``backward(grad=None)``: that is
    why the base signatures here take ``*args, **kwargs``.

    Every class's own ``forward`` and ``backward`` are wrapped, when the class
    is made, so that each call is one node of [`nu_xp.grad_mode`][nu_xp.grad_mode]:
    ``layer(x)`` and ``layer.forward(x)`` are the same call, and a backward
    reads what *its* forward kept, whatever ran in between.

    Attributes that are [`Parameter`][nu_xp.layers.parameter.Parameter] or [`Layer`][] instances are
    found automatically by [`named_parameters`][], as in ``torch.nn.Module``.

    Parameters
    ----------
    backend : str or module, optional
        Where the parameters live: ``"numpy"``, ``"torch"``, ``"cupy"``, ``"array_api_strict"``, ``"jax"``
        (or the module); default: the current backend (``nu_xp.set_backend``).
    device : str or object, optional
        The backend's device (``"cuda"``, ``"cuda:1"``, ``"cpu"``…); default: the backend's.
    dtype : str or dtype, optional
        ``"float32"`` (default, or what ``set_backend`` chose) or ``"float64"``.
    """

    training: bool = True
    _backend: Backend | None = None
    #: this layer's top-level forwards that wait for their backward, oldest first (a list once there is one)
    _pending: list[Node] | tuple[()] = ()
    #: how many top-level forwards were let go without a backward (for the error a late backward gets)
    _let_go: int = 0
    #: True for losses: they are Layers, but never part of a saved model
    is_loss: ClassVar[bool] = False
    #: True for containers, whose constructor takes the sub-layers (``Sequential(*layers)``)
    holds_layers: ClassVar[bool] = False
    #: whether ``backward`` takes ``input_grad=`` (found from its signature)
    accepts_input_grad: ClassVar[bool] = False
    #: True for layers whose input is integer indices (``Embedding``): a model starting with one keeps integer data
    takes_indices: ClassVar[bool] = False
    #: positions of a tuple output that take no gradient (``MultiheadAttention``'s weights: ``(1,)``)
    outputs_without_grad: ClassVar[tuple[int, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "forward" in own:
            cls.forward = tracked_forward(own["forward"])  # type: ignore[method-assign]
        if "backward" in own:
            cls.backward = tracked_backward(own["backward"])  # type: ignore[method-assign]
        cls.accepts_input_grad = "input_grad" in inspect.signature(cls.backward).parameters

    def __init__(self, *, backend: Any = None, device: Any = None, dtype: Any = None) -> None:
        self._backend = get_backend(backend, device, dtype)
        self._buffers: dict[str, Any] = {}
        self.training = True

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, (Layer, Parameter)) or isinstance(vars(self).get(name), (Layer, Parameter)):
            tree_changed()  # what containers cache about their sub-layers (which of them train) is out of date
        elif type(value) in (list, tuple, dict) and name not in _INTERNAL:
            _refuse_plain_container(self, name, value)
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ computing
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output for ``x`` (a loss: for ``pred, target``) and keep what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        """Given ``grad = dL/d(output)``, accumulate parameter gradients and return ``dL/d(input)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``forward(...)``: one call of this layer (see [`nu_xp.grad_mode`][nu_xp.grad_mode])."""
        return self.forward(*args, **kwargs)

    def backward_into(self, grad: Any, input_grad: bool) -> Any:
        """``backward(grad, input_grad=input_grad)`` where supported, else ``backward(grad)``.

        Lets containers pass ``input_grad=False`` to any first layer, including
        user layers whose ``backward`` has no such keyword.
        """
        if not input_grad and self.accepts_input_grad:
            return self.backward(grad, input_grad=False)
        return self.backward(grad)

    # ------------------------------------------------------------------ what forward keeps for backward
    def save_for_backward(self, *values: Any) -> None:
        """Keep ``values`` for the ``backward`` of this call (nothing under [`nu_xp.no_grad`][nu_xp.grad_mode.no_grad]).

        Called once per forward, from inside it: the values go to the node
        of this call, which only this call's backward reads
        ([`saved_tensors`][]).
        """
        state_ = THREAD.grad
        if not state_.enabled:
            return
        node = state_.forward
        if node is None or node[LAYER] is not self:
            raise RuntimeError(
                f"{type(self).__name__}.save_for_backward is called from inside {type(self).__name__}.forward "
                "(it keeps values for the backward of that call)"
            )
        if node[SAVED] is not None:
            raise RuntimeError(
                f"{type(self).__name__}.save_for_backward was called twice in one forward; keep everything its "
                "backward needs in one call"
            )
        node[SAVED] = values

    def saved_tensors(self) -> tuple[Any, ...]:
        """What the forward of the call being differentiated kept ([`save_for_backward`][]), as a tuple.

        Called from inside ``backward``; ``()`` when the forward kept nothing.
        """
        node = THREAD.grad.backward
        if node is None or node[LAYER] is not self:
            raise RuntimeError(
                f"{type(self).__name__}.saved_tensors is called from inside {type(self).__name__}.backward "
                "(it reads what the forward of that call kept)"
            )
        saved = node[SAVED]
        return () if saved is None else saved

    def pending_backwards(self) -> int:
        """How many of this layer's top-level forwards wait for their backward (at most ``grad_mode.MAX_PENDING``)."""
        return len(self._pending)

    def clear_cache(self) -> None:
        """Let go of every pending forward, here and in every sub-layer (``.to()`` does): a backward then raises."""
        for layer in self.modules():
            if layer._pending:
                layer._let_go += len(layer._pending)
                layer.__dict__["_pending"] = []

    def _keep_pending(self, node: Node) -> None:
        """Keep a top-level call's node for its backward, letting the oldest go beyond ``MAX_PENDING``."""
        pending = self._pending
        if not pending:
            self.__dict__["_pending"] = [node]
            return
        pending.append(node)  # type: ignore[union-attr]
        if len(pending) > MAX_PENDING:
            del pending[0]  # type: ignore[union-attr]
            self.__dict__["_let_go"] = self._let_go + 1

    def _take_pending(self) -> Node:
        """The latest pending top-level forward's node, removed; ``RuntimeError`` saying why there is none."""
        if self._pending:
            return self._pending.pop()  # type: ignore[union-attr]
        name = type(self).__name__
        if self._let_go:
            why = (
                f"{self._let_go} of its forwards were let go without a backward: a layer keeps its latest "
                f"{MAX_PENDING} forwards for their backward (nu_xp.grad_mode.MAX_PENDING), and .to() or "
                "clear_cache() lets every one go"
            )
        else:
            why = (
                "call forward first, outside nu_xp.no_grad() (which keeps nothing), once per backward; a forward "
                "run inside another layer's call (a Sequential's, say) is differentiated by that layer's backward"
            )
        raise RuntimeError(f"{name}.backward called before forward (no forward of {name} is pending): {why}")

    def __getstate__(self) -> dict[str, Any]:
        """A copy or pickle of a layer carries no pending forward (what they kept is not a layer's state)."""
        kept = dict(self.__dict__)
        kept.pop("_pending", None)
        kept.pop("_let_go", None)
        return kept

    def __setstate__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    # ------------------------------------------------------------------ the tree (PyTorch's walks)
    def named_slots(self) -> Iterator[tuple[str, Layer]]:
        """``(name, sub-layer)`` for every place holding a sub-layer, a layer held twice listed twice.

        What a model file describes and what parameter names come from;
        containers override it (``Sequential``: ``"0"``, ``"1"``…).
        """
        for name, value in vars(self).items():
            if isinstance(value, Layer):
                yield name, value
            elif type(value) in (list, tuple, dict) and name not in _INTERNAL:
                _refuse_plain_container(self, name, value)  # a plain list that received layers after assignment

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """``(name, sub-layer)`` pairs of the direct sub-layers, each once (as PyTorch)."""
        seen: set[int] = set()
        for name, child in self.named_slots():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Layer]:
        """The direct sub-layers, each once."""
        return (child for _, child in self.named_children())

    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Layer]]:
        """``(name, layer)`` for this layer (name ``prefix``, ``""`` by default) and every layer below it,
        parents before children, each once unless ``remove_duplicate=False`` (PyTorch's ``named_modules``)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self.named_slots():
            yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Layer]:
        """This layer and every layer below it, each once, parents first."""
        return (layer for _, layer in self.named_modules())

    def apply(self: L, fn: Callable[[Layer], Any]) -> L:
        """Call ``fn`` on every sub-layer (children first, recursively) and then on this layer; returns ``self``.

        As ``torch.nn.Module.apply``: ``model.apply(init_weights)``.
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _members(self, kind: str, prefix: str, recurse: bool, remove_duplicate: bool) -> Iterator[tuple[str, Any]]:
        """``(name, item)`` of every parameter (``kind="p"``) or buffer (``"b"``), as PyTorch's ``_named_members``."""
        layers = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen: set[int] = set()
        for layer_name, layer in layers:
            own = layer._own_parameters() if kind == "p" else layer._own_buffers()
            for name, item in own:
                if remove_duplicate:
                    if id(item) in seen:
                        continue
                    seen.add(id(item))
                yield (f"{layer_name}.{name}" if layer_name else name), item

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        return ((k, v) for k, v in vars(self).items() if isinstance(v, Parameter))

    def _own_buffers(self) -> Iterator[tuple[str, Any]]:
        return ((name, getattr(self, name)) for name in getattr(self, "_buffers", {}))

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(name, Parameter)`` pairs; names follow PyTorch (``"weight"``, ``"0.bias"``).

        ``dict(model.named_parameters())`` gives the mapping. A Parameter shared
        by several layers (weight tying) is listed once, under its first name,
        as PyTorch does, so an optimizer steps it once (its gradient is the sum
        over its uses); ``remove_duplicate=False`` lists every name (what
        ``state_dict`` and ``save`` keep). ``recurse=False``: this layer's own only.

        Examples
        --------
        >>> import nu_xp
        >>> model = nu_xp.Sequential(nu_xp.Linear(2, 3, seed=0), nu_xp.ReLU(), nu_xp.Linear(3, 1, seed=1))
        >>> [name for name, p in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
        """
        return self._members("p", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> list[Parameter]:
        """The parameters in [`named_parameters`][] order, each once ([] for parameter-free layers)."""
        return [p for _, p in self._members("p", "", recurse, True)]

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Any]]:
        """``(name, array)`` of every buffer, named like parameters (``"1.running_mean"``)."""
        return self._members("b", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Any]:
        """Every buffer's array, in [`named_buffers`][] order."""
        return (b for _, b in self.named_buffers(recurse=recurse))

    def tied_parameters(self) -> dict[str, str]:
        """``{name: first name}`` for every parameter name that refers to a Parameter listed earlier (ties)."""
        first: dict[int, str] = {}
        ties = {}
        for name, param in self.named_parameters(remove_duplicate=False):
            if id(param) in first:
                ties[name] = first[id(param)]
            else:
                first[id(param)] = name
        return ties

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep ``value`` (an array on this layer's backend) as a buffer: saved and loaded, never trained."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def layer_at(self, name: str) -> Layer:
        """The sub-layer called ``name`` (``""``: this layer; ``"2"``, ``"0.1"`` in containers)."""
        layer: Layer = self
        for part in filter(None, name.split(".")):
            children = dict(layer.named_slots())
            if part not in children:
                raise KeyError(f"{type(layer).__name__} has no sub-layer {part!r}")
            layer = children[part]
        return layer

    def first_layer(self) -> Layer:
        """The layer that sees the model's input first: the first one, in order, that is not a container (empty
        containers, nested or not, are passed over); the model itself when it holds no such layer."""
        return next((m for m in self.modules() if not m.holds_layers), self)  # pre-order: the first leaf

    def input_is_indices(self) -> bool:
        """True when the model's first layer takes integer indices (``Embedding``): its data stays integer."""
        return self.first_layer().takes_indices

    # ------------------------------------------------------------------ parameters as a whole
    def requires_grad_(self: L, requires_grad: bool = True) -> L:
        """Freeze (``False``) or unfreeze every parameter of this layer and its sub-layers; returns ``self``.

        A frozen parameter gets no gradient, so optimizers and ``fit`` leave it
        unchanged (fine-tuning: ``model[0].requires_grad_(False)`` keeps a
        pretrained body while a new head trains).
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Set every ``Parameter.grad`` to None (the next backward starts from zero)."""
        for p in self.parameters():
            p.grad = None

    def num_parameters(self) -> int:
        """Total number of scalars in all parameters."""
        return sum(int(np.prod(p.shape)) for p in self.parameters())

    # ------------------------------------------------------------------ inference
    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Forward pass in eval mode (Dropout off), optionally in batches.

        Unlike ``forward``, ``x`` may live anywhere (a list, a numpy array for a
        torch model…): like ``fit``, it is moved to the model's backend and cast
        to its dtype (integer indices stay integers when the first layer takes them).
        The previous train/eval mode is restored afterwards.
        Returns an array on the model's backend. Nothing is kept for backward
        (it runs under [`nu_xp.no_grad`][nu_xp.grad_mode.no_grad]), so a pending backward is not disturbed.
        """
        check_positive_int("batch_size", batch_size, allow_none=True)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                be = self.backend
                x = asarray(x, like=be)
                if not self.input_is_indices():  # integer indices stay integers; anything else is cast or refused
                    x = be.check(x, role="predict input")
                n = x.shape[0]
                if batch_size is None or batch_size >= n:
                    return self(x)
                parts = [self(x[i : min(i + batch_size, n), ...]) for i in range(0, n, batch_size)]
                return be.xp.concat(parts, axis=0)
        finally:
            self.train(was_training)

    def summary(self, input_shape: tuple[int, ...] | int, batch_size: int = 1) -> str:
        """A table of the layers (name, type, output shape, parameters) and the totals, like Keras' ``summary()``.

        ``input_shape`` is the shape of ONE sample (no batch axis, as Keras'
        ``Input(shape=...)``); the output shapes show the batch axis as ``N``.
        The shapes come from a forward pass of zeros through a copy of the
        model in eval mode: this model is left unchanged.

        Examples
        --------
        >>> import nu_xp
        >>> print(nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.ReLU()).summary((2,)))
        layer  type    output shape  parameters
        -----  ------  ------------  ----------
        0      Linear  (N, 8)                24
        1      ReLU    (N, 8)                 0
        -----  ------  ------------  ----------
        input (N, 2) → output (N, 8)
        total parameters: 24 (float32, 0.00 MiB); on numpy (cpu)
        """
        from .summary import summary

        return summary(self, input_shape if not isinstance(input_shape, int) else (input_shape,), batch_size)

    # ------------------------------------------------------------------ extra state
    def get_extra_state(self) -> Any:
        """JSON-able state besides parameters and buffers that a checkpoint restores (None: nothing)."""
        return None

    def set_extra_state(self, state: Any) -> None:
        """Restore what [`get_extra_state`][] returned; raise ``ValueError`` for a malformed state."""

    def named_extra_states(self) -> dict[str, Any]:
        """``{layer name: extra state}`` for every layer in this tree that has one (``""`` is this layer)."""
        states = {}
        for name, layer in self.named_modules():
            own = layer.get_extra_state()
            if own is not None:
                states[name] = own
        return states

    # ------------------------------------------------------------------ backend
    @property
    def backend(self) -> Backend:
        """The [`Backend`][nu_xp.backends.backend.Backend] (namespace, device, dtype) of this layer's parameters.

        It compares equal to its name, so ``layer.backend == "torch"`` reads as one expects;
        [`backend_name`][] is the name itself.
        """
        if self._backend is None:
            self._backend = get_backend()
        return self._backend

    @property
    def backend_name(self) -> str:
        """The backend's name: ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``, ``"jax"``."""
        return self.backend.name

    @property
    def device(self) -> Any:
        """The parameters' device."""
        return self.backend.device

    @property
    def dtype(self) -> Any:
        """The parameters' dtype (a dtype object of the backend's namespace)."""
        return self.backend.dtype

    def to(self: L, backend: Any = None, device: Any = None, dtype: Any = None) -> L:
        """Move every parameter (and gradient, and buffer) to ``backend``/``device``/``dtype``, in place.

        Arguments left as None keep the current value. Returns ``self``. Pending
        forwards are let go (what they kept lives on the old backend).
        """
        before = self.backend
        if backend is None:
            backend = before.name
            device = before.device if device is None else device
        be = get_backend(backend, device, before.dtype_name if dtype is None else dtype)
        moved: set[int] = set()  # a tied Parameter moves once
        for layer in self.modules():
            for _, p in layer._own_parameters():
                if id(p) not in moved:
                    moved.add(id(p))
                    p.data = asarray(p.data, like=be, dtype=be.dtype)
                    if p.grad is not None:
                        p.grad = asarray(p.grad, like=be, dtype=be.dtype)
            for name, value in list(layer._own_buffers()):
                floating = to_host(value).dtype.kind == "f"
                layer.register_buffer(name, asarray(value, like=be, dtype=be.dtype if floating else None))
            layer._backend = be
        self.clear_cache()
        return self

    def train(self: L, mode: bool = True) -> L:
        """Training mode (Dropout active); ``train(False)`` is ``eval()``. Returns ``self``."""
        for layer in self.modules():
            layer.training = bool(mode)
        return self

    def eval(self: L) -> L:
        """Evaluation mode (Dropout is the identity). Returns ``self``."""
        return self.train(False)

    # ------------------------------------------------------------------ weights (the checks: nu_xp.layers.state)
    def state_dict(self) -> dict[str, np.ndarray]:
        """``{name: numpy array}``: host copies of every parameter and buffer, PyTorch-style names.

        ``torch.nn.Sequential.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``
        takes it directly when the architectures match.
        """
        return state.state_dict(self)

    def load_state_dict(
        self,
        state_dict: dict[str, Any] | str | os.PathLike,
        strict: bool = True,
        *,
        cast: bool = False,
        source: str = "state_dict",
    ) -> state.IncompatibleKeys:
        """Copy arrays (numpy, torch, cupy…) into the parameters and buffers, checking names, shapes, dtypes.

        ``state_dict`` is a dict of arrays, or the path of a weights file
        (as [`load_weights`][nu_xp.layers.base.Layer.load_weights] reads).
        Nothing changes unless every check passes. ``strict=False`` loads the
        keys present in both and reports the rest; shapes and dtypes are
        always checked. ``cast=True`` converts a floating dtype instead of
        refusing it. NaN or Inf values (also those that a cast to the model's
        dtype creates) load with a ``ModelFileWarning``.
        Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``; a mismatch
        raises ``ModelFileError`` (a ``ValueError``) naming the key.
        """
        if isinstance(state_dict, (str, os.PathLike)):
            source = str(state_dict)
            state_dict = read_weights(state_dict)
        ready, keys = state.check_state_dict(self, state_dict, strict, cast=cast, source=source)
        state.apply_state_dict(self, ready)
        return keys

    def load_weights(self, path: Any, strict: bool = True, cast: bool = False) -> state.IncompatibleKeys:
        """Fill this model from a weights file, checking every name, shape and dtype before anything changes.

        The file may be one of [`nu_xp.save`][nu_xp.model_file.save] (``.npz`` or
        ``.safetensors``), of ``numpy.savez``, any ``.safetensors`` file (Hugging Face,
        ``safetensors.torch.save_file``…) or a PyTorch ``state_dict`` saved with
        ``torch.save(model.state_dict(), path)`` (read with ``torch.load(weights_only=True)``;
        needs torch). The format is told from the contents
        ([`nu_xp.formats`][nu_xp.formats]). A model built with PyTorch's layer names
        (``Sequential`` indices, ``weight``/``bias``, ``running_mean``…) takes PyTorch's
        weights unchanged. A missing, extra or mismatched key raises ``ModelFileError``
        (a ``ValueError``) naming the key and both shapes or dtypes. ``strict=False``
        loads the matching subset and returns ``IncompatibleKeys(missing_keys,
        unexpected_keys)``; ``cast=True`` converts float16/float64 weights to the model's dtype.
        """
        return self.load_state_dict(read_weights(path), strict=strict, cast=cast, source=str(path))

    # ------------------------------------------------------------------ config
    _NOT_CONFIG: ClassVar[frozenset[str]] = frozenset({"self", "backend", "device", "dtype", "seed"})

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (saved by ``nu_xp.save``).

        Default: each ``__init__`` argument (except backend/device/dtype/seed)
        that the instance keeps as an attribute of the same name.
        """
        names = inspect.signature(type(self).__init__).parameters
        allowed = type(self).config_arguments()
        return {name: getattr(self, name) for name in names if name in allowed and hasattr(self, name)}

    @classmethod
    def config_arguments(cls) -> frozenset[str]:
        """The names a saved config may hold: the constructor's arguments but backend/device/dtype/seed."""
        params = inspect.signature(cls.__init__).parameters.items()
        return frozenset(
            name
            for name, p in params
            if name not in cls._NOT_CONFIG and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
        """The shapes of the parameters (and buffers) a layer built from ``config`` would have, without building it.

        ``nu_xp.load`` compares them with the file's arrays *before* building,
        so a hostile file cannot make a tiny array allocate a gigantic layer.
        None: the layer cannot tell (then it is built and checked afterwards).
        Raise ``ValueError`` for a config that this layer refuses.
        """
        return None

    def extra_repr(self) -> str:
        """Text inside the parentheses of ``repr``, as PyTorch writes it: the required arguments by value,
        the others only where they differ from their defaults, sequences as tuples
        (``Conv2d(1, 6, kernel_size=(5, 5), padding=(2, 2))``)."""
        params = inspect.signature(type(self).__init__).parameters
        parts: list[str] = []
        for name, value in self.get_config().items():
            shown = tuple(value) if isinstance(value, list) else value
            param = params.get(name)
            if param is None or param.default is param.empty:
                positional = name in _SIZE_ARGUMENTS and (not parts or "=" not in parts[-1])
                parts.append(repr(shown) if positional else f"{name}={shown!r}")
                continue
            default = param.default
            if isinstance(default, int) and isinstance(shown, tuple) and all(v == default for v in shown):
                continue  # padding=0 saved as (0, 0)
            if shown == default or (isinstance(default, (list, tuple)) and shown == tuple(default)):
                continue
            parts.append(f"{name}={shown!r}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def copy(self: L) -> L:
        """A deep copy (parameters copied on the same backend; no pending forward)."""
        return copy.deepcopy(self)
