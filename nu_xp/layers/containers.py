"""Containers: ``LayerList`` and ``LayerDict`` (sub-layers held by position or key, as PyTorch's
``ModuleList``/``ModuleDict``), ``Sequential`` (a chain of layers), ``Residual`` (``x + f(x)``) and ``Select``
(one element of a tuple output, so layers that return tuples compose in a ``Sequential``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from .base import Layer
from .parameter import TREE_VERSION, tree_changed
from .registry import register_layer

__all__ = ["LayerDict", "LayerList", "Residual", "Select", "Sequential"]


def _checked(owner: Layer, layer: Any) -> Layer:
    """``layer`` if ``owner`` may hold it: a layer (not a loss) on the backend of the parameters already held."""
    if not isinstance(layer, Layer) or layer.is_loss:
        what = "a loss" if isinstance(layer, Layer) else type(layer).__name__
        raise TypeError(
            f"{type(owner).__name__} takes layers, got {what} ({layer!r}); losses go to fit or are called apart"
        )
    if layer.parameters():
        mine = next((c.backend for c in owner.children() if c.parameters()), None)
        if mine is not None and layer.backend != mine:
            raise ValueError(
                f"cannot add {type(layer).__name__} on {layer.backend} to a {type(owner).__name__} on {mine}; "
                f"move it first with layer.to({mine.name!r}, dtype={mine.dtype_name!r})"
            )
        owner._backend = layer.backend
    return layer


class LayerList(Layer):
    """Sub-layers held in a list, as PyTorch's ``nn.ModuleList``: registered, so they train, save and move.

    A plain Python list of layers assigned as an attribute would be invisible
    to ``parameters()``, ``save`` and ``.to()`` (nu_xp refuses it with a
    ``TypeError`` naming this class). Parameters are named by position:
    ``self.blocks = LayerList([...])`` gives ``"blocks.0.weight"``, as
    PyTorch's ``state_dict``. It has no forward of its own: the layer that
    holds it calls its items (and their backwards, in reverse order).

    Parameters
    ----------
    layers : iterable of Layer, optional
        The initial items.

    Examples
    --------
    >>> import nu_xp
    >>> class Tower(nu_xp.Layer):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.blocks = nu_xp.LayerList([nu_xp.Linear(2, 2, seed=i) for i in range(3)])
    >>> [name for name, _ in Tower().named_parameters()][:3]
    ['blocks.0.weight', 'blocks.0.bias', 'blocks.1.weight']
    """

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        super().__init__()
        self._layers: list[Layer] = []
        self.extend(layers)

    def append(self, layer: Layer) -> LayerList:
        """Add ``layer`` at the end; it must share the parameters' backend, device and dtype. Returns ``self``."""
        self._layers.append(_checked(self, layer))
        tree_changed()
        return self

    def extend(self, layers: Iterable[Layer]) -> LayerList:
        """``append`` each of ``layers``. Returns ``self``."""
        for layer in layers:
            self.append(layer)
        return self

    def insert(self, index: int, layer: Layer) -> None:
        """Put ``layer`` before position ``index``."""
        self._layers.insert(index, _checked(self, layer))
        tree_changed()

    def named_slots(self) -> Iterator[tuple[str, Layer]]:
        return ((str(i), layer) for i, layer in enumerate(self._layers))

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return LayerList(self._layers[index])
        return self._layers[index]

    def __setitem__(self, index: int, layer: Layer) -> None:
        self._layers[index] = _checked(self, layer)
        tree_changed()

    def __delitem__(self, index: int | slice) -> None:
        del self._layers[index]
        tree_changed()

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        rows = []
        for i, layer in enumerate(self._layers):
            text = "\n  ".join(repr(layer).splitlines())
            n = layer.num_parameters()
            rows.append((f"  ({i}): {text}", f"# {n:,} params" if n else ""))
        width = max((len(r[0].splitlines()[-1]) for r in rows), default=0)
        for left, note in rows:
            lines.append(f"{left:<{width}}  {note}".rstrip() if note and "\n" not in left else left)
        be = self.backend
        lines.append(f")  total {self.num_parameters():,} parameters, {be.dtype_name} on {be.name} ({be.device_name})")
        return "\n".join(lines)


