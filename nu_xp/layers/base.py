"""``Parameter``, ``Layer`` and the registry of layers a model file may rebuild.

Notation used by every layer: ``x`` is a layer's input, ``y`` its output,
``g = dL/dy`` the gradient that arrives in ``backward``; ``backward`` returns
``dL/dx`` and adds ``dL/dθ`` into ``θ.grad`` for every parameter ``θ``.

A layer owns its state, as a ``torch.nn.Module`` does:

* **parameters** ([`Parameter`][] attributes): trained, saved, loaded;
* **buffers** ([`Layer.register_buffer`][nu_xp.layers.base.Layer.register_buffer]): arrays that are saved and
  loaded but never trained (BatchNorm's running statistics);
* **extra state** ([`Layer.get_extra_state`][nu_xp.layers.base.Layer.get_extra_state] /
  [`Layer.set_extra_state`][nu_xp.layers.base.Layer.set_extra_state]):
  anything else a checkpoint must restore, as JSON (Dropout's generator);
* **saved arrays**: what ``forward`` keeps for ``backward``
  ([`Layer.save_for_backward`][nu_xp.layers.base.Layer.save_for_backward], popped by
  [`Layer.saved_tensors`][nu_xp.layers.base.Layer.saved_tensors]):
  one entry per pending use, nothing under [`nu_xp.no_grad`][nu_xp.grad_mode.no_grad]
  (see [`nu_xp.grad_mode`][nu_xp.grad_mode]), dropped by [`Layer.clear_cache`][nu_xp.layers.base.Layer.clear_cache];
* **config** ([`Layer.get_config`][nu_xp.layers.base.Layer.get_config]): the constructor arguments that
  rebuild it, checked by `Layer.from_config`.
"""

from __future__ import annotations

import ast
import copy
import inspect
import textwrap
from collections import namedtuple
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..backends import Backend, asarray, describe, get_backend, to_host
from ..errors import ModelFileError, ModelFileWarning
from ..grad_mode import THREAD, in_pass, no_grad
from ..validation import check_positive_int

__all__ = [
    "LAYER_REGISTRY",
    "IncompatibleKeys",
    "Layer",
    "Parameter",
    "accumulate",
    "check_grad",
    "register_layer",
    "set_weights_reader",
]

L = TypeVar("L", bound="Layer")

#: class name -> Layer subclass; what ``nu_xp.load`` may rebuild (nothing else is ever imported).
LAYER_REGISTRY: dict[str, type[Layer]] = {}
#: names of the layers that ship with nu_xp (a user class may not take one of them).
BUILTIN_LAYERS: set[str] = set()

#: constructor arguments that ``repr`` shows by value, as PyTorch does (``Conv2d(1, 6, kernel_size=(5, 5))``)
_SIZE_ARGUMENTS = frozenset(
    {"in_channels", "out_channels", "num_features", "num_embeddings", "embedding_dim", "normalized_shape"}
)

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = "Keys of the model absent from the source, and keys of the source the model lacks."


def register_layer(cls: type[L]) -> type[L]:
    """Class decorator: allow ``nu_xp.load`` to rebuild this layer from a file.

    The layer's constructor arguments are saved by [`Layer.get_config`][nu_xp.layers.base.Layer.get_config]
    (by default: the ``__init__`` arguments that the layer keeps as attributes
    of the same name), so they must be JSON values. Losses cannot be
    registered: a model file holds layers only.

    Examples
    --------
    >>> import nu_xp
    >>> @nu_xp.register_layer
    ... class Scale(nu_xp.Layer):
    ...     "y = factor * x;  dL/dx = factor * g"
    ...     def __init__(self, factor=2.0):
    ...         super().__init__()
    ...         self.factor = factor
    ...     def forward(self, x):
    ...         return x * self.factor
    ...     def backward(self, grad):
    ...         return grad * self.factor
    >>> Scale(3.0).get_config()
    {'factor': 3.0}
    """
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer expects a Layer subclass, got {cls!r}")
    if cls.is_loss:
        raise TypeError(f"{cls.__name__} is a loss; only layers can be registered (a model file holds layers)")
    name = cls.__name__
    if name in BUILTIN_LAYERS and LAYER_REGISTRY.get(name) is not cls:
        raise ValueError(f"{name!r} is a built-in nu_xp layer; give your class another name")
    _check_config_is_kept(cls)
    LAYER_REGISTRY[name] = cls
    if cls.__module__.startswith("nu_xp."):
        BUILTIN_LAYERS.add(name)
    return cls


