"""The ONNX graph under construction: values, nodes, initializers, and the ops whose form changes by opset.

A converter (see [`nu_xp.onnx_export`][nu_xp.onnx_export]) never touches protobuf: it calls
``g.op("Relu", x)``, ``g.param(layer, "weight")``, ``g.const(0.5)`` and gets
back [`Value`][] objects. Every value carries ``example``, the output of the
nu_xp layer itself on a small probe batch, so a converter can read the shapes
it must reproduce (and nothing may bake that probe batch size into the graph:
the tests run batches 1 and 7 through a graph traced with 2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends import to_host

__all__ = ["Graph", "Value"]


@dataclass(frozen=True)
class Value:
    """One tensor of the graph: its ONNX name, and what nu_xp computed for it on the probe batch.

    Parameters
    ----------
    name : str
        The tensor's name in the ONNX graph.
    example : array
        What the nu_xp layer computed for it on the probe batch (its shape and dtype are read).
    """

    name: str
    example: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.example.shape)

    @property
    def ndim(self) -> int:
        return len(self.example.shape)


class Graph:
    """Collects nodes and initializers; ``helper`` and ``TensorProto`` come from the ``onnx`` package.

    Parameters
    ----------
    onnx : module
        The imported ``onnx`` package.
    opset : int
        The opset written (converters read ``g.opset`` where an operator changed).
    dtype : numpy.dtype
        The graph's float type; float initializers are cast to it.
    """

    def __init__(self, onnx: Any, opset: int, dtype: np.dtype) -> None:
        self.onnx, self.opset, self.dtype = onnx, opset, np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()
        self._params: dict[tuple[int, str], str] = {}
        self.scope: list[str] = []

    # ------------------------------------------------------------------ names
    def fresh(self, hint: str) -> str:
        """A name not used yet, prefixed with the current layer path (``"0.conv"``, ``"2.Relu_1"``)."""
        base = ".".join([*self.scope, hint]) if self.scope else hint
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    @contextlib.contextmanager
    def within(self, name: str) -> Iterator[None]:
        """Names made inside start with ``name`` too (a sub-layer written by its parent's converter)."""
        self.scope.append(name)
        try:
            yield
        finally:
            self.scope.pop()

    # ------------------------------------------------------------------ data
    def initializer(self, array: Any, hint: str) -> str:
        """Store ``array`` (any backend; floats in the graph's dtype) and return its name."""
        host = np.asarray(to_host(array) if not isinstance(array, np.ndarray) else array)
        if host.dtype.kind == "f":
            host = host.astype(self.dtype)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(host, order="C"), name))
        return name

    def param(self, owner: Any, attr: str) -> str:
        """The initializer of ``owner.<attr>`` (a ``Parameter`` or a buffer), named by its state_dict key.

        A parameter shared by two layers (weight tying) becomes one initializer, used twice.
        """
        value = getattr(owner, attr)
        data = getattr(value, "data", value)
        key = (id(value), "")
        if key not in self._params:
            self._params[key] = self.initializer(data, attr)
        return self._params[key]

    def const(self, value: Any, dtype: Any = None, hint: str = "const") -> str:
        """A constant tensor (a Python number becomes a 0-d tensor of the graph's float dtype)."""
        array = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        return self.initializer(array, hint)

    def ints(self, values: Any, hint: str = "shape") -> str:
        """A 1-d int64 constant (shapes, axes, starts and ends of slices)."""
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), np.int64, hint)

    # ------------------------------------------------------------------ nodes
    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any) -> Any:
        """Add one node; returns its output name (or a list of ``outputs`` names). ``""`` skips an optional input."""
        names = [self.fresh(op_type) for _ in range(outputs)]
        node_name = self.fresh(f"{op_type}_node")
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, name=node_name, **attrs))
        return names[0] if outputs == 1 else names

    # ------------------------------------------------------------------ ops whose form depends on the opset
    def reduce_mean(self, x: str, axes: list[int], keepdims: bool = True) -> str:
        """``ReduceMean``: ``axes`` became an input in opset 18."""
        if self.opset >= 18:
            return self.op("ReduceMean", x, self.ints(axes, "axes"), keepdims=int(keepdims))
        return self.op("ReduceMean", x, axes=list(axes), keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: list[int]) -> str:
        return self.op("Unsqueeze", x, self.ints(axes, "axes"))

    def squeeze(self, x: str, axes: list[int]) -> str:
        return self.op("Squeeze", x, self.ints(axes, "axes"))

    def reshape(self, x: str, shape: list[int]) -> str:
        """``Reshape`` with ``0`` meaning "this axis as in the input" and ``-1`` "whatever is left"."""
        return self.op("Reshape", x, self.ints(shape, "shape"))

    def transpose(self, x: str, perm: list[int]) -> str:
        return self.op("Transpose", x, perm=list(perm))

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        return self.op("Slice", x, self.ints([start], "starts"), self.ints([end], "ends"), self.ints([axis], "axes"))

    def matmul_t(self, x: str, weight: str, bias: str | None, rank: int) -> str:
        """``x @ Wᵀ + b``: one ``Gemm`` for 2-d inputs, ``MatMul`` + ``Add`` otherwise."""
        if rank == 2:
            return self.op("Gemm", x, weight, *([bias] if bias else []), transB=1)
        y = self.op("MatMul", x, self.transpose(weight, [1, 0]))
        return self.op("Add", y, bias) if bias else y
