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

from ..backends import namespace_of
from ..layers import Parameter
from ..validation import check_number
from .optimizer import Optimizer

__all__ = ["SGD"]


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
        inplace = self._in_place(theta)
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