def _check_config_is_kept(cls: type[Layer]) -> None:
    """Refuse, at registration, a class whose default ``get_config`` would silently drop an argument.

    The default ``get_config`` saves each constructor argument that the layer
    keeps as an attribute of the same name; an argument kept under another
    name would be lost in a saved file. Checked from the constructor's source
    (``self.<arg> = ...``) or a class attribute/property of that name.
    """
    if "get_config" in {k for klass in cls.__mro__[:-1] if klass is not Layer for k in vars(klass)}:
        return  # a get_config of its own says what to save
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    except (OSError, TypeError, SyntaxError):
        return  # no source to read (an interactive session): checked when saving instead
    kept = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }
    missing = [name for name in sorted(cls.config_arguments()) if name not in kept and not hasattr(cls, name)]
    if missing:
        raise TypeError(
            f"cannot register {cls.__name__}: its constructor arguments {missing} are not kept as attributes of the "
            f"same name, so nu_xp.save could not rebuild it; keep them (self.{missing[0]} = {missing[0]}) or "
            "override get_config() to return every constructor argument"
        )


class Parameter:
    """A trainable array: ``.data`` (backend array, assignable) and ``.grad`` (same shape, or None).

    ``grad`` is None until a backward pass writes it, and after ``zero_grad()``
    (as in PyTorch with ``set_to_none=True``); backward passes accumulate into it.

    Parameters
    ----------
    data : array
        The initial value, an array of the layer's backend (its ``grad`` starts as None).
    """

    __slots__ = ("data", "grad")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.grad: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        """dtype of ``data``."""
        return self.data.dtype

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype})"


def accumulate(param: Parameter, grad: Any) -> None:
    """``param.grad += grad`` (or ``= grad`` when it is None): gradients add up over backward passes."""
    if param.grad is None:
        param.grad = grad
    else:
        param.grad = param.grad + grad


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


_WEIGHTS_READER: list[Any] = []


def set_weights_reader(reader: Any) -> None:
    """Install the function that reads a weights file into ``{name: host array}``
    ([`nu_xp.model_file`][nu_xp.model_file] does).

    Layers never read files: [`Layer.load_weights`][nu_xp.layers.base.Layer.load_weights] hands the path to
    this reader, which the file-format module registers when it is imported.
    """
    _WEIGHTS_READER[:] = [reader]


def _tracked_forward(forward: Any) -> Any:
    """A user layer's ``forward`` run as one step of the current pass (see [`nu_xp.grad_mode`][nu_xp.grad_mode]).

    Layers it calls inside keep their saved arrays in the same pass, so a
    sub-layer used twice by a user's own composite layer gets both backwards.
    """

    def forward_in_pass(self: Layer, *args: Any, **kwargs: Any) -> Any:
        return in_pass(forward, self, *args, **kwargs)

    forward_in_pass.__wrapped__ = forward  # type: ignore[attr-defined]
    forward_in_pass.__doc__ = forward.__doc__
    forward_in_pass.__name__ = "forward"
    forward_in_pass.__qualname__ = forward.__qualname__
    return forward_in_pass


