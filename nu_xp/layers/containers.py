"""Containers: ``Sequential`` (a chain of layers), ``Residual`` (``x + f(x)``), and ``Select`` (one element of
a tuple output, so layers that return tuples compose in a ``Sequential``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ..backends import Backend
from ..grad_mode import in_pass
from .base import Layer, register_layer

__all__ = ["Residual", "Select", "Sequential"]


@register_layer
class Sequential(Layer):
    """A chain of layers: ``forward`` runs them in order, ``backward`` in reverse.

    For ``y = f_k(… f_2(f_1(x)))`` the chain rule gives
    ``dL/dx = J_1ᵀ (J_2ᵀ (… J_kᵀ g))``: each layer's ``backward`` applies its
    own ``J_iᵀ`` to the gradient the next one returned.

    Parameters are named ``"<index>.<name>"`` (``"0.weight"``, ``"2.bias"``),
    so ``state_dict()`` keys match ``torch.nn.Sequential``'s. One layer
    instance may appear several times (``act = ReLU(); Sequential(l1, act, l2, act)``):
    each use keeps its own saved arrays and gets its own backward, so the
    gradients are PyTorch's for the same module graph (see [`nu_xp.grad_mode`][nu_xp.grad_mode]).


    Parameters
    ----------
    *layers : Layer
        The layers, run in this order (more can be added with ``append``).

    Examples
    --------
    >>> import nu_xp
    >>> model = nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=1))
    >>> list(model.named_parameters())
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> len(model), type(model[1]).__name__
    (3, 'Tanh')
    """

    holds_layers: ClassVar[bool] = True

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        self.layers: list[Layer] = []
        for layer in layers:
            self.append(layer)

    def append(self, layer: Layer) -> Sequential:
        """Add ``layer`` at the end; it must share the parameters' backend, device and dtype."""
        if not isinstance(layer, Layer) or layer.is_loss:
            what = "a loss" if isinstance(layer, Layer) else type(layer).__name__
            raise TypeError(f"Sequential takes layers, got {what} ({layer!r}); losses go to fit or are called apart")
        if layer.parameters():
            mine = self._parametric_backend()
            if mine is not None and layer.backend != mine:
                raise ValueError(
                    f"cannot add {type(layer).__name__} on {layer.backend} to a Sequential on {mine}; "
                    f"move it first with layer.to({mine.name!r}, dtype={mine.dtype_name!r})"
                )
            self._backend = layer.backend
        self.layers.append(layer)
        return self

    def _parametric_backend(self) -> Backend | None:
        for layer in self.layers:
            if layer.parameters():
                return layer.backend
        return None

    def forward(self, x: Any) -> Any:
        """Run the layers in order, as one pass: a layer that appears twice keeps one entry per use."""
        return in_pass(self._run, x)

    def _run(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad: Any, *, input_grad: bool = True) -> Any:
        """Run every layer's backward in reverse order; return ``dL/d(input)``.

        ``input_grad=False`` (what ``fit`` uses) is passed on to the first
        layer, which may then skip the gradient with respect to the data and
        return None (``Linear`` does; a layer whose ``backward`` has no
        ``input_grad`` computes it as usual).
        """
        layers = self.layers
        for layer in reversed(layers[1:]):
            grad = layer.backward(grad)
        if not layers:
            return grad
        first = layers[0]
        if not input_grad and first.accepts_input_grad:  # Layer.backward_into, inlined on this hot path
            return first.backward(grad, input_grad=False)
        return first.backward(grad)

    def named_children(self) -> Iterator[tuple[str, Layer]]:
        return ((str(i), layer) for i, layer in enumerate(self.layers))

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            part = Sequential()
            part.layers = self.layers[index]
            part._backend = self._backend
            return part
        return self.layers[index]

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        rows = []
        for i, layer in enumerate(self.layers):
            text = "\n  ".join(repr(layer).splitlines())
            n = layer.num_parameters()
            rows.append((f"  ({i}): {text}", f"# {n:,} params" if n else ""))
        width = max((len(r[0].splitlines()[-1]) for r in rows), default=0)
        for left, note in rows:
            lines.append(f"{left:<{width}}  {note}".rstrip() if note and "\n" not in left else left)
        be = self.backend
        lines.append(f")  total {self.num_parameters():,} parameters, {be.dtype_name} on {be.name} ({be.device_name})")
        return "\n".join(lines)


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
