"""ONNX forms of the feed-forward layers (eval mode): one converter per class, each a few ONNX nodes.

Each converter writes the formula of its layer's docstring; where ONNX has the
operator (``Gemm``, ``Conv``, ``MaxPool``, ``BatchNormalization``,
``LayerNormalization``) it is used with PyTorch's conventions spelled out as
attributes, otherwise the formula is written with elementary nodes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import layers as nn
from . import convert, converter
from .graph import Graph, Value

_cls: type  # the loop variables below, registering one converter for several classes
_fn: Any

# ---------------------------------------------------------------- containers


@converter(nn.Sequential)
def _sequential(g: Graph, layer: Any, x: Any) -> Any:
    for i, child in enumerate(layer):
        x = convert(g, child, x, str(i))
    return _names(x)


@converter(nn.Residual)
def _residual(g: Graph, layer: Any, x: Value) -> str:
    y = x
    for i, child in enumerate(layer):
        y = convert(g, child, y, str(i))
    return g.op("Add", x.name, y.name)


@converter(nn.Select)
def _select(g: Graph, layer: Any, x: Any) -> Any:
    return _names(x[layer.index])


def _names(x: Any) -> Any:
    """The names of a Value structure (what a converter returns)."""
    return x.name if isinstance(x, Value) else tuple(_names(v) for v in x)


# ---------------------------------------------------------------- linear, shape, embedding


@converter(nn.Linear)
def _linear(g: Graph, layer: Any, x: Value) -> str:
    bias = g.param(layer, "bias") if layer.bias is not None else None
    return g.matmul_t(x.name, g.param(layer, "weight"), bias, x.ndim)


@converter(nn.Flatten)
def _flatten(g: Graph, layer: Any, x: Value) -> str:
    ndim = max(x.ndim, 1)
    start, end = layer.start_dim % ndim, layer.end_dim % ndim
    # axes before start keep their size (0 = "as in the input"), the merged one is -1, the rest are fixed
    shape = [0] * start + [-1] + [int(n) for n in x.shape[end + 1 :]]
    return g.reshape(x.name, shape)


@converter(nn.Embedding)
def _embedding(g: Graph, layer: Any, x: Value) -> str:
    indices = x.name
    if not str(x.example.dtype).endswith("int64"):
        indices = g.op("Cast", indices, to=g.onnx.TensorProto.INT64)
    return g.op("Gather", g.param(layer, "weight"), indices, axis=0)


# ---------------------------------------------------------------- activations


def _passthrough(g: Graph, layer: Any, x: Value) -> str:
    return x.name


for _cls in (nn.Identity, nn.Dropout):
    converter(_cls)(_passthrough)  # eval mode: Dropout is the identity


@converter(nn.ReLU)
def _relu(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Relu", x.name)


@converter(nn.Sigmoid)
def _sigmoid(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Sigmoid", x.name)


@converter(nn.Tanh)
def _tanh(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Tanh", x.name)


@converter(nn.Softmax)
def _softmax(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Softmax", x.name, axis=layer.axis)


@converter(nn.LogSoftmax)
def _log_softmax(g: Graph, layer: Any, x: Value) -> str:
    return g.op("LogSoftmax", x.name, axis=layer.axis)


@converter(nn.LeakyReLU)
def _leaky_relu(g: Graph, layer: Any, x: Value) -> str:
    return g.op("LeakyRelu", x.name, alpha=float(layer.negative_slope))


@converter(nn.ELU)
def _elu(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Elu", x.name, alpha=float(layer.alpha))


@converter(nn.SiLU)
def _silu(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Mul", x.name, g.op("Sigmoid", x.name))


@converter(nn.GELU)
def _gelu(g: Graph, layer: Any, x: Value) -> str:
    """ONNX's ``Gelu`` from opset 20; before it, ``x·Φ(x)`` written out (erf, or the tanh form)."""
    if g.opset >= 20:
        return g.op("Gelu", x.name, approximate=layer.approximate)
    if layer.approximate == "tanh":  # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        cube = g.op("Mul", g.op("Mul", x.name, x.name), x.name)
        inner = g.op("Add", x.name, g.op("Mul", cube, g.const(0.044715)))
        phi = g.op("Tanh", g.op("Mul", inner, g.const(math.sqrt(2.0 / math.pi))))
    else:  # 0.5·x·(1 + erf(x/√2))
        phi = g.op("Erf", g.op("Mul", x.name, g.const(1.0 / math.sqrt(2.0))))
    return g.op("Mul", g.op("Mul", x.name, g.const(0.5)), g.op("Add", phi, g.const(1.0)))


