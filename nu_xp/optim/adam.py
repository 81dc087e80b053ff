"""``Adam`` and ``AdamW``: adaptive moment estimation, with L2 or decoupled weight decay.

``torch.optim.Adam``'s update at step t (``AdamW``: decoupled decay
``θ ← θ (1 - η λ)`` first, and no ``λ θ`` in g)::

    g ← g + λ θ
    m ← m + (1 - β1)(g - m);      v ← β2 v + (1 - β2) g²
    θ ← θ - (η / (1 - β1^t)) · m / (sqrt(v) / sqrt(1 - β2^t) + ε)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import ops_of, to_host
from ..layers import Parameter
from ..validation import check_number
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


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
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @classmethod
    def check_hyper(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Checked hyper-parameters (also those a checkpoint brings): finite, in range."""
        betas = values["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        b1 = check_number("betas[0]", betas[0], 0.0, 1.0)
        b2 = check_number("betas[1]", betas[1], 0.0, 1.0)
        if b1 >= 1.0 or b2 >= 1.0:
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        return {
            "lr": check_number("lr", values["lr"]),
            "betas": (b1, b2),
            "eps": check_number("eps", values["eps"], open_low=True),
            "weight_decay": check_number("weight_decay", values["weight_decay"]),
        }

    def check_state(self, index: int, entries: dict[str, Any], group: dict[str, Any]) -> None:
        """A parameter's Adam state: a step count ≥ 1 and moments of its shape, the second one ≥ 0."""
        super().check_state(index, entries, group)
        self._check_entries(index, entries, {"step", "exp_avg", "exp_avg_sq"})
        if not np.all(to_host(entries["exp_avg_sq"]) >= 0):
            raise ValueError(f"Adam state of parameter {index}: exp_avg_sq must be non-negative")

    def _update(self, p: Parameter, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> Any:
        theta = p.data
        b1, b2 = group["betas"]
        lr, decay = group["lr"], group["weight_decay"]
        if not state:
            xp = ops_of(theta).xp
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(theta)
            state["exp_avg_sq"] = xp.zeros_like(theta)
        state["step"] += 1
        t = state["step"]
        if decay:
            if self._decoupled:
                p.data *= 1.0 - lr * decay
            else:
                grad = grad + decay * theta
        # augmented assignments: in place where the backend's arrays are writeable, a new array where
        # they are immutable (JAX), hence the store back into the state
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - b1) * (grad - m)
        v *= b2
        v += (1.0 - b2) * (grad * grad)
        state["exp_avg"], state["exp_avg_sq"] = m, v
        step_size = lr / (1.0 - b1**t)
        denom = ops_of(v).xp.sqrt(v) / (1.0 - b2**t) ** 0.5 + group["eps"]  # t may be traced (compile_step)
        return step_size * (m / denom)


class AdamW(Adam):
    """AdamW (``torch.optim.AdamW``): Adam with decoupled weight decay ``θ ← θ (1 - η λ)``; default λ = 0.01.

    Parameters
    ----------
    params : Layer, iterable of Parameter, or parameter groups
        What to optimize (as for every [`Optimizer`][nu_xp.optim.optimizer.Optimizer]).
    lr : float, default 1e-3
        The step size.
    betas : tuple of float, default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
        Added to the denominator.
    weight_decay : float, default 1e-2
        Decoupled weight decay: ``θ ← θ - lr·weight_decay·θ`` before the Adam step.
    """

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
