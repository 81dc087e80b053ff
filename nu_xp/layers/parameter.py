"""``Parameter``: a trainable array, and ``accumulate``, the one way a backward adds to its gradient."""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["TREE_VERSION", "Parameter", "accumulate", "tree_changed"]

#: ``TREE_VERSION[0]`` changes whenever a parameter is frozen or unfrozen or a layer tree changes
#: (``Layer.__setattr__``, the containers): what a container caches about its sub-layers (which of them
#: train) is valid while it stays the same
TREE_VERSION = [0]


def tree_changed() -> None:
    """Note that a parameter was frozen or unfrozen, or a layer tree changed (see `TREE_VERSION`)."""
    TREE_VERSION[0] += 1


class Parameter:
    """A trainable array: ``.data`` (backend array, assignable), ``.grad`` (same shape, or None), ``.requires_grad``.

    ``grad`` is None until a backward pass writes it, and after ``zero_grad()``
    (as in PyTorch with ``set_to_none=True``); backward passes accumulate into it.
    A frozen parameter (``requires_grad=False``, PyTorch's name) gets no
    gradient: layers skip the work of computing it where they can, and
    optimizers and ``fit`` leave it unchanged; it is saved and loaded as any other.

    Parameters
    ----------
    data : array
        The initial value, an array of the layer's backend (its ``grad`` starts as None).
    requires_grad : bool, default True
        Whether backward computes its gradient (False: frozen).

    Examples
    --------
    >>> import nu_xp
    >>> head = nu_xp.Linear(4, 2, seed=0)
    >>> head.weight.requires_grad_(False).requires_grad
    False
    """

    __slots__ = ("_requires_grad", "data", "grad")

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        self.data = data
        self.grad: Any = None
        self._requires_grad = _flag(requires_grad)

    def _set_requires_grad(self, value: bool) -> None:
        self._requires_grad = _flag(value)
        tree_changed()

    #: Whether backward computes this parameter's gradient (False: frozen). Its getter is C code
    #: (``attrgetter``): layers read it on every backward.
    requires_grad = property(operator.attrgetter("_requires_grad"), _set_requires_grad)

    def requires_grad_(self, requires_grad: bool = True) -> Parameter:
        """Freeze (``False``) or unfreeze this parameter, in place; returns it (as ``torch.Tensor.requires_grad_``)."""
        self.requires_grad = requires_grad
        return self

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "grad": self.grad, "requires_grad": self._requires_grad}

    def __setstate__(self, values: Any) -> None:
        if isinstance(values, tuple):  # pickled by a nu_xp whose Parameter had plain slots: (None, {slot: value})
            values = values[1]
        self.data, self.grad, self._requires_grad = values["data"], values["grad"], values.get("requires_grad", True)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        """dtype of ``data``."""
        return self.data.dtype

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.data.dtype}{frozen})"


def _flag(value: Any) -> bool:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"requires_grad must be True or False, got {value!r}")
    return bool(value)


def accumulate(param: Parameter, grad: Any) -> None:
    """``param.grad += grad`` (or ``= grad`` when it is None): gradients add up over backward passes.

    A frozen parameter (``requires_grad=False``) keeps ``grad`` as it is; a
    layer that can skip computing such a gradient checks ``requires_grad`` first.
    """
    if not param._requires_grad:
        return
    if param.grad is None:
        param.grad = grad
    else:
        param.grad = param.grad + grad