@converter(nn.Softplus)
def _softplus(g: Graph, layer: Any, x: Value) -> str:
    """``log(1 + exp(β·x))/β``, and ``x`` itself where ``β·x > threshold`` (as PyTorch)."""
    scaled = g.op("Mul", x.name, g.const(layer.beta))
    soft = g.op("Div", g.op("Softplus", scaled), g.const(layer.beta))
    return g.op("Where", g.op("Greater", scaled, g.const(layer.threshold)), x.name, soft)


# ---------------------------------------------------------------- convolution and pooling


def _pads(layer: Any) -> list[int]:
    """nu_xp's ``((left, right), …)`` per axis as ONNX's ``[x1_begin, x2_begin, …, x1_end, x2_end, …]``."""
    return [lo for lo, _ in layer._pads] + [hi for _, hi in layer._pads]


def _conv(g: Graph, layer: Any, x: Value) -> str:
    bias = [g.param(layer, "bias")] if layer.bias is not None else []
    return g.op(
        "Conv",
        x.name,
        g.param(layer, "weight"),
        *bias,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        dilations=list(layer.dilation),
        pads=_pads(layer),
        group=layer.groups,
    )


def _max_pool(g: Graph, layer: Any, x: Value) -> str:
    # ONNX pads max pooling with -inf, as nu_xp and PyTorch do
    attrs: dict[str, Any] = {
        "kernel_shape": list(layer.kernel_size),
        "strides": list(layer.stride),
        "pads": _pads(layer),
    }
    return g.op("MaxPool", x.name, **attrs)


def _avg_pool(g: Graph, layer: Any, x: Value) -> str:
    attrs: dict[str, Any] = {
        "kernel_shape": list(layer.kernel_size),
        "strides": list(layer.stride),
        "pads": _pads(layer),
    }
    return g.op("AveragePool", x.name, count_include_pad=1, **attrs)  # PyTorch's default: divide by K


for _cls, _fn in (
    (nn.Conv1d, _conv),
    (nn.Conv2d, _conv),
    (nn.MaxPool1d, _max_pool),
    (nn.MaxPool2d, _max_pool),
    (nn.AvgPool1d, _avg_pool),
    (nn.AvgPool2d, _avg_pool),
):
    converter(_cls)(_fn)


# ---------------------------------------------------------------- normalization


def _batch_norm(g: Graph, layer: Any, x: Value) -> str:
    """Eval mode: ``(x - running_mean)/√(running_var + ε)·γ + β``; without running statistics, the batch's."""
    c = layer.num_features
    weight = g.param(layer, "weight") if layer.affine else g.const(np.ones(c), hint="ones")
    bias = g.param(layer, "bias") if layer.affine else g.const(np.zeros(c), hint="zeros")
    if layer.track_running_stats:
        mean, var = g.param(layer, "running_mean"), g.param(layer, "running_var")
        return g.op("BatchNormalization", x.name, weight, bias, mean, var, epsilon=float(layer.eps))
    # PyTorch (and nu_xp) normalize with the batch's own statistics when there are no running ones
    axes = [0, *range(2, x.ndim)]
    mean = g.reduce_mean(x.name, axes)
    centered = g.op("Sub", x.name, mean)
    var = g.reduce_mean(g.op("Mul", centered, centered), axes)
    normed = g.op("Div", centered, g.op("Sqrt", g.op("Add", var, g.const(layer.eps))))
    channel = [c] + [1] * (x.ndim - 2)
    return g.op("Add", g.op("Mul", normed, g.reshape(weight, channel)), g.reshape(bias, channel))


converter(nn.BatchNorm1d)(_batch_norm)
converter(nn.BatchNorm2d)(_batch_norm)


@converter(nn.LayerNorm)
def _layer_norm(g: Graph, layer: Any, x: Value) -> str:
    shape = tuple(layer.normalized_shape)
    weight = g.param(layer, "weight") if layer.weight is not None else g.const(np.ones(shape), hint="ones")
    bias = [g.param(layer, "bias")] if layer.bias is not None else []
    return g.op("LayerNormalization", x.name, weight, *bias, axis=-len(shape), epsilon=float(layer.eps))
