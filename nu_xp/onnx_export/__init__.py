"""``nu_xp.export_onnx``: a trained model as an ONNX file that ONNX Runtime (or any ONNX runtime) can run.

How it works, in three parts:

* ``graph.py``: [`Graph`][nu_xp.onnx_export.graph.Graph], the graph under construction (nodes, initializers named by
  the model's ``state_dict`` keys, the ops whose form changes between opsets);
* ``layers.py`` and ``sequence.py``: one *converter* per layer class, a function
  ``convert(g, layer, x) -> names`` that writes the layer's eval-mode forward as ONNX nodes;
* this module: the registry of converters, [`convert`][] (which walks the model and checks
  each layer against its own forward on a probe batch), and [`export_onnx`][].

A layer of your own gets exported by registering a converter for its class::

    from nu_xp.onnx_export import converter

    @converter(MyScale)
    def _(g, layer, x):                  # x: a Value (its .name, and .example: the probe input)
        return g.op("Mul", x.name, g.param(layer, "scale"))

This module imports nothing from ``onnx`` until [`export_onnx`][] runs, so a
layer's converter can be registered where the layer is defined.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..archive import atomic_write
from ..grad_mode import no_grad
from ..layers.probe import probe_input
from ..validation import check_sample_shape
from .graph import Graph, Value

__all__ = ["FLOAT32_ONLY", "MIN_OPSET", "convert", "converter", "export_onnx"]

#: the lowest opset the converters write (``LayerNormalization`` arrived in 17)
MIN_OPSET = 17
#: the default: the newest opset that ONNX Runtime releases of the last three years all run
DEFAULT_OPSET = 17

CONVERTERS: dict[type, Callable[..., Any]] = {}


def converter(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(g, layer, x)`` as the ONNX form of layers of exactly ``cls`` (not its subclasses).

    ``x`` is a [`Value`][nu_xp.onnx_export.graph.Value] (or a tuple of them, after a layer with a tuple
    output); ``fn`` returns the output's name (or a tuple of names, in the
    structure of the layer's own output). Exact classes only: a subclass may
    compute something else, so it needs a converter of its own.
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        CONVERTERS[cls] = fn
        return fn

    return register


def convert(g: Graph, layer: Any, x: Any, name: str | None = None) -> Any:
    """The ONNX form of ``layer`` applied to ``x`` (Values), with the probe outputs attached as examples.

    ``name`` is the layer's path inside its parent (``"0"``, ``"self_attn"``): node and
    initializer names start with the whole path, as the ``state_dict`` keys do.
    """
    _load_builtin_converters()
    fn = CONVERTERS.get(type(layer))
    if name is not None:
        g.scope.append(name)
    try:
        where = ".".join(g.scope) or "the model"
        if fn is None:
            raise ValueError(
                f"export_onnx cannot express layer {where!r} ({type(layer).__name__}): there is no ONNX converter "
                f"for it; register one with @nu_xp.onnx_export.converter({type(layer).__name__}) "
                "(see the tutorial 'Deploy with ONNX Runtime')"
            )
        names = fn(g, layer, x)
        example = layer(_examples(x))
    finally:
        if name is not None:
            g.scope.pop()
    return _attach(names, example, where)


def _examples(x: Any) -> Any:
    if isinstance(x, Value):
        return x.example
    return tuple(_examples(v) for v in x)


def _attach(names: Any, example: Any, where: str) -> Any:
    if isinstance(names, str):
        return Value(names, example)
    if not isinstance(example, (tuple, list)) or len(example) != len(names):
        raise RuntimeError(f"export_onnx: the converter of {where!r} returned {names!r} for an output {example!r}")
    return tuple(_attach(n, e, where) for n, e in zip(names, example))


def _leaves(x: Any) -> list[Value]:
    if isinstance(x, Value):
        return [x]
    return [leaf for v in x for leaf in _leaves(v)]


def _leaf_arrays(x: Any) -> list[Any]:
    if isinstance(x, (tuple, list)):
        return [a for v in x for a in _leaf_arrays(v)]
    return [] if x is None else [x]


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError('export_onnx needs the onnx package: pip install "nu_xp[onnx]"') from None
    return onnx


def _check_opset(onnx: Any, opset: Any) -> int:
    newest = int(onnx.defs.onnx_opset_version())
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"export_onnx: opset must be an int from {MIN_OPSET} to {newest} (the newest this onnx package "
            f"knows), got {opset!r}"
        )
    return int(opset)


def _check_dtype(dtype: Any) -> np.dtype:
    name = str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1]
    if name not in ("float32", "float64"):
        raise ValueError(f"export_onnx: dtype must be 'float32' or 'float64', got {dtype!r}")
    return np.dtype(name)


def export_onnx(
    model: Any, path: str | os.PathLike, input_shape: Any, *, opset: int | None = None, dtype: Any = None
) -> Path:
    """Write ``model`` (in eval mode) as an ONNX file whose batch axis, and every axis the model lets vary, is dynamic.

    Parameters
    ----------
    model : Layer
        Any model built from nu_xp's layers (``Sequential``, ``Residual``, the sequence layers…),
        on any backend. It is left unchanged: a deep copy in eval mode is traced.
    path : str or os.PathLike
        The file to write (``.onnx`` by convention). It is written to a temporary
        file beside it and renamed, as [`nu_xp.save`][nu_xp.model_file.save] does.
    input_shape : int or tuple of int
        One sample's shape, as for ``model.summary``: ``(1, 28, 28)`` for ``(N, 1, 28, 28)`` inputs.
    opset : int, optional
        The ONNX opset (default 17; at least 17). From opset 20 ``GELU`` is ONNX's own ``Gelu``.
    dtype : str or dtype, optional
        The graph's float type: the model's own by default. A float64 model whose
        graph uses an op that ONNX Runtime's CPU runs in float32 only
        (``nu_xp.onnx_export.FLOAT32_ONLY``: ``Conv``, ``LSTM``…) is
        refused unless ``dtype`` is given: ``"float32"`` to run it there,
        ``"float64"`` to write float64 for another runtime.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    The graph's input is ``"input"``: ``float32`` (or the model's dtype), or
    ``int64`` indices when the first layer is an ``Embedding``. Its outputs are
    ``"output"``, or ``"output_0"``, ``"output_1"``… in order when the model
    returns a tuple (an LSTM's ``(output, (h_n, c_n))`` gives three). The
    batch axis ``"N"`` is dynamic, and so is every axis the model lets vary
    (``"dim1"``, ``"dim2"``…, counting the batch as ``dim0``): a sequence's
    length, the height and width of a fully convolutional model. An axis is
    tried at other sizes; it is dynamic when the model takes them and the
    graph written for them is the same. The others keep the size of
    ``input_shape``.
    Initializers carry the ``state_dict`` names (``"0.weight"``); weights that
    ONNX wants in another layout (recurrent gates, transposed projections) get
    a suffix. The file passes ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    ValueError
        A layer that has no ONNX form (the message names its path and class), a bad
        ``input_shape`` or ``opset``.
    ImportError
        The ``onnx`` package is not installed (``pip install "nu_xp[onnx]"``).

    Examples
    --------
    >>> import nu_xp, numpy as np, onnxruntime, tempfile, os
    >>> model = nu_xp.Sequential(nu_xp.Linear(3, 4, seed=0), nu_xp.ReLU(), nu_xp.Linear(4, 2, seed=1))
    >>> path = nu_xp.export_onnx(model, os.path.join(tempfile.mkdtemp(), "model.onnx"), input_shape=(3,))
    >>> session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> x = np.ones((5, 3), dtype=np.float32)
    >>> np.allclose(session.run(None, {"input": x})[0], nu_xp.to_host(model.predict(x)), rtol=1e-5, atol=1e-6)
    True
    """
    onnx = _import_onnx()
    shape = check_sample_shape("export_onnx", input_shape)
    version = _check_opset(onnx, opset)
    if not callable(getattr(model, "forward", None)) or not hasattr(model, "backend"):
        raise TypeError(f"export_onnx takes a nu_xp model (a Layer), got {type(model).__name__}")
    probe = copy.deepcopy(model).eval()
    probe.clear_cache()
    integer = probe.input_is_indices()
    graph_dtype = _check_dtype(probe.backend.dtype_name if dtype is None else dtype)
    g, out, other = _trace(onnx, version, graph_dtype, probe, shape)
    if dtype is None and graph_dtype == np.float64:
        only32 = sorted({node.op_type for node in g.nodes} & FLOAT32_ONLY)
        if only32:
            raise ValueError(
                f"export_onnx: this float64 model's graph uses {only32}, which ONNX Runtime's CPU runs in float32 "
                "only: pass dtype='float32' (or dtype='float64' to write float64 for another runtime)"
            )
    free = _free_axes(onnx, version, graph_dtype, probe, shape, g)  # {axis: (name, [(alt shape, alt outputs)])}
    leaves = _leaves(out)
    helper = onnx.helper
    outputs = []
    for i, (leaf, again) in enumerate(zip(leaves, other)):
        name = "output" if len(leaves) == 1 else f"output_{i}"
        g.nodes.append(helper.make_node("Identity", [leaf.name], [name], name=f"{name}_identity"))
        dims = _output_dims(i, name, leaf.shape, again.shape, shape, free)
        kind = np.dtype(str(leaf.example.dtype).rsplit(".", 1)[-1])
        elem = helper.np_dtype_to_tensor_dtype(graph_dtype if kind.kind == "f" else kind)
        outputs.append(helper.make_tensor_value_info(name, elem, dims))
    in_elem = helper.np_dtype_to_tensor_dtype(np.dtype(np.int64) if integer else graph_dtype)
    in_dims = ["N", *(free[k][0] if k in free else n for k, n in enumerate(shape))]
    inputs = [helper.make_tensor_value_info("input", in_elem, in_dims)]
    graph = helper.make_graph(g.nodes, "nu_xp", inputs, outputs, initializer=g.initializers, doc_string=repr(model))
    proto = helper.make_model_gen_version(
        graph, producer_name="nu_xp", producer_version=__version__, opset_imports=[helper.make_opsetid("", version)]
    )
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    target = Path(os.fspath(path))
    atomic_write(target, lambda f: f.write(data))
    return target


#: ops that ONNX Runtime's CPU provider runs in float32 only (checked by ``tests/test_onnx.py`` against the
#: installed onnxruntime): a float64 graph that uses one is refused unless ``dtype`` says so
FLOAT32_ONLY = frozenset(
    {"Conv", "ConvTranspose", "AveragePool", "GlobalAveragePool", "Erf", "Resize", "InstanceNormalization", "Elu",
     "Softplus", "LSTM", "GRU", "RNN"}
)  # fmt: skip


def _trace(onnx: Any, version: int, dtype: np.dtype, probe: Any, shape: tuple[int, ...]) -> tuple[Graph, Any, list]:
    """The graph of ``probe`` for samples of ``shape`` (traced on 2 samples), and the outputs of 3 samples
    (the axes that differ are the batch's)."""
    g = Graph(onnx, version, dtype)
    three = probe_input("export_onnx", probe, shape, 3, random=True)  # its size checked before anything is built
    with no_grad():
        out = convert(g, probe, Value("input", three[:2, ...]))
        other = _leaf_arrays(probe(three))
    return g, out, other


def _signature(g: Graph) -> tuple[list[bytes], list[bytes]]:
    return [n.SerializeToString() for n in g.nodes], [i.SerializeToString() for i in g.initializers]


def _free_axes(
    onnx: Any, version: int, dtype: np.dtype, probe: Any, shape: tuple[int, ...], base: Graph
) -> dict[int, tuple[str, list[Any]]]:
    """The sample axes the graph lets vary: ``{axis: (its name, [(other size, outputs at it)…])}``.

    An axis is free when the model accepts other sizes there (one less, one more, twice as many and
    one) AND the graph written for each is the same, node for node and constant for constant: no converter
    fixed the size in a constant (a reshape, an averaging matrix). A sequence's length and the height and
    width of a fully convolutional model are free; a size that a later ``Linear`` needs is not.
    """
    free: dict[int, tuple[str, list[Any]]] = {}
    reference = _signature(base)
    for axis, n in enumerate(shape):
        runs = []
        for size in dict.fromkeys(v for v in (n - 1, n + 1, 2 * n + 1) if v >= 1 and v != n):
            other = (*shape[:axis], size, *shape[axis + 1 :])
            try:
                g, out, _ = _trace(onnx, version, dtype, probe, other)
            except (ValueError, RuntimeError, TypeError, IndexError):
                break  # the model refuses that size: the axis stays fixed
            if _signature(g) != reference:
                break  # a converter wrote the size into the graph
            runs.append((size, [leaf.shape for leaf in _leaves(out)]))
        else:
            if runs:
                free[axis] = (f"dim{axis + 1}", runs)  # the input's axis, counting the batch as dim0
    return free


def _output_dims(
    i: int, name: str, dims: tuple[int, ...], batch3: tuple[int, ...], shape: tuple[int, ...], free: dict[int, Any]
) -> list[Any]:
    """Output ``i``'s dims: ``"N"`` where the batch shows, an input axis's name where the output follows it,
    another name where it changes with a free axis otherwise, the size where it is fixed."""
    out: list[Any] = []
    for k, (d, e) in enumerate(zip(dims, batch3)):
        if d != e:
            out.append("N")
            continue
        follows = [name for axis, (name, runs) in free.items() if any(o[i][k] != d for _, o in runs)]
        if not follows:
            out.append(d)
        elif len(follows) == 1 and any(
            d == shape[a] and all(o[i][k] == size for size, o in runs)
            for a, (name, runs) in free.items()
            if name == follows[0]
        ):
            out.append(follows[0])
        else:
            out.append(f"{name}_dim{k}")
    return out


_LOADED = False


def _load_builtin_converters() -> None:
    """Import the converter modules once (they register themselves)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import layers, sequence  # noqa: F401
