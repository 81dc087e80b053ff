"""Losses: ``value = loss.forward(pred, target)`` (a 0-d array), ``grad = loss.backward()``.

Every loss is the mean over all elements (``CrossEntropyLoss``: over the N
samples), with the same value as the PyTorch function of the same name and
``reduction="mean"``. ``backward`` returns ``dL/dpred`` of the shape of
``pred``. All are stable for |x| up to 1e4 in float32: no overflow or divide
warnings, finite values and gradients.

* :mod:`.base` — ``Loss``;
* :mod:`.regression` — ``MSELoss``;
* :mod:`.binary` — ``BCELoss``, ``BCEWithLogitsLoss``;
* :mod:`.crossentropy` — ``CrossEntropyLoss``.
"""

from .base import Loss
from .binary import BCELoss, BCEWithLogitsLoss
from .crossentropy import CrossEntropyLoss
from .regression import MSELoss

__all__ = ["BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "Loss", "MSELoss"]
