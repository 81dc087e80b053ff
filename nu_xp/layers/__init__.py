"""Layers: each one states its forward formula and its backward (the chain rule).

* [`base`][] — ``Layer`` (the tree of sub-layers, parameters, buffers, extra state, what a
  forward keeps, backend moves, config);  [`parameter`][] — ``Parameter``;
  [`state`][] — state dicts and their checks;  [`registry`][] — ``register_layer``;
* [`linear`][] — ``Linear``;  [`embedding`][] — ``Embedding``, ``TokenAndPosition``;
* [`conv`][] — ``Conv1d``, ``Conv2d``;  [`conv_transpose`][] — ``ConvTranspose1d/2d``;
  [`pooling`][] — ``MaxPool1d/2d``, ``AvgPool1d/2d`` (all built on the sliding windows of [`windows`][]);
* [`resample`][] — ``AdaptiveAvgPool1d/2d``, ``Upsample`` (one matrix per spatial axis);
* [`normalization`][] — ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``;
* [`activations`][] — ``Identity``, ``ReLU``, ``Sigmoid``, ``Tanh``, ``Softmax``,
  ``LeakyReLU``, ``ELU``, ``GELU``, ``SiLU``, ``Softplus``, ``LogSoftmax``;
* [`dropout`][] — ``Dropout``;  [`shape`][] — ``Flatten``, ``Unflatten``, ``TimeStep``;
* [`recurrent`][] — ``RNN``, ``LSTM``, ``GRU`` (backpropagation through time), their cells in [`cells`][];
* [`attention`][] — ``MultiheadAttention``;  [`transformer`][] — ``TransformerEncoderLayer``;
* [`containers`][] — ``LayerList``, ``LayerDict``, ``Sequential``, ``Residual``, ``Select``.

A new family of layers is a new module here.
"""

from .activations import (
    ELU,
    GELU,
    Activation,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiheadAttention
from .base import Layer, check_grad
from .containers import LayerDict, LayerList, Residual, Select, Sequential
from .conv import Conv1d, Conv2d
from .conv_transpose import ConvTranspose1d, ConvTranspose2d
from .dropout import Dropout
from .embedding import Embedding, TokenAndPosition
from .linear import Linear
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .parameter import Parameter, accumulate
from .pooling import AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .recurrent import GRU, LSTM, RNN
from .registry import LAYER_REGISTRY, register_layer
from .resample import AdaptiveAvgPool1d, AdaptiveAvgPool2d, Upsample
from .shape import Flatten, TimeStep, Unflatten
from .state import IncompatibleKeys
from .transformer import TransformerEncoderLayer

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "LAYER_REGISTRY",
    "LSTM",
    "RNN",
    "Activation",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "Dropout",
    "Embedding",
    "Flatten",
    "GroupNorm",
    "Identity",
    "IncompatibleKeys",
    "Layer",
    "LayerDict",
    "LayerList",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool1d",
    "MaxPool2d",
    "MultiheadAttention",
    "Parameter",
    "ReLU",
    "Residual",
    "Select",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "TimeStep",
    "TokenAndPosition",
    "TransformerEncoderLayer",
    "Unflatten",
    "Upsample",
    "accumulate",
    "check_grad",
    "register_layer",
]
