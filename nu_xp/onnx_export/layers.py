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


@converter(nn.TokenAndPosition)
def _token_and_position(g: Graph, layer: Any, x: Value) -> str:
    """The token rows plus the first ``L`` position rows (``L`` read from the input's shape)."""
    tokens = convert(g, layer.tok, x, "tok").name
    length = g.slice(g.op("Shape", x.name), 1, 2, 0)
    with g.within("pos"):
        positions = g.op("Slice", g.param(layer.pos, "weight"), g.ints([0]), length, g.ints([0]))
    return g.op("Add", tokens, positions)


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


# ---------------------------------------------------------------- decoders


def _conv_transpose(g: Graph, layer: Any, x: Value) -> str:
    """ONNX's ``ConvTranspose`` has PyTorch's weight layout ``(C_in, C_out/groups, *kernel)`` and arguments."""
    bias = [g.param(layer, "bias")] if layer.bias is not None else []
    pads = list(layer.padding) * 2
    return g.op(
        "ConvTranspose",
        x.name,
        g.param(layer, "weight"),
        *bias,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        dilations=list(layer.dilation),
        pads=pads,
        output_padding=list(layer.output_padding),
        group=layer.groups,
    )


converter(nn.ConvTranspose1d)(_conv_transpose)
converter(nn.ConvTranspose2d)(_conv_transpose)


@converter(nn.GroupNorm)
def _group_norm(g: Graph, layer: Any, x: Value) -> str:
    """Each sample's groups as ``(N, G, -1)``, normalized over their last axis (``InstanceNormalization`` with unit
    scale), back to the input's shape, then the per-channel ``γ``, ``β`` (the opset-21 ``GroupNormalization``
    is not in every runtime yet)."""
    groups = layer.num_groups
    grouped = g.reshape(x.name, [0, groups, -1])
    ones, zeros = g.const(np.ones(groups), hint="ones"), g.const(np.zeros(groups), hint="zeros")
    normed = g.op("InstanceNormalization", grouped, ones, zeros, epsilon=float(layer.eps))
    y = g.op("Reshape", normed, g.op("Shape", x.name))
    if layer.weight is None:
        return y
    channel = [layer.num_channels] + [1] * (x.ndim - 2)
    return g.op("Add", g.op("Mul", y, g.reshape(g.param(layer, "weight"), channel)),
                g.reshape(g.param(layer, "bias"), channel))  # fmt: skip


@converter(nn.Unflatten)
def _unflatten(g: Graph, layer: Any, x: Value) -> str:
    """The input's shape with axis ``dim`` replaced by the sizes: ``Shape``, two ``Slice``s, one ``Concat``."""
    axis = layer.dim % x.ndim
    shape = g.op("Shape", x.name)
    parts = [g.slice(shape, 0, axis, 0)] if axis else []
    parts.append(g.ints(list(layer.unflattened_size), "sizes"))
    if axis + 1 < x.ndim:
        parts.append(g.slice(shape, axis + 1, x.ndim, 0))
    return g.op("Reshape", x.name, g.op("Concat", *parts, axis=0))


@converter(nn.TimeStep)
def _time_step(g: Graph, layer: Any, x: Value) -> str:
    return g.op("Gather", x.name, g.const(np.int64(layer.index), np.int64, "index"), axis=1 if layer.batch_first else 0)


def _adaptive_avg_pool(g: Graph, layer: Any, x: Value) -> str:
    """``GlobalAveragePool`` for an output of 1; ``AveragePool`` where the size divides the input; else the
    averaging matrices themselves (``MatMul``), which fix the input's spatial size."""
    spatial = tuple(x.shape[2:])
    out = [n if m is None else m for n, m in zip(spatial, layer.output_size)]
    if all(m == 1 for m in out):
        return g.op("GlobalAveragePool", x.name)
    if all(n % m == 0 for n, m in zip(spatial, out)):
        kernel = [n // m for n, m in zip(spatial, out)]
        return g.op("AveragePool", x.name, kernel_shape=kernel, strides=kernel)
    return _matrices(g, x, [nn.resample.average_matrix(n, m) for n, m in zip(spatial, out)])


def _matrices(g: Graph, x: Value, mats: list[np.ndarray]) -> str:
    """``y = M_h · x · M_wᵀ``: the resampling matrices of ``nu_xp.layers.resample`` as constants."""
    y = g.op("MatMul", x.name, g.const(mats[-1].T, hint="matrix"))
    if len(mats) == 2:
        y = g.op("MatMul", g.const(mats[0], hint="matrix"), y)
    return y


converter(nn.AdaptiveAvgPool1d)(_adaptive_avg_pool)
converter(nn.AdaptiveAvgPool2d)(_adaptive_avg_pool)


@converter(nn.Upsample)
def _upsample(g: Graph, layer: Any, x: Value) -> str:
    """ONNX's ``Resize`` with PyTorch's source positions spelled out: nearest ``floor(i·r)`` is ``asymmetric`` +
    ``floor``; linear is ``half_pixel`` (or ``align_corners``). A scale factor stays a scale (every input
    size works); a size stays a size."""
    nd = x.ndim - 2
    attrs: dict[str, Any]
    if layer.mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        transform = "align_corners" if layer.align_corners else "half_pixel"  # ATen's, also for one output
        attrs = {"mode": "linear", "coordinate_transformation_mode": transform}
    if layer.size is not None:
        sizes = layer.size if isinstance(layer.size, (tuple, list)) else [layer.size] * nd
        full = g.op("Concat", g.slice(g.op("Shape", x.name), 0, 2, 0), g.ints(list(sizes), "sizes"), axis=0)
        return g.op("Resize", x.name, "", "", full, **attrs)
    factors = layer.scale_factor if isinstance(layer.scale_factor, (tuple, list)) else [layer.scale_factor] * nd
    scales = g.const(np.asarray([1.0, 1.0, *factors], np.float32), np.float32, "scales")
    return g.op("Resize", x.name, "", scales, **attrs)
