"""Optimizers and learning-rate schedules, with the update rules of ``torch.optim``.

Each optimizer updates ``Parameter.data`` from ``Parameter.grad`` (parameters
whose grad is None are skipped, as in PyTorch), in place where the backend's
arrays are writeable, else by assigning new arrays. Every optimizer takes
PyTorch-style parameter groups (``[{"params": [...], "lr": 0.1}, {"params": [...]}]``).

* [`optimizer`][] — ``Optimizer``, the base;
* [`sgd`][] — ``SGD``;  [`adam`][] — ``Adam``, ``AdamW``;  [`rmsprop`][] — ``RMSprop``;
* [`schedules`][] — ``StepLR``, ``ExponentialLR``, ``CosineAnnealingLR``;
* [`loss_scale`][] — ``LossScaleOptimizer`` (dynamic loss scaling for float16, around any optimizer).

A new optimizer is a new module here with an ``Optimizer`` subclass that
implements ``_update(p, grad, state)``.
"""

from .adam import Adam, AdamW
from .loss_scale import LossScaleOptimizer
from .optimizer import Optimizer, OptimizerWrapper, unwrap
from .rmsprop import RMSprop
from .schedules import CosineAnnealingLR, ExponentialLR, LRScheduler, StepLR
from .sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LossScaleOptimizer",
    "Optimizer",
    "OptimizerWrapper",
    "RMSprop",
    "StepLR",
    "unwrap",
]
