"""``Optimizer``: the base of every optimizer (parameters, per-parameter state, hyper-parameters)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import array_api_compat
import numpy as np

from ..backends import asarray, to_host
from ..layers import Layer, Parameter
from ..validation import check_number

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

    @classmethod
    def check_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Checked hyper-parameters ``{name: value}``; subclasses check theirs (the constructor uses it too)."""
        return {"lr": check_number("lr", values["lr"])}

    def check_state(self, index: int, entries: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless ``entries`` fits parameter ``index``: arrays of its shape, finite."""
        p = self.params[index]
        for name, value in entries.items():
            if hasattr(value, "shape"):
                host = to_host(value)
                if tuple(host.shape) != p.shape:
                    raise ValueError(
                        f"state {name!r} of parameter {index} has shape {tuple(host.shape)}, expected {p.shape}"
                    )
                if host.dtype.kind != "f" or not np.all(np.isfinite(host)):
                    raise ValueError(f"state {name!r} of parameter {index} must hold finite floating-point values")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output, all or nothing: everything is checked before anything changes.

        Hyper-parameters go through the same checks as the constructor's
        arguments; per-parameter state through :meth:`check_state`; arrays are
        moved to each parameter's backend. Raises ``ValueError`` or ``TypeError``.
        """
        self.apply_state_dict(*self.check_state_dict(state_dict))

    def apply_state_dict(self, hyper: dict[str, Any], state: dict[int, dict[str, Any]]) -> None:
        """Install what :meth:`check_state_dict` returned."""
        self.__dict__.update(hyper)
        self.state = state

    def check_state_dict(self, state_dict: Any) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        """The checks of :meth:`load_state_dict`: ``(hyper-parameters, state)`` ready to apply, nothing changed."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("an optimizer state dict is {'state': {...}, 'param_groups': [{...}]}")
        groups, entries_by_index = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1 or not isinstance(groups[0], dict):
            raise ValueError(f"expected one parameter group (a dict), got {groups!r}")
        unknown = sorted(set(groups[0]) - set(self._hyper))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no hyper-parameters {unknown}")
        hyper = self.check_hyper({**self.param_groups[0], **groups[0]})
        if not isinstance(entries_by_index, dict):
            raise ValueError(
                f"optimizer state must be a dict by parameter index, got {type(entries_by_index).__name__}"
            )
        new_state: dict[int, dict[str, Any]] = {}
        for key, entries in entries_by_index.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)) or not str(key).isdigit():
                raise ValueError(f"optimizer state keys are parameter indices, got {key!r}")
            index = int(key)
            if index >= len(self.params) or not isinstance(entries, dict):
                raise ValueError(f"state for parameter {index}, but the optimizer has {len(self.params)} parameters")
            self.check_state(index, entries)
            p = self.params[index]
            new_state[index] = {
                k: asarray(np.array(to_host(v), copy=True), like=p.data, dtype=p.data.dtype)
                if hasattr(v, "shape")
                else v
                for k, v in entries.items()
            }
        return hyper, new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items())
        return f"{type(self).__name__}({len(self.params)} parameters, {args})"