class LayerDict(Layer):
    """Sub-layers held by name, as PyTorch's ``nn.ModuleDict``: ``self.heads = LayerDict({"a": ..., "b": ...})``
    gives parameters ``"heads.a.weight"``…, in insertion order.

    Parameters
    ----------
    layers : mapping or iterable of (str, Layer) pairs, optional
        The initial items.
    """

    def __init__(self, layers: Mapping[str, Layer] | Iterable[tuple[str, Layer]] = ()) -> None:
        super().__init__()
        self._layers: dict[str, Layer] = {}  # type: ignore[assignment]
        self.update(layers)

    def __setitem__(self, key: str, layer: Layer) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"LayerDict keys are non-empty strings without '.', got {key!r}")
        self._layers[key] = _checked(self, layer)
        tree_changed()

    def update(self, layers: Mapping[str, Layer] | Iterable[tuple[str, Layer]]) -> None:
        """Add every ``(key, layer)`` of a mapping or of an iterable of pairs."""
        for key, layer in layers.items() if isinstance(layers, Mapping) else layers:
            self[key] = layer

    def __getitem__(self, key: str) -> Layer:
        return self._layers[key]

    def __delitem__(self, key: str) -> None:
        del self._layers[key]
        tree_changed()

    def pop(self, key: str) -> Layer:
        """Remove the layer under ``key`` and return it."""
        layer = self._layers.pop(key)
        tree_changed()
        return layer

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[str]:
        return iter(self._layers)

    def __contains__(self, key: object) -> bool:
        return key in self._layers

    def keys(self) -> Any:
        """The keys, in insertion order."""
        return self._layers.keys()

    def values(self) -> Any:
        """The layers, in insertion order."""
        return self._layers.values()

    def items(self) -> Any:
        """``(key, layer)`` pairs, in insertion order."""
        return self._layers.items()

    def named_slots(self) -> Iterator[tuple[str, Layer]]:
        return iter(self._layers.items())

    def get_config(self) -> dict[str, Any]:
        return {}


@register_layer
class Sequential(LayerList):
    """A chain of layers: ``forward`` runs them in order, ``backward`` in reverse.

    For ``y = f_k(… f_2(f_1(x)))`` the chain rule gives
    ``dL/dx = J_1ᵀ (J_2ᵀ (… J_kᵀ g))``: each layer's ``backward`` applies its
    own ``J_iᵀ`` to the gradient the next one returned.

    Parameters are named ``"<index>.<name>"`` (``"0.weight"``, ``"2.bias"``),
    so ``state_dict()`` keys match ``torch.nn.Sequential``'s. One layer
    instance may appear several times (``act = ReLU(); Sequential(l1, act, l2, act)``):
    each use is a call of its own, with its own backward, so the
    gradients are PyTorch's for the same module graph (see [`nu_xp.grad_mode`][nu_xp.grad_mode]).

    ``backward(grad, input_grad=False)`` stops below the lowest layer that
    has a parameter to train: under a frozen body (``requires_grad_(False)``)
    nothing of the body is differentiated.

    Parameters
    ----------
    *layers : Layer
        The layers, run in this order (more can be added with ``append``).

    Examples
    --------
    >>> import nu_xp
    >>> model = nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=1))
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> len(model), type(model[1]).__name__
    (3, 'Tanh')
    """

    holds_layers: ClassVar[bool] = True
    _lowest: tuple[int, int] = (-1, 0)  # (tree version, index of the lowest layer with a parameter to train)

    def __init__(self, *layers: Layer) -> None:
        super().__init__(layers)

    def forward(self, x: Any) -> Any:
        """Run the layers in order; each call is recorded inside this one (see [`nu_xp.grad_mode`][nu_xp.grad_mode])."""
        for layer in self._layers:
            x = layer.forward(x)
        return x

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """Run every layer's backward in reverse order; return ``dL/d(input)``.

        ``input_grad=False`` (what ``fit`` uses) is passed on to the lowest
        layer that has a parameter to train, which may then skip the gradient
        with respect to its input and return None (``Linear`` does; a layer
        whose ``backward`` has no ``input_grad`` computes it as usual); the
        layers below it are not differentiated at all.
        """
        layers = self._layers
        if not layers:
            return grad
        stop = 0
        if not input_grad:
            version, stop = self._lowest  # the index, cached while no parameter is frozen and the tree unchanged
            if version != TREE_VERSION[0]:
                stop = self._lowest_trainable()
        if stop < 0:  # nothing to train and no input gradient wanted: nothing to compute
            return None
        for layer in reversed(layers[stop + 1 :]):
            grad = layer.backward(grad)
        first = layers[stop]
        if not input_grad and first.accepts_input_grad:  # Layer.backward_into, inlined on this hot path
            first.backward(grad, input_grad=False)
            return None
        out = first.backward(grad)
        return out if input_grad else None

    def _lowest_trainable(self) -> int:
        """Index of the first layer with a parameter that requires grad (-1: none), kept with the tree version."""
        index = next(
            (i for i, layer in enumerate(self._layers) if any(p.requires_grad for p in layer.parameters())), -1
        )
        self.__dict__["_lowest"] = (TREE_VERSION[0], index)
        return index

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return _sliced(self, self._layers[index])
        return self._layers[index]


