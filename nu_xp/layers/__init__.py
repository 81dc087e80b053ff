"""Layers: each one states its forward formula and its backward (the chain rule).

* :mod:`.base` — ``Parameter``, ``Layer`` (parameters, buffers, extra state,
  backend moves, state dicts, config) and ``register_layer``;
* :mod:`.linear` — ``Linear``;
* :mod:`.activations` — ``Identity``, ``ReLU``, ``Sigmoid``, ``Tanh``, ``Softmax``;
* :mod:`.dropout` — ``Dropout``;
* :mod:`.containers` — ``Sequential``.

A new family of layers (convolution, pooling, normalization…) is a new module here.
"""

from .activations import Activation, Identity, ReLU, Sigmoid, Softmax, Tanh
from .base import LAYER_REGISTRY, IncompatibleKeys, Layer, Parameter, accumulate, register_layer
from .containers import Sequential
from .dropout import Dropout
from .linear import Linear

__all__ = [
    "LAYER_REGISTRY",
    "Activation",
    "Dropout",
    "Identity",
    "IncompatibleKeys",
    "Layer",
    "Linear",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "accumulate",
    "register_layer",
]
