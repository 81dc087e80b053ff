"""``Optimizer``: the base of every optimizer (parameters, per-parameter state, hyper-parameters)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import array_api_compat
import numpy as np

from ..backends import asarray, to_host
from ..layers import Layer, Parameter

__all__ = ["Optimizer", "writeable"]

_WRITEABLE: dict[type, bool] = {}


def writeable(a: Any) -> bool:
    """True when arrays of ``a``'s type can be updated in place (cached per type)."""
    try:
        return _WRITEABLE[type(a)]
    except KeyError:
        _WRITEABLE[type(a)] = ok = bool(array_api_compat.is_writeable_array(a))
        return ok


class Optimizer:
    """Base class: holds the parameters, their per-parameter ``state`` and the hyper-parameters.

    ``params`` may be a model (a :class:`~nu_xp.layers.Layer`), a dict from
    ``named_parameters()``, or an iterable of :class:`~nu_xp.layers.Parameter`.
    """

    _hyper: tuple[str, ...] = ("lr",)
    lr: float

    def __init__(self, params: Layer | dict | Iterable[Parameter]) -> None:
        if isinstance(params, Layer):
            params = params.parameters()
        elif isinstance(params, dict):
            params = list(params.values())
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} takes Parameters (model.parameters()), got {type(p).__name__}")
        self.state: dict[int, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        """Set every parameter's grad to None."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for index, p in enumerate(self.params):
            if p.grad is not None:
                self._update(p, p.grad, self.state.setdefault(index, {}))

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _in_place(self, data: Any) -> bool:
        """Whether ``data`` may be updated in place (else the update assigns a new array)."""
        return writeable(data)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Hyper-parameters as ``[{"lr": ..., ...}]`` (one group, as in ``torch.optim``)."""
        return [{name: getattr(self, name) for name in self._hyper}]

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: numpy array or number}}, "param_groups": [...]}`` on the host."""
        state = {
            index: {k: (np.array(to_host(v)) if hasattr(v, "shape") else v) for k, v in entries.items()}
            for index, entries in self.state.items()
        }
        return {"state": state, "param_groups": self.param_groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (arrays are moved to each parameter's backend)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1:
            raise ValueError(f"expected one parameter group, got {len(groups)}")
        for name in self._hyper:
            if name in groups[0]:
                value = groups[0][name]
                setattr(self, name, tuple(value) if isinstance(value, list) else value)
        new_state: dict[int, dict[str, Any]] = {}
        for index, entries in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(self.params):
                raise ValueError(f"state for parameter {index}, but the optimizer has {len(self.params)} parameters")
            p = self.params[index]
            moved = {}
            for k, v in entries.items():
                if hasattr(v, "shape"):
                    if tuple(v.shape) != p.shape:
                        raise ValueError(
                            f"state {k!r} of parameter {index} has shape {tuple(v.shape)}, expected {p.shape}"
                        )
                    v = asarray(np.array(to_host(v), copy=True), like=p.data, dtype=p.data.dtype)
                moved[k] = v
            new_state[index] = moved
        self.state = new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"
