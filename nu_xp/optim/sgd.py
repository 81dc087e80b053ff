"""``SGD``: stochastic gradient descent with momentum, Nesterov momentum and weight decay.

``torch.optim.SGD``'s update, with θ parameter, g gradient, η learning rate,
λ weight decay, μ momentum::

    g ← g + λ θ
    b ← g (first step) or μ b + (1 - dampening) g      (if μ ≠ 0)
    g ← g + μ b (nesterov) or b                          (if μ ≠ 0)
    θ ← θ - η g
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import ops_of
from ..layers import Parameter
from ..validation import check_number
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay (``torch.optim.SGD``).

    The arguments come in PyTorch's order, so ``SGD(params, 0.1, 0.9)`` means what it means there.

    Parameters
    ----------
    params : model or parameters
    lr : float, default 1e-3
        Learning rate η > 0.
    momentum : float, default 0
        μ ≥ 0.
    dampening : float, default 0
        τ: the momentum buffer adds ``(1 - τ) g``.
    weight_decay : float, default 0
        λ ≥ 0 (added to the gradient).
    nesterov : bool, default False
        Needs μ > 0 and dampening = 0.
    """

    _hyper = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "nesterov": nesterov}
        super().__init__(params, {**defaults, "weight_decay": weight_decay})

    @classmethod
    def check_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Checked hyper-parameters (also those a checkpoint brings): finite, in range, consistent."""
        nesterov = values["nesterov"]
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        hyper = {
            "lr": check_number("lr", values["lr"]),
            "momentum": check_number("momentum", values["momentum"]),
            "dampening": check_number("dampening", values["dampening"], 0.0, 1.0),
            "nesterov": bool(nesterov),
            "weight_decay": check_number("weight_decay", values["weight_decay"]),
        }
        if hyper["nesterov"] and (hyper["momentum"] <= 0 or hyper["dampening"] != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")
        return hyper

    def check_state(self, index: int, entries: dict[str, Any], group: dict[str, Any]) -> None:
        """A parameter's SGD state: at most a ``momentum_buffer`` of its shape."""
        super().check_state(index, entries, group)
        self._check_entries(index, entries, set(), {"momentum_buffer"})

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> Any:
        theta = p.data
        lr, momentum, dampening, decay = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        if decay:
            grad = grad + decay * theta
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = ops_of(grad).xp.asarray(grad, copy=True)
            else:  # in place where arrays are writeable, a new array where they are immutable (JAX)
                buf *= momentum
                buf += (1.0 - dampening) * grad if dampening else grad
            state["momentum_buffer"] = buf
            grad = grad + momentum * buf if group["nesterov"] else buf
        return lr * grad
