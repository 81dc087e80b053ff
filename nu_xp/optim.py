"""Optimizers and learning-rate schedules, with the update rules of ``torch.optim``.

Each optimizer updates ``Parameter.data`` from ``Parameter.grad`` (parameters
whose grad is None are skipped, as in PyTorch). Arrays that can be written in
place (numpy, cupy, torch, array_api_strict) are updated in place; for
backends whose arrays are immutable the same formulas assign new arrays.

Notation: θ parameter, g gradient, η learning rate, λ weight decay, t step.

``SGD``::

    g ← g + λ θ
    b ← g (first step) or μ b + (1 - dampening) g      (if μ ≠ 0)
    g ← g + μ b (nesterov) or b                          (if μ ≠ 0)
    θ ← θ - η g

``Adam`` (``AdamW``: decoupled decay ``θ ← θ (1 - η λ)`` first, no ``λ θ`` in g)::

    g ← g + λ θ
    m ← m + (1 - β1)(g - m);      v ← β2 v + (1 - β2) g²
    θ ← θ - (η / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)

Schedules change ``optimizer.lr`` once per ``step()`` (call it once per
epoch); they are also ``fit`` callbacks, so ``fit(..., callbacks=[StepLR(opt, 10)])``
steps them at every epoch end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import array_api_compat
import numpy as np

from .backend import asarray, namespace_of, to_host
from .layers import Layer, Parameter
from .validation import check_number, check_positive_int

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "Optimizer",
    "StepLR",
]

_WRITEABLE: dict[type, bool] = {}


def _writeable(a: Any) -> bool:
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


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (``torch.optim.SGD``).

    Parameters
    ----------
    params : model or parameters
    lr : float
        Learning rate η > 0.
    momentum : float, default 0
        μ ≥ 0.
    nesterov : bool, default False
        Needs μ > 0 and dampening = 0.
    weight_decay : float, default 0
        λ ≥ 0 (added to the gradient).
    dampening : float, default 0, keyword-only
        As in ``torch.optim.SGD`` (the contract's positional order puts nesterov third).
    """

    _hyper = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        *,
        dampening: float = 0.0,
    ) -> None:
        lr = check_number("lr", lr)
        momentum = check_number("momentum", momentum)
        dampening = check_number("dampening", dampening)
        weight_decay = check_number("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
        super().__init__(params)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = bool(nesterov), weight_decay

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any]) -> None:
        theta = p.data
        inplace = _writeable(theta)
        if self.weight_decay:
            grad = grad + self.weight_decay * theta
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = namespace_of(grad).asarray(grad, copy=True)
            elif inplace:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * grad if self.dampening else grad
            else:
                buf = self.momentum * buf + (1.0 - self.dampening) * grad
            state["momentum_buffer"] = buf
            grad = grad + self.momentum * buf if self.nesterov else buf
        if inplace:
            theta -= self.lr * grad
        else:
            p.data = theta - self.lr * grad


class Adam(Optimizer):
    """Adam (``torch.optim.Adam``): adaptive moments with bias correction; L2 ``weight_decay``.

    Parameters
    ----------
    params : model or parameters
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    """

    _hyper = ("lr", "betas", "eps", "weight_decay")
    _decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        lr = check_number("lr", lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        b1 = check_number("betas[0]", betas[0], 0.0, 1.0)
        b2 = check_number("betas[1]", betas[1], 0.0, 1.0)
        if b1 >= 1.0 or b2 >= 1.0:
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        eps = check_number("eps", eps)
        weight_decay = check_number("weight_decay", weight_decay)
        super().__init__(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, (b1, b2), eps, weight_decay

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any]) -> None:
        theta = p.data
        inplace = _writeable(theta)
        b1, b2 = self.betas
        if not state:
            xp = namespace_of(theta)
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(theta)
            state["exp_avg_sq"] = xp.zeros_like(theta)
        state["step"] += 1
        t = state["step"]
        if self.weight_decay:
            if self._decoupled:
                if inplace:
                    theta *= 1.0 - self.lr * self.weight_decay
                else:
                    theta = p.data = theta * (1.0 - self.lr * self.weight_decay)
            else:
                grad = grad + self.weight_decay * theta
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if inplace:
            m += (1.0 - b1) * (grad - m)
            v *= b2
            v += (1.0 - b2) * (grad * grad)
        else:
            m = state["exp_avg"] = m + (1.0 - b1) * (grad - m)
            v = state["exp_avg_sq"] = b2 * v + (1.0 - b2) * (grad * grad)
        step_size = self.lr / (1.0 - b1**t)
        denom = namespace_of(v).sqrt(v) / math.sqrt(1.0 - b2**t) + self.eps
        if inplace:
            theta -= step_size * (m / denom)
        else:
            p.data = theta - step_size * (m / denom)


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay ``θ ← θ (1 - η λ)``; default λ = 0.01."""

    _decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


# ============================================================================ schedules


class LRScheduler:
    """Base of the schedules: ``step()`` sets ``optimizer.lr = base_lr · factor(epoch)``."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} takes a nu_xp optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0

    def get_lr(self) -> float:
        """The learning rate for ``self.last_epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and update the optimizer's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_last_lr(self) -> list[float]:
        """``[optimizer.lr]``, as in PyTorch."""
        return [self.optimizer.lr]

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """``fit`` callback hook: one ``step()`` per epoch; logs the new ``lr``."""
        self.step()
        logs["lr"] = self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        """``{"base_lr": ..., "last_epoch": ...}``."""
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        self.optimizer.lr = self.get_lr() if self.last_epoch else self.base_lr


class StepLR(LRScheduler):
    """``lr = base_lr · gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_positive_int("step_size", step_size)
        self.gamma = check_number("gamma", gamma)

    def get_lr(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """``lr = base_lr · gamma ** epoch`` (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = check_number("gamma", gamma)

    def get_lr(self) -> float:
        return self.base_lr * self.gamma**self.last_epoch


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base_lr - eta_min) · (1 + cos(π · epoch / T_max)) / 2``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = check_positive_int("T_max", T_max)
        self.eta_min = check_number("eta_min", eta_min)

    def get_lr(self) -> float:
        cos = math.cos(math.pi * self.last_epoch / self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + cos) / 2.0
