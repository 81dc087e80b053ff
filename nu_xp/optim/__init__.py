"""Optimizers and learning-rate schedules, with the update rules of ``torch.optim``.

Each optimizer updates ``Parameter.data`` from ``Parameter.grad`` (parameters
whose grad is None are skipped, as in PyTorch), in place where the backend's
arrays are writeable, else by assigning new arrays. Every optimizer takes
PyTorch-style parameter groups (``[{"params": [...], "lr": 0.1}, {"params": [...]}]``).

* [`optimizer`][] — ``Optimizer``, the base;
* [`sgd`][] — ``SGD``;  [`adam`][] — ``Adam``, ``AdamW``;  [`rmsprop`][] — ``RMSprop``;
* [`schedules`][] (also ``nu_xp.optim.lr_scheduler``, PyTorch's name) — ``StepLR``, ``ExponentialLR``,
  ``CosineAnnealingLR``, ``LinearLR``, ``OneCycleLR``, ``SequentialLR``, ``ReduceLROnPlateau``;
* [`swa_utils`][] — ``AveragedModel`` (EMA and SWA weights);
* [`loss_scale`][] — ``LossScaleOptimizer`` (dynamic loss scaling for float16, around any optimizer);
* [`clip`][] — ``clip_grad_norm_``, ``clip_grad_value_``, ``ClipGradNorm`` (clipping around any optimizer).

A new optimizer is a new module here with an ``Optimizer`` subclass that
implements ``_update(p, grad, state)``.
"""

from . import schedules as lr_scheduler
from . import swa_utils
from .adam import Adam, AdamW
from .clip import ClipGradNorm, clip_grad_norm_, clip_grad_value_
from .loss_scale import LossScaleOptimizer
from .optimizer import Optimizer, OptimizerWrapper, unwrap
from .rmsprop import RMSprop
from .schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from .sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "ClipGradNorm",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "LossScaleOptimizer",
    "OneCycleLR",
    "Optimizer",
    "OptimizerWrapper",
    "RMSprop",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
    "clip_grad_norm_",
    "clip_grad_value_",
    "lr_scheduler",
    "swa_utils",
    "unwrap",
]
