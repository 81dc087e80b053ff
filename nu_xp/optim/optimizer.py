"""``Optimizer``: the base of every optimizer (parameters, per-parameter state, hyper-parameters)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..backends import asarray, to_host
from ..layers import Layer, Parameter
from ..validation import check_number

__all__ = ["Optimizer", "OptimizerWrapper", "unwrap"]


def unwrap(optimizer: Any) -> Any:
    """The optimizer inside a wrapper that holds one as ``.optimizer`` (an [`OptimizerWrapper`][]), or itself.

    Schedules, ``fit`` and checkpoints act on the wrapped optimizer, so a wrapper works wherever it does.
    """
    while not isinstance(optimizer, Optimizer) and "optimizer" in getattr(optimizer, "__dict__", {}):
        optimizer = vars(optimizer)["optimizer"]
    return optimizer


class OptimizerWrapper:
    """Base of the wrappers of an optimizer (``DistributedOptimizer``, ``LossScaleOptimizer``): they change
    ``step()``; everything else (``zero_grad``, ``lr``, ``param_groups``, ``state_dict``…) is the wrapped
    optimizer's, and an assignment (``wrapper.lr = 0.5``) reaches it.

    Parameters
    ----------
    optimizer : Optimizer
        The ``nu_xp.optim`` optimizer (or another wrapper) to wrap.
    """

    def __init__(self, optimizer: Any) -> None:
        if not isinstance(unwrap(optimizer), Optimizer):
            raise TypeError(f"{type(self).__name__} wraps a nu_xp.optim optimizer, got {type(optimizer).__name__}")
        object.__setattr__(self, "optimizer", optimizer)

    def step(self) -> Any:
        """The wrapped optimizer's step (a subclass does something around it)."""
        return self.optimizer.step()

    def __getattr__(self, name: str) -> Any:
        """Everything else is the wrapped optimizer's (``zero_grad``, ``lr``, ``param_groups``, ``state_dict``…)."""
        if name == "optimizer":  # not set yet (a copy or an unpickling in progress): no recursion
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assignments reach the wrapped optimizer: ``wrapper.lr = 0.5`` sets its learning rate."""
        setattr(self.optimizer, name, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.optimizer!r})"


class Optimizer:
    """Base class: parameter groups with their hyper-parameters, per-parameter ``state``, ``step()``.

    ``params`` may be a model (a [`Layer`][nu_xp.layers.base.Layer]), ``named_parameters()`` (its pairs, or a
    dict of them), an iterable of [`Parameter`][nu_xp.layers.parameter.Parameter], or
    PyTorch-style parameter groups: a list of dicts, each with ``"params"``
    and any hyper-parameters that differ from the optimizer's arguments::

        Adam([{"params": model[0].parameters(), "lr": 1e-2}, {"params": model[2].parameters()}], lr=1e-3)

    ``param_groups`` holds them (``[{"params": [...], "lr": ..., ...}]``);
    ``optimizer.lr`` (and every other hyper-parameter name) reads the first
    group and, assigned, sets every group; schedules act on each group.

    Parameters
    ----------
    params : Layer, named pairs, dict, iterable of Parameter, or list of dict
        What to optimize (see above).
    defaults : dict
        The optimizer's hyper-parameters, the defaults of every group.
    """

    _hyper: tuple[str, ...] = ("lr",)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        object.__setattr__(self, "defaults", self.check_hyper(defaults))
        groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for raw in self._raw_groups(params):
            unknown = sorted(set(raw) - {"params", *self._hyper})
            if unknown:
                raise ValueError(f"{type(self).__name__}: a parameter group has unknown keys {unknown}")
            members = self._parameters(raw["params"])
            unique = list({id(p): p for p in members}.values())
            if len(unique) != len(members):
                warnings.warn(
                    f"{type(self).__name__}: a parameter group lists the same parameter more than once; it is "
                    "kept once (stepped once), as PyTorch does",
                    UserWarning,
                    stacklevel=3,
                )
                members = unique
            if any(id(p) in seen for p in members):
                raise ValueError(f"{type(self).__name__}: a parameter appears in more than one group")
            seen.update(id(p) for p in members)
            hyper = self.check_hyper({**self.defaults, **{k: v for k, v in raw.items() if k != "params"}})
            groups.append({"params": members, **hyper})
        object.__setattr__(self, "param_groups", groups)
        object.__setattr__(self, "params", [p for g in groups for p in g["params"]])
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        self.state: dict[int, dict[str, Any]] = {}

    def _raw_groups(self, params: Any) -> list[dict[str, Any]]:
        if isinstance(params, Layer):
            return [{"params": params.parameters()}]
        if isinstance(params, dict):
            return [{"params": list(params.values())}]
        items = list(params)
        if items and all(isinstance(item, dict) for item in items):
            for item in items:
                if "params" not in item:
                    raise ValueError(f"{type(self).__name__}: every parameter group needs a 'params' entry")
            return items
        return [{"params": items}]

    def _parameters(self, params: Any) -> list[Parameter]:
        if isinstance(params, Layer):
            params = params.parameters()
        elif isinstance(params, Parameter):
            params = [params]
        items = [p[1] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) else p for p in params]
        for p in items:  # (name, Parameter) pairs, as named_parameters() yields them, count as their Parameter
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} takes Parameters (model.parameters()), got {type(p).__name__}")
        return items

    def __getattr__(self, name: str) -> Any:
        """A hyper-parameter by name (``optimizer.lr``) is the first group's."""
        groups = self.__dict__.get("param_groups")
        if groups and name in type(self)._hyper:
            return groups[0][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        """Assigning a hyper-parameter (``optimizer.lr = 0.01``) sets it, checked, in every group."""
        if name in type(self)._hyper and "param_groups" in self.__dict__:
            for group in self.param_groups:
                group.update(self.check_hyper({**self._hyper_of(group), name: value}))
            return
        object.__setattr__(self, name, value)

    def _hyper_of(self, group: dict[str, Any]) -> dict[str, Any]:
        return {k: group[k] for k in self._hyper}

    def zero_grad(self) -> None:
        """Set every parameter's grad to None."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient (and is not frozen), with its group's hyper-parameters.

        When no parameter has a gradient, nothing can change: a
        ``RuntimeWarning`` (once per optimizer) says the model's ``backward``
        was not run with the loss's gradient.
        """
        index = 0
        state = self.state
        if state:
            first = self.params[0].data  # moved by model.to(...)? one comparison of cached metadata per step
            where = (type(first), first.dtype, getattr(first, "device", None))
            if where != self.__dict__.get("_where"):
                self._follow_parameters(where)
        stepped = False
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.requires_grad:  # a frozen parameter stays as it is
                    entries = state.get(index)
                    if entries is None:
                        entries = state[index] = {}
                    # θ ← θ - Δθ, the one place a parameter changes: an augmented assignment, in place where
                    # the backend's arrays are writeable (no new array), rebound where they are immutable (JAX)
                    delta = self._update(p, p.grad, entries, group)  # may rebind p.data (AdamW)
                    p.data -= delta
                    stepped = True
                index += 1
        if not stepped and not self.__dict__.get("_warned_no_grad"):
            object.__setattr__(self, "_warned_no_grad", True)
            warnings.warn(
                f"{type(self).__name__}.step(): no parameter has a gradient, so nothing changed. In nu_xp the "
                "model's backward takes the loss's gradient: model.backward(loss.backward()) before step() "
                "(loss.backward() alone only returns dL/dpred)",
                RuntimeWarning,
                stacklevel=2,
            )

    def __getstate__(self) -> dict[str, Any]:
        """Pickle and deepcopy without the cached place of the parameters (a JAX ``Device`` does not pickle);
        the next step records it again."""
        state = self.__dict__.copy()
        state.pop("_where", None)
        return state

    def _follow_parameters(self, where: tuple[Any, Any, Any]) -> None:
        """Move the state to where the parameters now are (after ``model.to(...)``), checked once per step.

        [`step`][] compares the first parameter's type, dtype and device
        with what was recorded; only when they differ is every state array
        moved here (``asarray`` like its parameter: backend, device and dtype).
        """
        object.__setattr__(self, "_where", where)
        for index, p in enumerate(self.params):
            entries = self.state.get(index)
            for key, value in (entries or {}).items():
                if hasattr(value, "shape") and hasattr(value, "dtype"):
                    entries[key] = asarray(value, like=p.data, dtype=p.data.dtype)  # type: ignore[index]

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> Any:
        """The step ``Δθ`` of this parameter from ``grad`` and its ``state`` (updated here); [`step`][] applies it.

        [`step`][] is the one place a parameter changes: ``p.data -= Δθ``,
        an augmented assignment: in place where the backend's arrays are
        writeable (``ndarray.__isub__``: no new array); where they are
        immutable (JAX arrays have no ``__isub__``) Python computes
        ``p.data - Δθ`` and rebinds ``p.data`` to it.
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [{hyper…, "params": [indices]}]}`` (host)."""
        state = {
            index: {k: (np.array(to_host(v)) if hasattr(v, "shape") else v) for k, v in entries.items()}
            for index, entries in self.state.items()
        }
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**self._hyper_of(group), "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    @classmethod
    def check_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Checked hyper-parameters ``{name: value}``; subclasses check theirs (the constructor uses it too)."""
        return {"lr": check_number("lr", values["lr"])}

    def check_state(self, index: int, entries: dict[str, Any], group: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless ``entries`` fits parameter ``index``: arrays of its shape, finite.

        ``group`` holds the (checked) hyper-parameters that will apply to it, for
        optimizers whose state depends on them (RMSprop's ``centered``, ``momentum``).
        Subclasses check their own entries completely: a state that loads must step.
        """
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

    def _check_entries(
        self, index: int, entries: dict[str, Any], required: set[str], allowed: set[str] | None = None
    ) -> None:
        """The state's keys: every ``required`` one present, nothing outside ``allowed`` (default: required);
        arrays where arrays belong, and ``step`` a positive integer."""
        name = type(self).__name__
        allowed = required if allowed is None else allowed
        missing, unknown = sorted(required - set(entries)), sorted(set(entries) - allowed)
        if missing or unknown:
            raise ValueError(
                f"{name} state of parameter {index}: missing {missing}, unknown {unknown} (it holds {sorted(entries)})"
            )
        for key, value in entries.items():
            if key == "step":
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                    raise ValueError(
                        f"{name} state of parameter {index}: step must be a positive integer, got {value!r}"
                    )
            elif not hasattr(value, "shape"):
                raise ValueError(f"{name} state of parameter {index}: {key!r} must be an array, got {value!r}")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore [`state_dict`][] output, all or nothing: everything is checked before anything changes.

        Hyper-parameters go through the same checks as the constructor's
        arguments; per-parameter state through [`check_state`][]; arrays are
        moved to each parameter's backend. Raises ``ValueError`` or ``TypeError``.
        """
        self.apply_state_dict(*self.check_state_dict(state_dict))

    def apply_state_dict(self, hyper: list[dict[str, Any]], state: dict[int, dict[str, Any]]) -> None:
        """Install what [`check_state_dict`][] returned."""
        for group, values in zip(self.param_groups, hyper):
            group.update(values)
        self.state = state

    def check_state_dict(self, state_dict: Any) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
        """The checks of [`load_state_dict`][]: ``(hyper-parameters per group, state)``, nothing changed."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("an optimizer state dict is {'state': {...}, 'param_groups': [{...}]}")
        groups, entries_by_index = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(self.param_groups):
            raise ValueError(f"expected {len(self.param_groups)} parameter group(s), got {groups!r}")
        hyper = []
        for mine, saved in zip(self.param_groups, groups):
            if not isinstance(saved, dict):
                raise ValueError(f"a parameter group must be a dict, got {saved!r}")
            unknown = sorted(set(saved) - {"params", *self._hyper})
            if unknown:
                raise ValueError(f"{type(self).__name__} has no hyper-parameters {unknown}")
            if "params" in saved and (
                not isinstance(saved["params"], list) or len(saved["params"]) != len(mine["params"])
            ):
                raise ValueError("a saved parameter group holds another number of parameters than this optimizer's")
            hyper.append(
                self.check_hyper({**self._hyper_of(mine), **{k: v for k, v in saved.items() if k != "params"}})
            )
        if not isinstance(entries_by_index, dict):
            raise ValueError(
                f"optimizer state must be a dict by parameter index, got {type(entries_by_index).__name__}"
            )
        group_of = [g for g, group in enumerate(self.param_groups) for _ in group["params"]]
        new_state: dict[int, dict[str, Any]] = {}
        for key, entries in entries_by_index.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)) or not str(key).isdigit():
                raise ValueError(f"optimizer state keys are parameter indices, got {key!r}")
            index = int(key)
            if index >= len(self.params) or not isinstance(entries, dict):
                raise ValueError(f"state for parameter {index}, but the optimizer has {len(self.params)} parameters")
            self.check_state(index, entries, hyper[group_of[index]])
            p = self.params[index]
            new_state[index] = {
                k: asarray(np.array(to_host(v), copy=True), like=p.data, dtype=p.data.dtype)
                if hasattr(v, "shape")
                else v
                for k, v in entries.items()
            }
        return hyper, new_state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._hyper_of(self.param_groups[0]).items())
        groups = f", {len(self.param_groups)} groups" if len(self.param_groups) > 1 else ""
        return f"{type(self).__name__}({len(self.params)} parameters{groups}, {args})"
