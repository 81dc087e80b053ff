"""ONNX forms of the sequence layers: ``RNN``/``LSTM``/``GRU`` as ONNX's recurrent operators,
``MultiheadAttention`` and ``TransformerEncoderLayer`` written out with ``MatMul`` and ``Softmax``.

ONNX's recurrent operators compute the same cells as PyTorch (and nu_xp) with
the gates in another order and the two biases side by side: LSTM ``i f g o`` →
``i o f c``, GRU ``r z n`` → ``z r h`` (``linear_before_reset=1``: PyTorch's GRU
applies ``r`` after the hidden projection). They run one layer at a time, on
``(L, N, H)``; a stack is one node per layer, each direction pair in one node.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import layers as nn
from ..backends import to_host
from . import convert, converter
from .graph import Graph, Value

#: PyTorch's gate blocks in ONNX's order
GATE_ORDER = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}


def _reorder(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """The gate blocks of ``a`` (rows ``G·H`` of a weight, or a bias) in ``order``."""
    blocks = np.split(a, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _recurrent(g: Graph, layer: Any, x: Value) -> tuple[str, Any]:
    mode = type(layer).__name__  # RNN, LSTM or GRU: ONNX has an operator of each name
    order = GATE_ORDER.get(mode, (0,))
    dirs = 2 if layer.bidirectional else 1
    suffixes = ("", "_reverse")[:dirs]
    batched = x.ndim == 3
    seq = x.name
    if not batched:
        seq = g.unsqueeze(seq, [1])  # (L, H) → (L, 1, H)
    elif layer.batch_first:
        seq = g.transpose(seq, [1, 0, 2])  # ONNX's layout 0: (L, N, H)
    op = mode if mode in GATE_ORDER else "RNN"
    attrs: dict[str, Any] = {"hidden_size": layer.hidden_size, "direction": "bidirectional" if dirs == 2 else "forward"}
    if mode == "GRU":
        attrs["linear_before_reset"] = 1
    elif op == "RNN":
        attrs["activations"] = ["Relu" if layer.nonlinearity == "relu" else "Tanh"] * dirs
    finals: list[list[str]] = [[], []]
    for k in range(layer.num_layers):

        def stacked(kind: str, k: int = k) -> np.ndarray:
            return np.stack([_reorder(to_host(getattr(layer, f"{kind}_l{k}{s}").data), order) for s in suffixes])

        inputs = [
            seq,
            g.initializer(stacked("weight_ih"), f"weight_ih_l{k}.onnx"),
            g.initializer(stacked("weight_hh"), f"weight_hh_l{k}.onnx"),
        ]
        if layer.bias:  # ONNX's B: [W_b, R_b] per direction
            biases = np.concatenate([stacked("bias_ih"), stacked("bias_hh")], axis=1)
            inputs.append(g.initializer(biases, f"bias_l{k}.onnx"))
        outs = g.op(op, *inputs, outputs=3 if op == "LSTM" else 2, **attrs)
        # Y is (L, directions, N, H): the directions side by side, as PyTorch's output
        seq = g.reshape(g.transpose(outs[0], [0, 2, 1, 3]), [0, 0, -1])
        for part, name in zip(finals, outs[1:]):
            part.append(name)
    states = [g.op("Concat", *part, axis=0) if len(part) > 1 else part[0] for part in finals if part]
    if not batched:
        seq = g.squeeze(seq, [1])
        states = [g.squeeze(s, [1]) for s in states]
    elif layer.batch_first:
        seq = g.transpose(seq, [1, 0, 2])
    return seq, (states[0], states[1]) if op == "LSTM" else states[0]


for _cls in (nn.RNN, nn.LSTM, nn.GRU):
    converter(_cls)(_recurrent)


def attention(g: Graph, mha: Any, x: Value, *, causal: bool, need_weights: bool) -> tuple[str, str | None]:
    """Self-attention ``softmax(Q Kᵀ/√d + M) V`` per head, then ``out_proj``; also the head-averaged weights."""
    e, heads, d = mha.embed_dim, mha.num_heads, mha.head_dim
    batched = x.ndim == 3
    h = x.name
    if not batched:
        h = g.unsqueeze(h, [0])  # (L, E) → (1, L, E)
    elif not mha.batch_first:
        h = g.transpose(h, [1, 0, 2])  # (L, N, E) → (N, L, E)
    bias = g.param(mha, "in_proj_bias") if mha.in_proj_bias is not None else None
    qkv = g.matmul_t(h, g.param(mha, "in_proj_weight"), bias, 3)
    q, k, v = (g.slice(qkv, i * e, (i + 1) * e, 2) for i in range(3))

    def split_heads(a: str, perm: list[int]) -> str:
        return g.transpose(g.reshape(a, [0, 0, heads, d]), perm)

    scores = g.op(
        "MatMul",
        g.op("Mul", split_heads(q, [0, 2, 1, 3]), g.const(1.0 / math.sqrt(d))),  # (N, h, L, d)
        split_heads(k, [0, 2, 3, 1]),  # (N, h, d, L)
    )
    if causal:
        scores = g.op("Where", _future(g, h), g.const(-math.inf), scores)
    p = g.op("Softmax", scores, axis=-1)
    merged = g.reshape(g.transpose(g.op("MatMul", p, split_heads(v, [0, 2, 1, 3])), [0, 2, 1, 3]), [0, 0, e])
    with g.within("out_proj"):
        proj = mha.out_proj
        out = g.matmul_t(merged, g.param(proj, "weight"), g.param(proj, "bias") if proj.bias is not None else None, 3)
    weights = g.reduce_mean(p, [1], keepdims=False) if need_weights else None
    if not batched:
        out = g.squeeze(out, [0])
        weights = g.squeeze(weights, [0]) if weights else None
    elif not mha.batch_first:
        out = g.transpose(out, [1, 0, 2])
    return out, weights


def _future(g: Graph, h: str) -> str:
    """``(L, L)`` booleans, True above the diagonal (no looking ahead), for ``h`` of shape ``(N, L, E)``."""
    length = g.slice(g.op("Shape", h), 1, 2, 0)
    square = g.op("Concat", length, length, axis=0)
    ones = g.op("ConstantOfShape", square, value=g.onnx.numpy_helper.from_array(np.ones(1, g.dtype)))
    return g.op("Cast", g.op("Trilu", ones, g.ints([1], "k"), upper=1), to=g.onnx.TensorProto.BOOL)


@converter(nn.MultiheadAttention)
def _multihead_attention(g: Graph, layer: Any, x: Value) -> tuple[str, str | None]:
    """In a ``Sequential`` the layer is called with the query alone: self-attention, weights averaged."""
    return attention(g, layer, x, causal=False, need_weights=True)


@converter(nn.TransformerEncoderLayer)
def _encoder_layer(g: Graph, layer: Any, x: Value) -> str:
    """Post-norm: ``norm2(s + ff(s))``, ``s = norm1(x + sa(x))``.

    Pre-norm: ``s + ff(norm2(s))``, ``s = x + sa(norm1(x))``.
    """

    def self_attention(v: Value) -> str:
        with g.within("self_attn"):
            return attention(g, layer.self_attn, v, causal=layer.causal, need_weights=False)[0]

    def feed_forward(v: Value) -> str:
        hidden = convert(g, layer.activation_layer, convert(g, layer.linear1, v, "linear1"), "activation_layer")
        return convert(g, layer.linear2, hidden, "linear2").name

    if layer.norm_first:
        s = Value(g.op("Add", x.name, self_attention(convert(g, layer.norm1, x, "norm1"))), x.example)
        return g.op("Add", s.name, feed_forward(convert(g, layer.norm2, s, "norm2")))
    s = convert(g, layer.norm1, Value(g.op("Add", x.name, self_attention(x)), x.example), "norm1")
    return convert(g, layer.norm2, Value(g.op("Add", s.name, feed_forward(s)), x.example), "norm2").name