class Layer:
    """Base class of every layer, loss and model.

    A layer implements ``forward(x)`` (compute ``y`` and keep what backward
    needs) and ``backward(grad, *, input_grad=True)`` (given ``dL/dy``,
    accumulate ``dL/dθ`` into each ``Parameter.grad`` and return ``dL/dx``;
    ``input_grad=False`` may skip ``dL/dx`` and return None, which a model's
    first layer never needs). A loss ([`nu_xp.losses.Loss`][nu_xp.losses.base.Loss]) is a Layer
    too, with ``forward(pred, target)`` and ``backward(grad=None)``: that is
    why the base signatures here take ``*args, **kwargs``.

    Attributes that are [`Parameter`][] or [`Layer`][] instances are
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
    #: what pending forwards kept for backward (one tuple per forward), all of pass ``_saved_pass``
    _saved_stack: list[tuple[Any, ...]] = []  # noqa: RUF012 - never appended to: replaced per instance on first save
    _saved_pass: int = -1
    #: True for losses: they are Layers, but never part of a saved model
    is_loss: ClassVar[bool] = False
    #: True for containers, whose constructor takes the sub-layers (``Sequential(*layers)``)
    holds_layers: ClassVar[bool] = False
    #: whether ``backward`` takes ``input_grad=`` (found from its signature)
    accepts_input_grad: ClassVar[bool] = False
    #: True for layers whose input is integer indices (``Embedding``): a model starting with one keeps integer data
    takes_indices: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.accepts_input_grad = "input_grad" in inspect.signature(cls.backward).parameters
        if "forward" in vars(cls) and not cls.__module__.startswith("nu_xp."):
            cls.forward = _tracked_forward(vars(cls)["forward"])  # type: ignore[method-assign]

    def __init__(self, *, backend: Any = None, device: Any = None, dtype: Any = None) -> None:
        self._backend = get_backend(backend, device, dtype)
        self._buffers: dict[str, Any] = {}
        self.training = True

    # ------------------------------------------------------------------ computing
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output for ``x`` (a loss: for ``pred, target``) and keep what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        """Given ``grad = dL/d(output)``, accumulate parameter gradients and return ``dL/d(input)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement backward(grad)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``forward(...)``, as one pass: layers it runs inside keep their saved arrays in the same pass."""
        return in_pass(self.forward, *args, **kwargs)

    # ------------------------------------------------------------------ what forward keeps for backward
    def save_for_backward(self, *values: Any) -> None:
        """Keep ``values`` for the ``backward`` of this forward (nothing is kept under
        [`nu_xp.no_grad`][nu_xp.grad_mode.no_grad]).

        Each call pushes one entry on this layer's stack and each
        [`saved_tensors`][] pops one, so a layer used at several places of a
        model gets one entry per use. An entry of an earlier pass that never
        got its backward is dropped here (see [`nu_xp.grad_mode`][nu_xp.grad_mode]).
        """
        state = THREAD.grad
        if state.enabled:
            if state.depth:
                pass_id = state.pass_id
            else:  # a layer called on its own: a pass of its own
                pass_id = state.pass_id = state.pass_id + 1
            if self._saved_pass != pass_id:  # the first entry of a new pass: drop the old pass's
                self._saved_pass = pass_id
                self._saved_stack = [values]
            else:
                self._saved_stack.append(values)

    def saved_tensors(self) -> tuple[Any, ...]:
        """Pop what the latest pending forward kept ([`save_for_backward`][]): the values, as a tuple.

        Raises ``RuntimeError`` when no forward is pending: ``backward``
        before ``forward``, after a forward under ``no_grad()``, or once more
        than there were forwards.
        """
        try:
            return self._saved_stack.pop()
        except IndexError:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward (no forward is pending): call forward "
                "first, outside nu_xp.no_grad() (which keeps nothing), once per backward"
            ) from None

    def pending_backwards(self) -> int:
        """How many forwards of this layer (in the current pass) still wait for their backward."""
        return len(self._saved_stack)

    def backward_into(self, grad: Any, input_grad: bool) -> Any:
        """``backward(grad, input_grad=input_grad)`` where supported, else ``backward(grad)``.

        Lets containers pass ``input_grad=False`` to any first layer, including
        user layers whose ``backward`` has no such keyword.
        """
        if not input_grad and self.accepts_input_grad:
            return self.backward(grad, input_grad=False)
        return self.backward(grad)

    def clear_cache(self) -> None:
        """Forget what every pending ``forward`` kept for ``backward``, here and in every sub-layer (``.to()`` does)."""
        self._saved_stack = []
        self._saved_pass = -1
        for child in self.children():
            child.clear_cache()

    def first_layer(self) -> Layer:
        """The layer that sees the model's input first (through containers; this layer if it holds none)."""
        layer: Layer = self
        while True:
            child = next(layer.children(), None)
            if child is None:
                return layer
            layer = child

    def input_is_indices(self) -> bool:
        """True when the model's first layer takes integer indices (``Embedding``): its data stays integer."""
        return self.first_layer().takes_indices

    def predict(self, x: Any, batch_size: int | None = None) -> Any:
        """Forward pass in eval mode (Dropout off), optionally in batches.

        Unlike ``forward``, ``x`` may live anywhere (a list, a numpy array for a
        torch model…): like ``fit``, it is moved to the model's backend and cast
        to its dtype. The previous train/eval mode is restored afterwards.
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

    # ------------------------------------------------------------------ parameters and buffers
    def named_parameters(self, remove_duplicate: bool = True) -> dict[str, Parameter]:
        """``{name: Parameter}``; names follow PyTorch (``"weight"``, ``"0.bias"``).

        A Parameter shared by several layers (weight tying) is listed once,
        under its first name, as PyTorch does, so an optimizer steps it once
        (its gradient is the sum over its uses). ``remove_duplicate=False``
        lists every name (what ``state_dict`` and ``save`` keep).
        """
        named: dict[str, Parameter] = {}
        seen: set[int] = set()
        for name, param in self._all_named_parameters():
            if remove_duplicate:
                if id(param) in seen:
                    continue
                seen.add(id(param))
            named[name] = param
        return named

    def _all_named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every ``(name, Parameter)``, own ones first, then each sub-layer's (prefixed), duplicates included."""
        for attr, value in vars(self).items():
            if isinstance(value, Parameter):
                yield attr, value
        for prefix, child in self.named_children():
            for sub, param in child._all_named_parameters():
                yield f"{prefix}.{sub}", param

    def tied_parameters(self) -> dict[str, str]:
        """``{name: first name}`` for every parameter name that refers to a Parameter listed earlier (ties)."""
        first: dict[int, str] = {}
        ties = {}
        for name, param in self._all_named_parameters():
            if id(param) in first:
                ties[name] = first[id(param)]
            else:
                first[id(param)] = name
        return ties

    def parameters(self) -> list[Parameter]:
        """The parameters in [`named_parameters`][] order, each once ([] for parameter-free layers)."""
        return list(self.named_parameters().values())

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep ``value`` (an array on this layer's backend) as a buffer: saved and loaded, never trained."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def named_buffers(self) -> dict[str, Any]:
        """``{name: array}`` of every buffer, named like parameters (``"1.running_mean"``)."""
        named = {name: getattr(self, name) for name in getattr(self, "_buffers", {})}
        for prefix, child in self.named_children():
            named.update({f"{prefix}.{k}": v for k, v in child.named_buffers().items()})
        return named

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        """``(name, sub-layer)`` pairs, in the order their parameters are named."""
        return ((k, v) for k, v in vars(self).items() if isinstance(v, Layer))

    def children(self) -> Iterator[Layer]:
        """Direct sub-layers."""
        return (child for _, child in self.named_children())

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

    def num_parameters(self) -> int:
        """Total number of scalars in all parameters."""
        return sum(int(np.prod(p.shape)) for p in self.parameters())

    def zero_grad(self) -> None:
        """Set every ``Parameter.grad`` to None (the next backward starts from zero)."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------------ extra state
    def get_extra_state(self) -> Any:
        """JSON-able state besides parameters and buffers that a checkpoint restores (None: nothing)."""
        return None

    def set_extra_state(self, state: Any) -> None:
        """Restore what [`get_extra_state`][] returned; raise ``ValueError`` for a malformed state."""

    def named_extra_states(self) -> dict[str, Any]:
        """``{layer name: extra state}`` for every layer in this tree that has one (``""`` is this layer)."""
        states = {}
        own = self.get_extra_state()
        if own is not None:
            states[""] = own
        for prefix, child in self.named_children():
            for name, state in child.named_extra_states().items():
                states[f"{prefix}.{name}" if name else prefix] = state
        return states

    def layer_at(self, name: str) -> Layer:
        """The sub-layer called ``name`` (``""``: this layer; ``"2"``, ``"0.1"`` in containers)."""
        layer: Layer = self
        for part in filter(None, name.split(".")):
            children = dict(layer.named_children())
            if part not in children:
                raise KeyError(f"{type(layer).__name__} has no sub-layer {part!r}")
            layer = children[part]
        return layer

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

        Arguments left as None keep the current value. Returns ``self``.
        """
        current = self.backend
        if backend is None:
            backend = current.name
            device = current.device if device is None else device
        target = get_backend(backend, device, current.dtype_name if dtype is None else dtype)
        self._move(target)
        return self

    def _move(self, target: Backend, moved: set[int] | None = None) -> None:
        moved = set() if moved is None else moved  # a tied Parameter moves once
        for value in vars(self).values():
            if isinstance(value, Parameter) and id(value) not in moved:
                moved.add(id(value))
                value.data = asarray(value.data, like=target, dtype=target.dtype)
                if value.grad is not None:
                    value.grad = asarray(value.grad, like=target, dtype=target.dtype)
        for name, value in getattr(self, "_buffers", {}).items():
            floating = to_host(value).dtype.kind == "f"
            self.register_buffer(name, asarray(value, like=target, dtype=target.dtype if floating else None))
        for child in self.children():
            child._move(target, moved)
        self.clear_cache()
        self._backend = target

    def train(self: L, mode: bool = True) -> L:
        """Training mode (Dropout active); ``train(False)`` is ``eval()``. Returns ``self``."""
        self.training = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self: L) -> L:
        """Evaluation mode (Dropout is the identity). Returns ``self``."""
        return self.train(False)

    # ------------------------------------------------------------------ weights
    def state_dict(self) -> dict[str, np.ndarray]:
        """``{name: numpy array}``: host copies of every parameter and buffer, PyTorch-style names.

        ``torch.nn.Sequential.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``
        takes it directly when the architectures match.
        """
        params = self.named_parameters(remove_duplicate=False)
        state = {name: np.array(to_host(p.data)) for name, p in params.items()}
        state.update({name: np.array(to_host(b)) for name, b in self.named_buffers().items()})
        return state

    def load_state_dict(
        self, state: dict[str, Any], strict: bool = True, *, cast: bool = False, source: str = "state_dict"
    ) -> IncompatibleKeys:
        """Copy arrays (numpy, torch, cupy…) into the parameters and buffers, checking names, shapes, dtypes.

        Nothing changes unless every check passes. ``strict=False`` loads the
        keys present in both and reports the rest; shapes and dtypes are
        always checked. ``cast=True`` converts a floating dtype instead of
        refusing it. NaN or Inf values (also those that a cast to the model's
        dtype creates) load with a ``ModelFileWarning``.
        Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``; a mismatch
        raises ``ModelFileError`` (a ``ValueError``) naming the key.
        """
        ready, keys = self.check_state_dict(state, strict, cast=cast, source=source)
        self.apply_state_dict(ready)
        return keys

    def check_state_dict(
        self, state: dict[str, Any], strict: bool = True, *, cast: bool = False, source: str = "state_dict"
    ) -> tuple[dict[str, np.ndarray], IncompatibleKeys]:
        """The checks of [`load_state_dict`][], changing nothing: ``(host arrays ready to apply, keys)``."""
        import warnings

        if not isinstance(state, dict):
            raise TypeError(f"{source}: a state dict must be a dict of arrays, got {type(state).__name__}")
        params = self.named_parameters(remove_duplicate=False)
        mine = {k: (p.shape, "f") for k, p in params.items()}
        mine.update({k: self._buffer_spec(b) for k, b in self.named_buffers().items()})
        missing = [k for k in mine if k not in state]
        unexpected = [k for k in state if k not in mine]
        if strict and (missing or unexpected):
            raise ModelFileError(
                f"{source}: keys do not match the model: missing {missing} (in the model, not in {source}), "
                f"unexpected {unexpected} (in {source}, not in the model); "
                "pass strict=False to load the keys that match"
            )
        target = self.backend
        ready: dict[str, np.ndarray] = {}
        bad_values = []
        for key, (shape, kind) in mine.items():
            if key not in state:
                continue
            host = to_host(state[key])
            if tuple(host.shape) != shape:
                raise ModelFileError(
                    f"{source}: {key!r} has shape {tuple(host.shape)}, but the model's {key!r} has shape {shape}"
                )
            if kind == "f":
                if host.dtype.kind != "f":
                    raise ModelFileError(f"{source}: {key!r} has dtype {host.dtype}; it must be floating point")
                if host.dtype.name != target.dtype_name and not cast:
                    raise ModelFileError(
                        f"{source}: {key!r} has dtype {host.dtype.name}, but the model's {key!r} is "
                        f"{target.dtype_name}; convert the model first with model.to(dtype={host.dtype.name!r}), "
                        f"or rebuild it from a nu_xp file in {target.dtype_name} with "
                        f"nu_xp.load(path, dtype={target.dtype_name!r})"
                    )
                with np.errstate(over="ignore"):  # an overflow to inf is reported below, as a NaN is
                    ready[key] = np.array(host, dtype=target.dtype_name, copy=True)
                if not np.all(np.isfinite(ready[key])):
                    bad_values.append(key)
            else:
                if host.dtype.kind not in "iu":
                    raise ModelFileError(f"{source}: {key!r} has dtype {host.dtype}; it must be an integer")
                ready[key] = np.array(host, dtype=np.int64, copy=True)
        if bad_values:
            warnings.warn(
                f"{source}: {bad_values} contain NaN or Inf values (in the {target.dtype_name} the model uses)",
                ModelFileWarning,
                stacklevel=3,
            )
        return ready, IncompatibleKeys(missing, unexpected)

    def apply_state_dict(self, ready: dict[str, np.ndarray]) -> None:
        """Put checked host arrays (from [`check_state_dict`][]) into the parameters and buffers."""
        target = self.backend
        params = self.named_parameters(remove_duplicate=False)
        for key, host in ready.items():
            if key in params:
                params[key].data = asarray(host, like=target)
                params[key].grad = None
            else:
                owner, _, name = key.rpartition(".")
                self.layer_at(owner).register_buffer(name, asarray(host, like=target))

    @staticmethod
    def _buffer_spec(value: Any) -> tuple[tuple[int, ...], str]:
        return tuple(value.shape), "f" if to_host(value).dtype.kind == "f" else "i"

    def load_weights(self, path: Any, strict: bool = True) -> IncompatibleKeys:
        """Fill this model from a file written by [`nu_xp.save`][nu_xp.model_file.save] (or ``numpy.savez``).

        Every name, shape and dtype is checked before anything changes; a missing,
        extra or mismatched key raises ``ModelFileError`` (a ``ValueError``)
        naming the key and both shapes or dtypes. ``strict=False`` loads the
        matching subset and returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        if not _WEIGHTS_READER:
            raise RuntimeError("no weights-file reader is installed; import nu_xp (nu_xp.model_file installs it)")
        return self.load_state_dict(_WEIGHTS_READER[0](path), strict=strict, source=str(path))

    # ------------------------------------------------------------------ config
    _NOT_CONFIG: ClassVar[frozenset[str]] = frozenset({"self", "backend", "device", "dtype", "seed"})

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer (saved by ``nu_xp.save``).

        Default: each ``__init__`` argument (except backend/device/dtype/seed)
        that the instance keeps as an attribute of the same name.
        """
        config = {}
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name in self._NOT_CONFIG or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if hasattr(self, name):
                config[name] = getattr(self, name)
        return config

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
        """A deep copy (parameters copied on the same backend)."""
        return copy.deepcopy(self)
