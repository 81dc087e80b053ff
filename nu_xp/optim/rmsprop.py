"""``RMSprop``: gradients divided by a running root-mean-square, as ``torch.optim.RMSprop``.

At step t, with α the smoothing constant, μ the momentum, λ the weight decay::

    g ← g + λ θ
    v ← α v + (1 - α) g²
    centered:  m ← α m + (1 - α) g;   s = sqrt(v - m²) + ε      else  s = sqrt(v) + ε
    μ > 0:     b ← μ b + g / s;       θ ← θ - η b                else  θ ← θ - η g / s
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import ops_of, to_host
from ..layers import Parameter
from ..validation import check_number
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop (``torch.optim.RMSprop``) with PyTorch's defaults; see the module for the update.

    Parameters
    ----------
    params : model, parameters or parameter groups
    lr : float, default 0.01
    alpha : float, default 0.99
        Smoothing constant of the squared-gradient average.
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
        Normalize by the estimated variance (``v - m²``) instead of ``v``.
    """

    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(
        self,
        params: Any,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, {**defaults, "momentum": momentum, "centered": centered})

    @classmethod
    def check_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Checked hyper-parameters: finite, in range."""
        if not isinstance(values["centered"], bool):
            raise TypeError(f"centered must be True or False, got {values['centered']!r}")
        return {
            "lr": check_number("lr", values["lr"]),
            "alpha": check_number("alpha", values["alpha"], 0.0, 1.0),
            "eps": check_number("eps", values["eps"], open_low=True),
            "weight_decay": check_number("weight_decay", values["weight_decay"]),
            "momentum": check_number("momentum", values["momentum"]),
            "centered": values["centered"],
        }

    def check_state(self, index: int, entries: dict[str, Any], group: dict[str, Any]) -> None:
        """A parameter's RMSprop state: ``step``, ``square_avg`` (≥ 0), and exactly the buffers its options use:
        ``momentum_buffer`` with momentum > 0, ``grad_avg`` with ``centered``."""
        super().check_state(index, entries, group)
        required = {"step", "square_avg"}
        if group["momentum"]:
            required.add("momentum_buffer")
        if group["centered"]:
            required.add("grad_avg")
        self._check_entries(index, entries, required)
        if not np.all(to_host(entries["square_avg"]) >= 0):
            raise ValueError(f"RMSprop state of parameter {index}: square_avg must be non-negative")

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> Any:
        theta = p.data
        xp = ops_of(theta).xp
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * theta
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(theta)
            if momentum:
                state["momentum_buffer"] = xp.zeros_like(theta)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(theta)
        state["step"] += 1
        v = state["square_avg"] = alpha * state["square_avg"] + (1.0 - alpha) * (grad * grad)
        if group["centered"]:
            m = state["grad_avg"] = alpha * state["grad_avg"] + (1.0 - alpha) * grad
            denom = xp.sqrt(v - m * m) + eps
        else:
            denom = xp.sqrt(v) + eps
        step = grad / denom
        if momentum:
            step = state["momentum_buffer"] = (
                momentum * state.setdefault("momentum_buffer", xp.zeros_like(theta)) + step
            )
        return group["lr"] * step
