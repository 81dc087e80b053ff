"""Losses: ``value = loss.forward(pred, target)``, ``grad = loss.backward()``, with PyTorch's values.

Every loss takes ``reduction="mean" | "sum" | "none"`` (see [`base`][]) and
is stable for |x| up to 1e4 in float32: no overflow or divide warnings,
finite values and gradients.

* [`base`][] — ``Loss``;
* [`regression`][] — ``MSELoss``, ``L1Loss``, ``HuberLoss``;
* [`binary`][] — ``BCELoss``, ``BCEWithLogitsLoss``;
* [`crossentropy`][] — ``CrossEntropyLoss``, ``NLLLoss``.
"""

from .base import Loss
from .binary import BCELoss, BCEWithLogitsLoss
from .crossentropy import CrossEntropyLoss, NLLLoss
from .regression import HuberLoss, L1Loss, MSELoss

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "L1Loss", "Loss", "MSELoss", "NLLLoss"]
