"""``Ops``: everything nu_xp knows about one array library, with the standard as the fallback.

One subclass per backend, each in its own module (``numpy_ops``,
``torch_ops``, ``cupy_ops``, ``strict_ops``, ``jax_ops``), in the manner of Thinc's
``NumpyOps``/``CupyOps``. A subclass states

* who it is: ``name``, the ``modules`` a user may pass to ``set_backend``,
  the pip ``extra`` that installs it, how an error message calls its arrays;
* its arrays: ``is_array(x)`` (without importing the library), ``to_host``,
  ``asarray`` (from host data or a scalar);
* its devices: ``resolve_device`` (a user's ``device=`` → the library's own
  device object), ``device_key`` (a hashable stand-in), ``device_name``,
  ``synchronize``;
* what it needs: ``check_available`` (e.g. a CUDA device for CuPy);
* and its **fast kernels**: the handful of helpers that nu_xp's hot paths
  call (``sum``, ``max``, ``min``, ``all``, ``astype``, ``clamp_min``,
  ``clamp_max``, ``erf``, ``index_add``) and the **window kernels** of
  convolution and pooling (``pad``, ``stack_taps`` = im2col, ``add_taps`` =
  col2im). Here, in the base class, each one is the array-API standard
  function and nothing else; a backend overrides one only where it measured a
  much faster primitive, and says so in the override's docstring. Layer code
  calls them by these names (``ops.sum(g, axis=0)``), so a reader always
  knows when a call is not the plain standard function.

Layers never import a backend library: they get an ``Ops`` from the
[`Backend`][nu_xp.backends.backend.Backend] of their parameters or from their input
([`ops_of`][nu_xp.backends.arrays.ops_of]), and the standard namespace as ``ops.xp``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, ClassVar

import numpy as np

__all__ = ["Ops"]

_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Ops:
    """One array library: its namespace ``xp``, its devices, host transfers and hot-path kernels.

    Instances are made once per backend by the registry ([`nu_xp.backends.ops_for`][nu_xp.backends.registry.ops_for]).
    """

    #: backend name, as users write it
    name: ClassVar[str] = ""
    #: ``__name__`` of modules that stand for this backend in ``set_backend(module)``
    modules: ClassVar[tuple[str, ...]] = ()
    #: the module whose array-API namespace layers use
    namespace_module: ClassVar[str] = ""
    #: the package users install, for the ImportError's message
    package: ClassVar[str] = ""
    #: ``pip install "nu_xp[<extra>]"``
    extra: ClassVar[str] = ""
    #: how messages name one of its arrays
    array_noun: ClassVar[str] = "an array"
    #: True when every array lives on one device (the input check then skips the device test)
    single_device: ClassVar[bool] = False

    def __init__(self) -> None:
        try:
            self.xp = importlib.import_module(self.namespace_module)
            self.library = importlib.import_module(self.modules[0])
        except ImportError as exc:
            raise ImportError(
                f"the {self.name!r} backend needs {self.package}, which is not installed; "
                f'install it with: pip install "nu_xp[{self.extra}]"'
            ) from exc
        self.check_available()

    # ------------------------------------------------------------------ identity
    @classmethod
    def is_array(cls, x: Any) -> bool:
        """True when ``x`` is an array of this library (never imports the library)."""
        raise NotImplementedError

    def check_available(self) -> None:
        """Raise ``RuntimeError`` when the library is installed but cannot run here."""

    def check_dtype(self, dtype: str) -> None:
        """Raise ``ValueError`` when parameters of ``dtype`` (``"float32"``/``"float64"``) cannot be made here."""

    # ------------------------------------------------------------------ devices
    def default_device(self) -> Any:
        """The device used when none is given."""
        return self.xp.__array_namespace_info__().default_device()

    def resolve_device(self, device: Any) -> Any:
        """The library's own device object for a user's ``device=`` (None: the default)."""
        return self.default_device() if device is None else device

    def device_key(self, device: Any) -> Any:
        """A hashable stand-in for ``device`` that [`resolve_device`][] turns back into it."""
        return device if device is None or isinstance(device, (str, int)) else str(device)

    def device_name(self, device: Any) -> str:
        """The device as text (``"cpu"``, ``"cuda:0"``)."""
        return str(device)

    def is_traced(self, x: Any) -> bool:
        """Whether ``x`` is a placeholder of a function being compiled (``jax.jit``): no value to look at, so
        checks that need one (``bool(...)``, ``int(...)``) are skipped and caches must not keep it. False here."""
        return False

    def device_of(self, x: Any) -> Any:
        """The device an array lives on."""
        return x.device

    def is_host(self, device: Any) -> bool:
        """True when arrays on ``device`` live in host memory (``to_host`` is then a view, not a copy)."""
        return True

    def synchronize(self, device: Any) -> None:
        """Wait until queued work on ``device`` is done (for timing; a no-op on the CPU)."""

    # ------------------------------------------------------------------ host transfers
    def to_host(self, x: Any) -> np.ndarray:
        """A ``numpy.ndarray`` with the values of ``x`` (a view where possible)."""
        return np.asarray(x)

    def asarray(self, a: Any, dtype: Any = None, device: Any = None) -> Any:
        """``xp.asarray(a, dtype=dtype, device=device)``: host data (or a scalar, or an array of this library) here."""
        return self.xp.asarray(a, dtype=dtype, device=device)

    # ------------------------------------------------------------------ hot-path kernels (standard fallbacks)
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``xp.sum(x, axis=axis, keepdims=keepdims)``."""
        return self.xp.sum(x, axis=axis, keepdims=keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``xp.max(x, axis=axis, keepdims=keepdims)``."""
        return self.xp.max(x, axis=axis, keepdims=keepdims)

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """``xp.min(x, axis=axis, keepdims=keepdims)``."""
        return self.xp.min(x, axis=axis, keepdims=keepdims)

    def all(self, x: Any) -> bool:
        """``bool(xp.all(x))``: True when every element of the boolean array is True."""
        return bool(self.xp.all(x))

    def astype(self, x: Any, dtype: Any) -> Any:
        """``xp.astype(x, dtype)`` (always a new array)."""
        return self.xp.astype(x, dtype)

    def clamp_min(self, x: Any, low: float) -> Any:
        """``max(x, low)`` elementwise for a floating ``x`` and a Python number ``low``."""
        return self.xp.maximum(x, low)

    def clamp_max(self, x: Any, high: float) -> Any:
        """``min(x, high)`` elementwise for a floating ``x`` and a Python number ``high``."""
        return self.xp.minimum(x, high)

    def index_add(self, table: Any, indices: Any, values: Any) -> Any:
        """``table`` with ``values[i]`` added to row ``indices[i]`` for every ``i`` (repeats add up).

        The standard has no scatter-add. This fallback is a one-hot matrix
        product, ``table + onehot(indices).T @ values``, taken in chunks of rows
        so the one-hot matrix stays under ~4 M elements: exact sums, cost
        ``O(len(indices) · rows · width)`` multiply-adds (fine for small
        vocabularies); with an inf or NaN among the values, a select and a sum
        instead of the product, so an inf reaches its own row only. Rows of
        any shape (``table`` ``(R, *row)``, ``values`` ``(n, *row)``) are
        flattened for the product and shaped back. Backends with a native
        scatter-add override it.
        """
        xp = self.xp
        rows, shape = table.shape[0], tuple(table.shape)
        width = math.prod(shape[1:])
        table, values = xp.reshape(table, (rows, width)), xp.reshape(values, (values.shape[0], width))
        classes = xp.arange(rows, dtype=indices.dtype, device=self.device_of(indices))
        finite = self.all(xp.isfinite(values))  # else 0 · inf would put NaN into every other row
        chunk = max(1, 4_194_304 // max(rows * (1 if finite else values.shape[-1]), 1))
        n = indices.shape[0]
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            hit = indices[start:stop, None] == classes
            if finite:
                table = table + xp.matrix_transpose(self.astype(hit, values.dtype)) @ values[start:stop, ...]
            else:  # select instead of multiply: an inf reaches its own row only
                picked = xp.where(hit[:, :, None], values[start:stop, None, :], xp.zeros_like(values[:1, None, :]))
                table = table + xp.sum(picked, axis=0)
        return xp.reshape(table, shape)

    # ------------------------------------------------------------------ window kernels (convolution, pooling)
    def pad(self, x: Any, padding: tuple[tuple[int, int], ...], value: float = 0.0) -> Any:
        """``x`` (``(A, B, *spatial)``) with ``value`` around its spatial axes: ``(lo, hi)`` elements per axis.

        Standard-only and write-free: along each padded axis, one ``concat``
        of a constant block, ``x`` and another block, so it also runs where
        arrays are immutable (JAX). Returns ``x`` itself without padding.
        Backends whose arrays are writeable use [`pad_by_writing`][].
        """
        if all(lo == 0 and hi == 0 for lo, hi in padding):
            return x
        xp = self.xp
        for axis, (lo, hi) in enumerate(padding, start=2):
            blocks = []
            for width in (lo, hi):
                shape = (*x.shape[:axis], width, *x.shape[axis + 1 :])
                blocks.append(xp.full(shape, value, dtype=x.dtype, device=self.device_of(x)) if width else None)
            parts = [b for b in (blocks[0], x, blocks[1]) if b is not None]
            x = xp.concat(parts, axis=axis) if len(parts) > 1 else x
        return x

    def pad_by_writing(self, x: Any, padding: tuple[tuple[int, int], ...], value: float = 0.0) -> Any:
        """[`pad`][] as one ``full`` array and one slice assignment of ``x`` into its interior."""
        if all(lo == 0 and hi == 0 for lo, hi in padding):
            return x
        shape = (*x.shape[:2], *(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], padding)))
        out = self.xp.full(shape, value, dtype=x.dtype, device=self.device_of(x))
        out[(slice(None), slice(None), *(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], padding)))] = x
        return out

    def stack_taps(self, x: Any, taps: list[tuple[slice, ...]]) -> Any:
        """im2col: ``(A, B, *spatial)`` → ``(A, K, B, *out)``, the ``K`` kernel taps' strided slices stacked.

        ``K`` slice copies (see [`nu_xp.layers.windows`][nu_xp.layers.windows]): fastest on the CPU.
        Backends where each copy is a kernel launch override it with
        [`stack_taps_by_gather`][] (one ``take``).
        """
        return self.xp.stack([x[t] for t in taps], axis=1)

    def add_taps(self, parts: Any, taps: list[tuple[slice, ...]], shape: tuple[int, ...]) -> Any:
        """col2im: ``zeros(shape)`` with ``parts[:, k]`` (``parts``: ``(A, K, B, *out)``) added into tap ``k``'s slice.

        ``K`` in-place slice additions; [`add_taps_by_scatter`][] is one scatter-add.
        """
        out = self.xp.zeros(shape, dtype=parts.dtype, device=self.device_of(parts))
        for k, index in enumerate(taps):
            out[index] += parts[:, k, ...]
        return out

    def tap_positions(self, taps: list[tuple[slice, ...]], spatial: tuple[int, ...], device: Any) -> Any:
        """The flat spatial index read by each tap at each output position, shape ``(K·L,)``, on ``device`` (cached)."""
        key = (tuple(tuple((sl.start, sl.stop, sl.step) for sl in t[2:]) for t in taps), spatial, str(device))
        cache = self.__dict__.setdefault("_tap_positions", {})
        positions = cache.get(key)
        if positions is None:
            rows = []
            for t in taps:
                axes = [np.arange(sl.start, sl.stop, sl.step) for sl in t[2:]]
                grid = np.ravel_multi_index(np.meshgrid(*axes, indexing="ij"), spatial)
                rows.append(grid.ravel())
            positions = self.asarray(np.concatenate(rows).astype(np.int64), device=device)
            if not self.is_traced(positions):  # a value made while jax.jit traces lives in that trace only
                cache[key] = positions
        return positions

    def stack_taps_by_gather(self, x: Any, taps: list[tuple[slice, ...]]) -> Any:
        """[`stack_taps`][] as one ``take`` of precomputed flat positions (then one transpose)."""
        xp = self.xp
        a, b, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
        out = tuple(len(range(sl.start, sl.stop, sl.step)) for sl in taps[0][2:])
        flat = xp.reshape(x, (a, b, math.prod(spatial)))
        picked = xp.take(flat, self.tap_positions(taps, spatial, self.device_of(x)), axis=2)
        picked = xp.reshape(picked, (a, b, len(taps), *out))
        return xp.permute_dims(picked, (0, 2, 1, *range(3, picked.ndim)))

    def add_taps_by_scatter(self, parts: Any, taps: list[tuple[slice, ...]], shape: tuple[int, ...]) -> Any:
        """[`add_taps`][] as one [`index_add`][] into the flat positions (plus two transposes)."""
        xp = self.xp
        a, b = parts.shape[0], parts.shape[2]
        spatial = tuple(shape[2:])
        values = xp.permute_dims(parts, (1, *range(3, parts.ndim), 0, 2))  # (K, *out, A, B)
        values = xp.reshape(values, (math.prod(values.shape[:-2]), a * b))
        table = xp.zeros((math.prod(spatial), a * b), dtype=parts.dtype, device=self.device_of(parts))
        table = self.index_add(table, self.tap_positions(taps, spatial, self.device_of(parts)), values)
        return xp.reshape(xp.permute_dims(table, (1, 0)), (a, b, *spatial))

    # ------------------------------------------------------------------ low precision
    #: the low-precision float dtypes this backend computes in, for ``fit(precision=...)`` (none by default)
    low_precision_dtypes: ClassVar[tuple[str, ...]] = ()

    def low_dtype(self, name: str) -> Any:
        """The dtype object of ``name`` (``"bfloat16"``, ``"float16"``), one of ``low_precision_dtypes``."""
        return getattr(self.xp, name, None) or getattr(self.library, name)

    @classmethod
    def set_float32_matmul_precision(cls, precision: str) -> None:
        """Allow TF32 (``"high"``, ``"medium"``) or not (``"highest"``) in float32 products; nothing by default."""

    @classmethod
    def set_num_threads(cls, threads: int) -> None:
        """The library's own CPU thread count, where it keeps one apart from BLAS's; nothing by default."""

    # ------------------------------------------------------------------ loops over time
    #: True where a loop over time should run as one structured loop ([`scan`][]) while a step is compiled:
    #: under ``jax.jit`` a Python loop unrolls into one copy of its body per step (an LSTM over 50 steps took
    #: 39 s to compile), while ``jax.lax.scan`` traces the body once. Eagerly, and on every other backend,
    #: the recurrent layers keep their plain Python loops, which need no stacking of what each step keeps.
    structured_loops: ClassVar[bool] = False

    def scan(self, step: Any, carry: Any, xs: tuple[Any, ...], *, reverse: bool = False) -> tuple[Any, Any]:
        """``jax.lax.scan``'s contract: ``carry, y_t = step(carry, x_t)`` over the leading axis of ``xs``.

        ``xs`` is a structure of nested tuples of arrays of one length ``L`` along axis 0 (None passes as None);
        ``reverse`` runs ``t = L-1 … 0``. Returns ``(last carry, ys)``, ``ys`` the per-step outputs (tuples of
        arrays or None) stacked along a new axis 0, in time order. This default is the plain loop.
        """
        length = _leaves(xs)[0].shape[0]
        outputs: list[Any] = [None] * length
        for t in range(length - 1, -1, -1) if reverse else range(length):
            carry, outputs[t] = step(carry, _index_tree(xs, t))
        return carry, _stack_tree(self.xp, outputs)

    # ------------------------------------------------------------------ compiled steps
    #: True where the library compiles a whole Python function that it can trace
    #: ([`nu_xp.compile_step`][nu_xp.training.compiled.compile_step] uses [`compile`][] and [`abstract_run`][])
    compiles: ClassVar[bool] = False

    def compile(self, fn: Any, donate: tuple[int, ...] = ()) -> Any:
        """``fn`` compiled (traced once per input shapes); ``donate``: positions of inputs whose arrays it may
        reuse for its outputs, where the device allows."""
        raise NotImplementedError(f"the {self.name!r} backend does not compile functions")

    def abstract_run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on placeholders of ``args`` (shapes and dtypes, no values, no computation)."""
        raise NotImplementedError(f"the {self.name!r} backend has no abstract runs")

    def wait(self, x: Any) -> Any:
        """``x`` once it is computed (asynchronous libraries return before); the array itself by default."""
        return x

    # ------------------------------------------------------------------ other libraries' files
    #: True where the library reads its own pickled ``state_dict`` files ([`nu_xp.torch_file`][nu_xp.torch_file])
    reads_state_dict_files: ClassVar[bool] = False

    @classmethod
    def load_state_dict_file(cls, f: Any) -> Any:
        """What the library's own safe loader reads from the open file ``f`` (tensors, dicts, numbers)."""
        raise NotImplementedError(f"the {cls.name!r} backend reads no state_dict files")

    @classmethod
    def tensor_to_numpy(cls, value: Any) -> Any:
        """A host numpy copy of one of the library's tensors, or None when ``value`` is not one."""
        return None

    # ------------------------------------------------------------------ own convolution and pooling kernels
    #: True where the backend has its own convolution kernels (torch: oneDNN, cuDNN; NumPy: batch-last GEMMs in
    #: [`numpy_windows`][nu_xp.backends.numpy_windows]): ``Conv1d``/``Conv2d`` and the transposed ones then call
    #: [`conv`][nu_xp.backends.ops.Ops.conv] and its backward instead of their im2col formula
    #: (``nu_xp.layers.conv``), which stays the reference everywhere else and in the tests.
    #: Each forward returns ``(y, saved)``; the layer keeps ``saved`` for the backward, whatever it is.
    native_conv: ClassVar[bool] = False

    def conv(
        self,
        x: Any,
        weight: Any,
        bias: Any,
        stride: tuple[int, ...],
        pads: tuple[tuple[int, int], ...],
        dilation: tuple[int, ...],
        groups: int,
    ) -> tuple[Any, Any]:
        """``(y, saved)`` with ``y[n, o, p] = b[o] + Σ_c Σ_k W[o, c, k] · x_pad[n, c, p·s + k·d]``.

        Only where ``native_conv`` is True; ``pads`` are ``(left, right)`` per spatial axis.
        """
        raise NotImplementedError(f"the {self.name} backend has no native convolution; the layer uses im2col")

    def conv_backward(
        self,
        grad: Any,
        saved: Any,
        weight: Any,
        has_bias: bool,
        stride: tuple[int, ...],
        pads: tuple[tuple[int, int], ...],
        dilation: tuple[int, ...],
        groups: int,
        input_grad: bool,
    ) -> tuple[Any, Any, Any]:
        """``(dL/dx or None, dL/dW, dL/db or None)`` of [`conv`][nu_xp.backends.ops.Ops.conv] for ``grad = dL/dy``.

        ``dL/dW[o, c, k] = Σ_{n,p} g[n, o, p] · x_pad[n, c, p·s + k·d]``, ``dL/db = Σ_{n,p} g``, and
        ``dL/dx`` the transposed convolution of ``g`` with ``W`` (cropped to ``x``).
        """
        raise NotImplementedError(f"the {self.name} backend has no native convolution; the layer uses im2col")

    #: True where ``ConvTranspose1d/2d`` call [`conv_transpose`][nu_xp.backends.ops.Ops.conv_transpose] and its
    #: backward (numpy, torch); JAX has its own ``conv`` only
    native_conv_transpose: ClassVar[bool] = False

    def conv_transpose(
        self,
        x: Any,
        weight: Any,
        bias: Any,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        output_padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
    ) -> tuple[Any, Any]:
        """``(y, saved)``: the transposed convolution (``nu_xp.layers.conv_transpose``) with the backend's kernel.

        Only where ``native_conv_transpose`` is True; ``weight`` is ``(C_in, C_out/groups, *kernel)``.
        """
        raise NotImplementedError(f"the {self.name} backend has no native convolution; the layer uses col2im")

    def conv_transpose_backward(
        self,
        grad: Any,
        saved: Any,
        weight: Any,
        has_bias: bool,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        output_padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
        input_grad: bool,
    ) -> tuple[Any, Any, Any]:
        """``(dL/dx or None, dL/dW, dL/db or None)`` of [`conv_transpose`][nu_xp.backends.ops.Ops.conv_transpose]."""
        raise NotImplementedError(f"the {self.name} backend has no native convolution; the layer uses col2im")

    #: True where the backend has its own pooling kernels: ``MaxPool``/``AvgPool`` then call ``max_pool``,
    #: ``avg_pool`` and their backwards instead of their windows (``nu_xp.layers.pooling``); each forward
    #: returns ``(y, saved)``, as the convolutions' do
    native_pool: ClassVar[bool] = False

    def max_pool(
        self, x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> tuple[Any, Any]:
        """``(y, saved)``: each window's maximum (``-inf`` padding), and where it was for the backward."""
        raise NotImplementedError(f"the {self.name} backend has no native pooling; the layer uses its windows")

    def max_pool_backward(
        self, grad: Any, saved: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> Any:
        """``dL/dx``: each window's gradient added at its maximum's position."""
        raise NotImplementedError(f"the {self.name} backend has no native pooling; the layer uses its windows")

    def avg_pool(
        self, x: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> tuple[Any, Any]:
        """``(y, saved)``: each window's mean, padding counted (PyTorch's ``count_include_pad=True``)."""
        raise NotImplementedError(f"the {self.name} backend has no native pooling; the layer uses its windows")

    def avg_pool_backward(
        self, grad: Any, saved: Any, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...]
    ) -> Any:
        """``dL/dx``: ``g/K`` added to every position of each window."""
        raise NotImplementedError(f"the {self.name} backend has no native pooling; the layer uses its windows")

    # ------------------------------------------------------------------ own recurrent kernels
    #: True where the backend has its own LSTM loop: ``LSTM`` then calls [`lstm`][] and [`lstm_backward`][]
    #: for each layer and direction instead of stepping ``LSTMCell`` (``nu_xp.layers.cells``), which stays the
    #: reference everywhere else and in the tests. Not while a step is compiled (the layer scans then).
    native_lstm: ClassVar[bool] = False

    def lstm_supports(self, x: Any) -> bool:
        """Whether [`lstm`][] takes this input (a backend's kernel may cover some dtypes or devices only)."""
        return True

    def lstm(
        self, x: Any, w_ih: Any, w_hh: Any, bias: Any, h0: Any, c0: Any, reverse: bool
    ) -> tuple[Any, Any, Any, Any]:
        """``(outputs (L, N, H), h_last, c_last, saved)`` of one layer and direction.

        ``x`` ``(L, N, I)``, ``bias`` = ``b_ih + b_hh`` or None; each step
        ``[i, f, g, o] = [σ, σ, tanh, σ](W_ih x_t + b + W_hh h_{t-1})``, ``c_t = f ⊙ c_{t-1} + i ⊙ g``,
        ``h_t = o ⊙ tanh(c_t)``; ``reverse`` runs ``t = L-1 … 0``.
        """
        raise NotImplementedError(f"the {self.name} backend has no native LSTM; the layer steps LSTMCell")

    def lstm_backward(
        self, saved: Any, g_out: Any, dh: Any, dc: Any, input_grad: bool
    ) -> tuple[Any, Any, Any, Any, Any, Any]:
        """``(dx or None, dW_ih, dW_hh, db or None, dh_0, dc_0)`` (``db``: of ``b_ih`` and ``b_hh`` alike).

        ``g_out``: ``dL/d(outputs)`` or None; ``dh``, ``dc``: the last state's gradients or None (zero).
        """
        raise NotImplementedError(f"the {self.name} backend has no native LSTM; the layer steps LSTMCell")

    # ------------------------------------------------------------------ activations with kernels of their own
    def gelu(self, x: Any, approximate: str = "none") -> tuple[Any, Any]:
        """``(y, kept)``: GELU's value and what [`gelu_backward`][] needs (here the slope ``dy/dx``).

        ``approximate="none"``: ``y = x Φ(x)``, ``Φ(x) = (1 + erf(x/√2))/2``, slope
        ``Φ(x) + x φ(x)`` with ``φ(x) = exp(-x²/2)/√(2π)``. ``"tanh"``:
        ``Φ(x) ≈ (1 + tanh(v))/2``, ``v = √(2/π)(x + 0.044715 x³)``, slope
        ``Φ + x/2 (1 - tanh²v) √(2/π)(1 + 3·0.044715 x²)``. The reference formula;
        NumPy (float32) and torch override it.
        """
        xp = self.xp
        u = xp.clip(x, -40.0, 40.0)  # beyond ±40 Φ is 0 or 1 and x φ(x) is 0 even in float64: x², x³ never overflow
        if approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (u + 0.044715 * u * u * u))
            cdf = 0.5 * (1.0 + t)
            pdf_term = 0.5 * u * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * u * u)
        else:
            cdf = 0.5 * (1.0 + self.erf(x * _SQRT_HALF))
            pdf_term = u * xp.exp(-0.5 * u * u) * _INV_SQRT_2PI
        return x * cdf, cdf + pdf_term

    def gelu_backward(self, grad: Any, kept: Any, approximate: str = "none") -> Any:
        """``dL/dx = g · slope`` from what [`gelu`][] kept."""
        return grad * kept

    def layer_norm(self, x: Any, weight: Any, bias: Any, dims: int, eps: float) -> tuple[Any, Any]:
        """``(y, kept)``: ``y = γ x̂ + β``, ``x̂ = (x - μ)/√(σ² + ε)`` with ``μ``, ``σ²`` over the last ``dims``
        axes (``weight`` γ and ``bias`` β may be None); ``kept`` is what [`layer_norm_backward`][] reads
        (here ``x̂`` and ``1/√(σ² + ε)``). The reference formula; NumPy and torch override it."""
        xp = self.xp
        axes = tuple(range(x.ndim - dims, x.ndim))
        mean = xp.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        inv_std = 1.0 / xp.sqrt(xp.mean(centered * centered, axis=axes, keepdims=True) + eps)
        x_hat = centered * inv_std
        y = x_hat if weight is None else x_hat * weight
        return (y if bias is None else y + bias), (x_hat, inv_std)

    def layer_norm_backward(
        self, grad: Any, kept: Any, weight: Any, bias: Any, dims: int, needs: tuple[bool, bool, bool]
    ) -> tuple[Any, Any, Any]:
        """``(dL/dx, dL/dγ, dL/dβ)``, each None where ``needs`` (input, weight, bias) says so:
        ``dL/dx = (ĝ - mean(ĝ) - x̂ mean(ĝ x̂)) / √(σ² + ε)`` with ``ĝ = g γ``, ``dL/dγ = Σ g x̂``,
        ``dL/dβ = Σ g`` (summed over the leading axes)."""
        x_hat, inv_std = kept
        lead = tuple(range(grad.ndim - dims))
        axes = tuple(range(grad.ndim - dims, grad.ndim))
        d_weight = d_bias = d_x = None
        if needs[1]:
            d_weight = self.sum(grad * x_hat, axis=lead) if lead else grad * x_hat
        if needs[2]:
            d_bias = self.sum(grad, axis=lead) if lead else grad
        if needs[0]:
            d_x = self.normalize_backward(grad if weight is None else grad * weight, x_hat, inv_std, axes)
        return d_x, d_weight, d_bias

    def normalize_backward(self, g_hat: Any, x_hat: Any, inv_std: Any, axes: tuple[int, ...]) -> Any:
        """``dL/dx = (ĝ - mean_A(ĝ) - x̂ · mean_A(ĝ · x̂)) / √(σ² + ε)`` over the axes ``A`` a normalization
        averaged (``ĝ = g γ``; μ and σ depend on every element they average): LayerNorm's, BatchNorm's and
        GroupNorm's input gradient."""
        xp = self.xp
        return (
            g_hat - xp.mean(g_hat, axis=axes, keepdims=True) - x_hat * xp.mean(g_hat * x_hat, axis=axes, keepdims=True)
        ) * inv_std

    def masked_softmax(self, scores: Any, mask: Any = None) -> Any:
        """Softmax over the last axis of ``s = scores + mask`` (``mask`` additive and broadcastable, or None),
        ``p = exp(s - m) / Σ exp(s - m)`` with ``m`` the row's maximum, where ``-inf`` scores (masked keys) get
        weight 0 and a row of ``-inf`` only gets zeros, never NaN.

        A row whose maximum is ``-inf`` is shifted by 0, so no ``-inf - (-inf)`` is
        ever formed and no warning is raised. With no keys at all (``S = 0``) the
        weights are empty. The reference formula; NumPy overrides it.
        """
        if mask is not None:
            scores = scores + mask
        if scores.shape[-1] == 0:
            return scores
        xp = self.xp
        m = xp.max(scores, axis=-1, keepdims=True)
        m = xp.where(m == -math.inf, xp.zeros_like(m), m)
        e = xp.exp(scores - m)
        total = xp.sum(e, axis=-1, keepdims=True)
        return e / xp.where(total == 0.0, xp.ones_like(total), total)

    def softmax_backward(self, p: Any, grad: Any, dot: Any = None) -> Any:
        """``dL/ds = p ⊙ (g - Σ_j g_j p_j)`` row by row, for ``p`` = [`masked_softmax`][]``(s)`` and ``g = dL/dp``;
        ``dot``, where given, is ``Σ_j g_j p_j`` ``(..., 1)`` found more cheaply by the caller."""
        if dot is None:
            dot = self.xp.sum(grad * p, axis=-1, keepdims=True)
        return p * (grad - dot)

    def erf(self, x: Any) -> Any:
        """The error function ``erf(x) = 2/√π ∫₀ˣ exp(-t²) dt`` (the standard has none), to ~2e-15.

        Standard-only formulation, about 90 elementwise operations: for
        ``|x| < 2`` the Taylor series ``2/√π Σₙ (-1)ⁿ x^(2n+1) / (n! (2n+1))``
        (35 terms); for ``|x| ≥ 2`` ``1 - erfc(|x|)`` with the continued fraction
        ``erfc(x) = exp(-x²) / (√π (x + (1/2)/(x + 1/(x + (3/2)/(x + …)))))``
        (50 terms, evaluated from the tail). Backends with a native ``erf``
        override it.
        """
        xp = self.xp
        a = xp.abs(x)
        small = xp.minimum(a, xp.full_like(a, 2.0))  # the series, on values where it converges fast
        s2, term = small * small, small
        total = small
        for n in range(1, 35):
            term = term * (-s2) / n
            total = total + term / (2 * n + 1)
        series = total * (2.0 / math.sqrt(math.pi))
        large = xp.clip(a, 2.0, 30.0)  # the continued fraction, on values ≥ 2 (erf(30) is 1 even in float64)
        f = large
        for k in range(50, 0, -1):
            f = large + (k / 2.0) / f
        tail = 1.0 - xp.exp(-large * large) / (math.sqrt(math.pi) * f)
        return xp.sign(x) * xp.where(a < 2.0, series, tail)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"


def _leaves(tree: Any) -> list[Any]:
    if tree is None:
        return []
    if isinstance(tree, tuple):
        return [leaf for part in tree for leaf in _leaves(part)]
    return [tree]


def _index_tree(tree: Any, t: int) -> Any:
    """Step ``t`` of every array of a structure of nested tuples (None stays None)."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        return tuple(_index_tree(part, t) for part in tree)
    return tree[t, ...]


def _stack_tree(xp: Any, outputs: list[Any]) -> Any:
    """Per-step outputs (nested tuples of arrays, or None) as one such structure of stacked arrays."""
    first = outputs[0]
    if first is None:
        return None
    if isinstance(first, tuple):
        return tuple(_stack_tree(xp, [o[k] for o in outputs]) for k in range(len(first)))
    return xp.stack(outputs, axis=0)