def _sliced(model: Sequential, layers: list[Layer]) -> Sequential:
    """A ``Sequential`` of ``layers`` (a slice of ``model``'s), on ``model``'s backend even when none has parameters."""
    part = type(model).__new__(type(model))
    Layer.__init__(part, backend=model.backend.name, device=model.backend.device, dtype=model.backend.dtype_name)
    part.__dict__["_layers"] = list(layers)
    part.training = model.training
    return part


@register_layer
class Residual(Sequential):
    """A skip connection: ``y = x + f(x)``, with ``f`` the layers run in order (a ``Sequential``).

    ``f`` must keep the shape of ``x``. Backward: ``dL/dx = g + J_fᵀ g``, the
    gradient through ``f`` plus the gradient that skips it. Parameters are
    named as in ``Sequential`` (``"0.weight"``…), the layout of a PyTorch
    module that holds its layers in an ``nn.Sequential``.

    Parameters
    ----------
    *layers : Layer
        The layers of ``f``, run in this order; the output is ``x + f(x)``.
    """

    def forward(self, x: Any) -> Any:
        y = super().forward(x)
        if tuple(y.shape) != tuple(x.shape):
            raise ValueError(
                f"Residual: its layers map shape {tuple(x.shape)} to {tuple(y.shape)}; x + f(x) needs the same shape"
            )
        return x + y

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        through = super().backward(grad, input_grad=input_grad)
        return grad + through if input_grad else None


@register_layer
class Select(Layer):
    """Pass on one element of a tuple output: ``y = x[index]`` (``Sequential(Embedding(…), LSTM(…), Select(0), …)``).

    Backward hands the gradient to that element and ``None`` to the others,
    which is how the recurrent and attention layers read "no gradient here":
    ``dL/dx = (None, …, g, …, None)``.

    Parameters
    ----------
    index : int
        Which element (negative counts from the end, as in Python).

    Examples
    --------
    >>> import nu_xp
    >>> nu_xp.Select(0)(("output", "state"))
    'output'
    """

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"Select index must be an int, got {index!r}")
        self.index = index

    @classmethod
    def parameter_shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        return {}

    def extra_repr(self) -> str:
        return repr(self.index)

    def forward(self, x: Any) -> Any:
        if not isinstance(x, (tuple, list)):
            raise TypeError(
                f"Select({self.index}) takes a tuple (such as an LSTM's (output, (h_n, c_n))), got {type(x).__name__}"
            )
        if not -len(x) <= self.index < len(x):
            raise IndexError(f"Select({self.index}): the input tuple has {len(x)} elements")
        self.save_for_backward(len(x))
        return x[self.index]

    def backward(self, grad: Any) -> tuple[Any, ...]:
        (size,) = self.saved_tensors()
        grads: list[Any] = [None] * size
        grads[self.index] = grad
        return tuple(grads)
