"""``LossScaleOptimizer``: dynamic loss scaling around any optimizer, for float16 training.

float16 has 5 exponent bits: a gradient below 6e-8 rounds to zero. Multiplying
the loss, and with it every gradient, by a large scale ``S`` keeps small
gradients representable; they are divided by ``S`` again before the step.
``S`` is dynamic, with ``torch.amp.GradScaler``'s rule (and in Keras' place:
a wrapper of the optimizer, beside ``DistributedOptimizer``)::

    a step whose gradients hold Inf or NaN:   skipped, S ← S · backoff_factor
    growth_interval steps without overflow:  S ← S · growth_factor

``S`` never falls below ``min_scale``: a step that still overflows there stops
training with [`NonFiniteLossError`][nu_xp.errors.NonFiniteLossError] (the gradients overflow whatever the
scale; PyTorch's scaler would skip every step from then on, and a halving
without end reaches 0.0). ``fit(..., precision="16-mixed")`` uses it; by hand::

    scaler = nu_xp.optim.LossScaleOptimizer(optimizer)
    model.backward(scaler.scale_grad(loss.backward()))   # dL/dpred · S
    scaler.step()                                        # θ.grad / S, checked, then the step or a skip
"""

from __future__ import annotations

from typing import Any

from ..backends import ops_of
from ..errors import NonFiniteLossError
from ..validation import check_number, check_positive_int
from .optimizer import OptimizerWrapper, unwrap

__all__ = ["LossScaleOptimizer"]


class LossScaleOptimizer(OptimizerWrapper):
    """Wraps an optimizer: gradients of a loss scaled by ``scale`` are unscaled, checked, then stepped or skipped.

    Everything else (``zero_grad``, ``lr``, ``param_groups``, ``state_dict``…)
    is the wrapped optimizer's.

    Parameters
    ----------
    optimizer : Optimizer
        The ``nu_xp.optim`` optimizer (or a wrapper of one, such as ``DistributedOptimizer``) to wrap.
    init_scale : float, default 2**16
        The first scale.
    growth_factor : float, default 2.0
        The factor after ``growth_interval`` steps without overflow.
    backoff_factor : float, default 0.5
        The factor after a step whose gradients overflowed (the step is skipped).
    growth_interval : int, default 2000
        Clean steps between two growths.
    min_scale : float, default 2**-16
        The smallest scale; an overflow at this scale raises ``NonFiniteLossError``.

    Attributes
    ----------
    scale : float
        The scale in use.
    skipped : int
        How many steps were skipped.
    """

    def __init__(
        self,
        optimizer: Any,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        min_scale: float = 2.0**-16,
    ) -> None:
        super().__init__(optimizer)
        values = {
            "scale": check_number("init_scale", init_scale, 0.0, open_low=True),
            "growth_factor": check_number("growth_factor", growth_factor, 1.0),
            "backoff_factor": check_number("backoff_factor", backoff_factor, 0.0, 1.0, open_low=True),
            "growth_interval": check_positive_int("growth_interval", growth_interval),
            "min_scale": check_number("min_scale", min_scale, 0.0, open_low=True),
            "clean_steps": 0,
            "skipped": 0,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def scale_grad(self, grad: Any) -> Any:
        """``grad · scale``: the gradient of the scaled loss (give it to the model's backward)."""
        return grad * self.scale

    def step(self) -> bool:
        """Unscale every gradient, then step, or skip a step whose gradients overflowed; returns whether it stepped.

        The check is one count of non-finite entries over every gradient,
        read once (one device synchronisation per step).
        """
        params = [p for p in unwrap(self.optimizer).params if p.grad is not None]
        inverse = 1.0 / self.scale
        bad: Any = 0
        for p in params:
            p.grad = p.grad * inverse
            ops = ops_of(p.grad)
            bad = bad + ops.sum(ops.astype(~ops.xp.isfinite(p.grad), ops.xp.int32))
        if params and int(bad):
            if self.scale <= self.min_scale:
                raise NonFiniteLossError(
                    f"the float16 gradients overflowed at the smallest loss scale ({self.min_scale}) after "
                    f"{self.skipped} skipped steps: the gradients are not finite at any scale (lower the learning "
                    "rate, check the data, or train with precision='bf16-mixed' or '32')"
                )
            object.__setattr__(self, "scale", max(self.scale * self.backoff_factor, self.min_scale))
            object.__setattr__(self, "clean_steps", 0)
            object.__setattr__(self, "skipped", self.skipped + 1)
            for p in params:
                p.grad = None
            return False
        self.optimizer.step()
        clean = self.clean_steps + 1
        if clean == self.growth_interval:
            object.__setattr__(self, "scale", self.scale * self.growth_factor)
            clean = 0
        object.__setattr__(self, "clean_steps", clean)
        return True

    def __repr__(self) -> str:
        return f"LossScaleOptimizer({self.optimizer!r}, scale={self.scale})"
