"""Backends: which array library (and device, and dtype) an object computes with.

A *backend* is the triple ``(namespace, device, dtype)``. Layers never import
numpy, cupy or torch; they receive the namespace ``xp`` from the
:class:`Backend` that owns their parameters (resolved once, at construction or
in ``.to()``), or from their input through :func:`namespace_of`, which caches
``array_api_compat.array_namespace`` per array type so that the lookup costs a
dict access instead of microseconds per call. For numpy that namespace is
``array_api_compat.numpy`` with its reductions sent straight to the ufuncs
(see ``_fast_numpy``).

Selection, from most to least specific:

1. per object: ``Linear(2, 8, backend="torch", device="cuda", dtype="float64")``
   or ``model.to("cupy")``;
2. for a block of code: ``with nu_xp.use_backend("torch"):``;
3. for the process: ``nu_xp.set_backend("array_api_strict")``;
4. the environment variable ``NU_XP_BACKEND`` (read when nu_xp is imported);
5. the default, ``"numpy"`` in ``float32``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import os
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import array_api_compat
import numpy as np

__all__ = [
    "BACKENDS",
    "Backend",
    "asarray",
    "get_backend",
    "namespace_of",
    "set_backend",
    "to_host",
    "use_backend",
]

#: backend name -> (module holding its array-api namespace, pip extra that installs it)
BACKENDS: dict[str, tuple[str, str]] = {
    "numpy": ("array_api_compat.numpy", ""),
    "cupy": ("array_api_compat.cupy", "cupy"),
    "torch": ("array_api_compat.torch", "torch"),
    "array_api_strict": ("array_api_strict", "test"),
}
_RAW_MODULE = {"numpy": "numpy", "cupy": "cupy", "torch": "torch", "array_api_strict": "array_api_strict"}
FLOAT_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------- names


def _normalize_name(backend: Any) -> str:
    """Turn a backend name or an imported namespace into one of :data:`BACKENDS`."""
    if isinstance(backend, Backend):
        return backend.name
    if isinstance(backend, str):
        name = backend.strip().lower().replace("-", "_")
        if name in BACKENDS:
            return name
        raise ValueError(f"unknown backend {backend!r}; valid backends are {', '.join(map(repr, BACKENDS))}")
    module_name = getattr(backend, "__name__", None)
    if isinstance(module_name, str):
        for name, raw in _RAW_MODULE.items():
            if module_name in (raw, f"array_api_compat.{raw}"):
                return name
    raise ValueError(
        f"unknown backend {backend!r}: pass a name ({', '.join(map(repr, BACKENDS))}) "
        "or one of those modules (numpy, cupy, torch, array_api_strict)"
    )


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``"float32"``, ``numpy.float32``, ``torch.float32``, ``xp.float32``…"""
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]


def _namespace_copy(compat: Any) -> Any:
    """A plain object holding every public name of the namespace ``compat`` (to override a few)."""
    ns = types.SimpleNamespace(**{k: getattr(compat, k) for k in dir(compat) if not k.startswith("__")})
    ns.__name__ = compat.__name__
    ns.__array_api_version__ = compat.__array_api_version__
    ns.__array_namespace_info__ = compat.__array_namespace_info__
    return ns


def _fast_numpy(compat: Any) -> Any:
    """``array_api_compat.numpy`` with its hottest helpers routed straight to numpy's ufuncs.

    ``numpy.sum``/``max``/``all`` dispatch through Python before reaching
    ``ufunc.reduce``, which costs 2-5 µs per call: as much as the reduction of a
    minibatch. This namespace keeps every other function of the compat
    namespace as it is and calls ``np.add.reduce``, ``np.maximum.reduce``…
    directly (same results, same dtypes for floating inputs). Layer code sees
    a normal array-API namespace.
    """
    add, maximum, minimum, logical_and = (cast(Any, u) for u in (np.add, np.maximum, np.minimum, np.logical_and))
    ns = _namespace_copy(compat)

    def sum(x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        if dtype is None and x.dtype.kind == "f":
            return add.reduce(x, axis=axis, keepdims=keepdims)
        return compat.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)

    def max(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return maximum.reduce(x, axis=axis, keepdims=keepdims)

    def min(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return minimum.reduce(x, axis=axis, keepdims=keepdims)

    def all(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return logical_and.reduce(x, axis=axis, keepdims=keepdims)

    def astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
        if device not in (None, "cpu"):
            return compat.astype(x, dtype, copy=copy, device=device)
        return x.astype(dtype, copy=copy)

    def asarray(obj: Any, /, *, dtype: Any = None, device: Any = None, copy: bool | None = None) -> Any:
        if device not in (None, "cpu"):
            return compat.asarray(obj, dtype=dtype, device=device, copy=copy)
        return np.asarray(obj, dtype=dtype, copy=copy)  # numpy >= 2: the standard's copy semantics

    ns.sum, ns.max, ns.min, ns.all, ns.astype, ns.asarray = sum, max, min, all, astype, asarray
    return ns


def _fast_torch(compat: Any) -> Any:
    """``array_api_compat.torch`` with the helpers of nu_xp's hot paths sent straight to torch.

    The compat wrappers of ``maximum``/``minimum`` with a Python scalar cost
    ~10 µs (they build a tensor for the scalar and promote); ``clamp_min`` /
    ``clamp_max`` give the same floating result in ~2.5 µs. ``sum`` and
    ``astype`` skip their argument translation. Everything else is the compat
    namespace unchanged.
    """
    import torch

    ns = _namespace_copy(compat)
    scalar = (int, float)

    def maximum(x1: Any, x2: Any, /) -> Any:
        if type(x2) in scalar and isinstance(x1, torch.Tensor) and x1.is_floating_point():
            return torch.clamp_min(x1, x2)
        return compat.maximum(x1, x2)

    def minimum(x1: Any, x2: Any, /) -> Any:
        if type(x2) in scalar and isinstance(x1, torch.Tensor) and x1.is_floating_point():
            return torch.clamp_max(x1, x2)
        return compat.minimum(x1, x2)

    def sum(x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        if dtype is None and x.is_floating_point():
            if axis is None:
                return torch.sum(x) if not keepdims else compat.sum(x, keepdims=True)
            return torch.sum(x, dim=axis, keepdim=keepdims)
        return compat.sum(x, axis=axis, dtype=dtype, keepdims=keepdims)

    def astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
        if device is None:
            return x.to(dtype, copy=copy)
        return compat.astype(x, dtype, copy=copy, device=device)

    ns.maximum, ns.minimum, ns.sum, ns.astype = maximum, minimum, sum, astype
    return ns


@functools.cache
def _import_namespace(name: str) -> Any:
    module, extra = BACKENDS[name]
    try:
        xp = importlib.import_module(module)
        importlib.import_module(_RAW_MODULE[name])
    except ImportError as exc:
        what = "array-api-strict" if name == "array_api_strict" else name
        raise ImportError(
            f'the {name!r} backend needs {what}, which is not installed; install it with: pip install "nu_xp[{extra}]"'
        ) from exc
    if name == "cupy":
        _check_cuda()
    if name == "numpy":
        xp = _fast_numpy(xp)
    elif name == "torch":
        xp = _fast_torch(xp)
    return xp


def _check_cuda() -> None:
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, missing driver, ...
        raise RuntimeError(
            f"the 'cupy' backend needs a working CUDA device, but CUDA reports: {exc}. "
            "Use backend='numpy' (CPU) or 'torch' instead."
        ) from exc
    if count < 1:
        raise RuntimeError(
            "the 'cupy' backend needs a CUDA device, and none was found; use backend='numpy' (CPU) or 'torch' instead."
        )


def _resolve_device(name: str, xp: Any, device: Any) -> Any:
    """The backend's own device object for a user's ``device=`` (None: the default)."""
    try:
        if name == "numpy":
            if device not in (None, "cpu"):
                raise ValueError(f"the numpy backend runs on 'cpu' only, got device={device!r}")
            return "cpu"
        if name == "torch":
            import torch

            dev = torch.device("cpu" if device is None else device)
            if dev.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError(f"device={device!r} needs CUDA, which this torch build cannot use; use device='cpu'")
            if dev.type == "cuda" and dev.index is None:
                dev = torch.device("cuda", torch.cuda.current_device())
            return dev
        if name == "cupy":
            import cupy

            if device is None:
                return cupy.cuda.Device()
            if isinstance(device, cupy.cuda.Device):
                return device
            if isinstance(device, str):
                text = device.lower()
                if text in ("cuda", "gpu"):
                    return cupy.cuda.Device()
                if text.startswith(("cuda:", "gpu:")):
                    return cupy.cuda.Device(int(text.split(":", 1)[1]))
            return cupy.cuda.Device(int(device))
        # array_api_strict: its Device objects, or their names
        if device is None:
            return xp.__array_namespace_info__().default_device()
        if isinstance(device, str):
            return xp.Device(device)
        return device
    except (ValueError, RuntimeError):
        raise
    except Exception as exc:
        raise ValueError(f"device={device!r} is not a device of the {name!r} backend: {exc}") from exc


# --------------------------------------------------------------------------- Backend


@dataclass(frozen=True, eq=False)
class Backend:
    """Where and in which dtype an object computes.

    Attributes
    ----------
    name : str
        One of :data:`BACKENDS`.
    xp : module
        The array-API namespace (``array_api_compat.numpy``, ``array_api_strict``…).
    device : object
        The backend's device object (``"cpu"``, ``torch.device("cuda", 0)``…).
    dtype : object
        The namespace's floating dtype for parameters (``xp.float32``).
    """

    name: str
    xp: Any
    device: Any
    dtype: Any
    array_type: type = object
    writeable: bool = True

    def check(self, x: Any, role: str = "input") -> Any:
        """Return ``x`` ready for this backend's parameters, or raise ``TypeError``.

        Fast path (one type test and one dtype test) for the common case. A
        real-valued array of another dtype is cast to ``self.dtype``; an array
        of another backend or device, a complex or boolean array, or a
        non-array raises ``TypeError`` that says how to fix it.
        """
        if (
            type(x) is self.array_type
            and x.dtype == self.dtype  # type: ignore[attr-defined]
            and (self.name == "numpy" or x.device == self.device)  # type: ignore[attr-defined]
        ):
            return x
        return self._coerce(x, role)

    def _coerce(self, x: Any, role: str) -> Any:
        name = _backend_name_of(x)
        if name is None:
            raise TypeError(
                f"{role} must be an array, got {type(x).__name__}; convert it with "
                f"nu_xp.asarray(x, like=model) (this model's parameters are on {self.name})"
            )
        if name != self.name or not _same_device(array_api_compat.device(x), self.device):
            raise TypeError(
                f"{role} is {describe(x)}, but this model's parameters are on {self.name} "
                f"({self.device_name}); use model.to({name!r}) or nu_xp.asarray(x, like=model)"
            )
        xp = self.xp
        if xp.isdtype(x.dtype, ("real floating", "integral")):
            return xp.astype(x, self.dtype)
        raise TypeError(
            f"{role} has dtype {dtype_name(x.dtype)}; nu_xp layers take real numbers "
            f"(it would be cast to {self.dtype_name}); convert booleans or complex values explicitly"
        )

    @property
    def dtype_name(self) -> str:
        """``"float32"`` or ``"float64"``."""
        return dtype_name(self.dtype)

    @property
    def device_name(self) -> str:
        """The device as text: ``"cpu"``, ``"cuda:0"``, ``"CPU_DEVICE"``."""
        if self.name == "cupy":
            return f"cuda:{self.device.id}"
        if self.name == "array_api_strict":
            return str(getattr(self.device, "_device", self.device))
        return str(self.device)

    def from_host(self, a: Any, dtype: Any = None) -> Any:
        """Move a host (numpy) array here, as ``dtype`` (default: keep its dtype kind)."""
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def owns(self, x: Any) -> bool:
        """True when ``x`` is an array of this backend on this device."""
        return _backend_name_of(x) == self.name and _same_device(array_api_compat.device(x), self.device)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device_name!r}, dtype={self.dtype_name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backend) and (self.name, self.device_name, self.dtype_name) == (
            other.name,
            other.device_name,
            other.dtype_name,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.device_name, self.dtype_name))

    def __deepcopy__(self, memo: dict) -> Backend:
        return self  # immutable, and holds a module

    def __reduce__(self) -> tuple:
        return (get_backend, (self.name, self.device_name, self.dtype_name))


def _same_device(a: Any, b: Any) -> bool:
    return a == b or str(a) == str(b)


@dataclass(frozen=True)
class _Default:
    name: str
    device: Any
    dtype: str


def _default_from_env() -> _Default:
    env = os.environ.get("NU_XP_BACKEND", "").strip()
    if not env:
        return _Default("numpy", None, "float32")
    try:
        return _Default(_normalize_name(env), None, "float32")
    except ValueError as exc:
        raise ValueError(f"environment variable NU_XP_BACKEND: {exc}") from None


_DEFAULT: contextvars.ContextVar[_Default] = contextvars.ContextVar(
    "nu_xp_default",
    default=_default_from_env(),  # noqa: B039 - _Default is a frozen dataclass
)


def _check_dtype(dtype: Any) -> str:
    name = dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES} for parameters, got {dtype!r}")
    return name


@functools.lru_cache(maxsize=64)
def _make_backend(name: str, device_key: Any, dtype: str) -> Backend:
    xp = _import_namespace(name)
    device = _resolve_device(name, xp, device_key)
    probe = xp.zeros((1,), dtype=getattr(xp, dtype), device=device)
    return Backend(
        name,
        xp,
        device,
        getattr(xp, dtype),
        array_type=type(probe),
        writeable=array_api_compat.is_writeable_array(probe),
    )


def get_backend(backend: Any = None, device: Any = None, dtype: Any = None) -> Backend:
    """Resolve a backend choice into a :class:`Backend`.

    Parameters
    ----------
    backend : str, module, Backend or None
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``, one of
        those modules, or None for the current default.
    device : optional
        A device of that backend (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a
        ``cupy.cuda.Device``…). None: the default's device when the backend is
        the default one, else the backend's default device.
    dtype : str or dtype, optional
        ``"float32"`` or ``"float64"``; None: the default's dtype.

    Raises
    ------
    ValueError
        unknown backend name, device or dtype.
    ImportError
        the backend's library is not installed (the message names the extra).
    RuntimeError
        ``"cupy"`` without a usable CUDA device.
    """
    default = _DEFAULT.get()
    if isinstance(backend, Backend):
        if device is None and dtype is None:
            return backend
        name = backend.name
        device = backend.device if device is None else device
        dtype = backend.dtype_name if dtype is None else dtype
    else:
        name = default.name if backend is None else _normalize_name(backend)
    if device is None and name == default.name:
        device = default.device
    dtype_str = _check_dtype(default.dtype if dtype is None else dtype)
    return _make_backend(name, _device_key(name, device), dtype_str)


def _device_key(name: str, device: Any) -> str | int | None:
    """A hashable stand-in for ``device`` that :func:`_resolve_device` turns back into the device."""
    if device is None or isinstance(device, (str, int)):
        return device
    if name == "cupy":
        return int(getattr(device, "id", device))  # cupy.cuda.Device
    if name == "array_api_strict":
        return str(getattr(device, "_device", device))  # array_api_strict.Device("device1")
    return str(device)  # torch.device("cuda", 0) -> "cuda:0"


def set_backend(backend: Any = "numpy", device: Any = None, dtype: Any = None) -> Backend:
    """Set the process-wide default backend (and optionally device and dtype).

    Objects created afterwards without ``backend=`` use it; existing objects
    stay where they are (move them with ``.to()``). Returns the new default.

    Examples
    --------
    >>> import nu_xp
    >>> nu_xp.set_backend("numpy", dtype="float64")
    Backend('numpy', device='cpu', dtype='float64')
    >>> _ = nu_xp.set_backend("numpy")  # back to the float32 default
    """
    name = _normalize_name(backend)
    resolved = get_backend(name, device, dtype or "float32")
    _DEFAULT.set(_Default(name, device, resolved.dtype_name))
    return resolved


@contextlib.contextmanager
def use_backend(backend: Any, device: Any = None, dtype: Any = None) -> Iterator[Backend]:
    """Context manager: the default backend inside the ``with`` block.

    Examples
    --------
    >>> import nu_xp
    >>> with nu_xp.use_backend("numpy", dtype="float64"):
    ...     nu_xp.Linear(2, 3).weight.data.dtype
    dtype('float64')
    """
    name = _normalize_name(backend)
    resolved = get_backend(name, device, dtype or "float32")
    token = _DEFAULT.set(_Default(name, device, resolved.dtype_name))
    try:
        yield resolved
    finally:
        _DEFAULT.reset(token)


# --------------------------------------------------------------------------- arrays

_NAMESPACE_BY_TYPE: dict[type, Any] = {}
_NAME_BY_TYPE: dict[type, str] = {}


def namespace_of(x: Any) -> Any:
    """The array-API namespace of ``x``, cached per array type (one dict lookup).

    Raises ``TypeError`` for objects that are not arrays of a supported backend.
    """
    try:
        return _NAMESPACE_BY_TYPE[type(x)]
    except KeyError:
        pass
    name = _backend_name_of(x)
    if name is None:
        raise TypeError(
            f"expected an array (numpy, cupy, torch or array_api_strict), got {type(x).__name__}; "
            "convert it first, e.g. nu_xp.asarray(x, like=model)"
        )
    xp = _import_namespace(name) if name in ("numpy", "torch") else array_api_compat.array_namespace(x)
    _NAMESPACE_BY_TYPE[type(x)] = xp
    return xp


_KIND_BY_DTYPE: dict[tuple[type, Any], str] = {}


def dtype_kind(xp: Any, dtype: Any) -> str:
    """``"f"`` (real floating), ``"i"`` (integral), ``"b"`` (bool) or ``"c"`` (complex), cached per dtype.

    ``xp.isdtype`` costs about a microsecond; the hot paths of the losses ask
    for every batch, so the answer is kept in a dict.
    """
    key = (type(dtype), dtype)  # the type first: never compare dtypes of two libraries
    try:
        return _KIND_BY_DTYPE[key]
    except (KeyError, TypeError):
        pass
    kinds = (("f", "real floating"), ("i", "integral"), ("b", "bool"), ("c", "complex floating"))
    kind = next((k for k, name in kinds if xp.isdtype(dtype, name)), "?")
    try:
        _KIND_BY_DTYPE[key] = kind
    except TypeError:  # an unhashable dtype object
        pass
    return kind


def _backend_name_of(x: Any) -> str | None:
    """Backend name of an array, or None when ``x`` is not a supported array."""
    try:
        return _NAME_BY_TYPE[type(x)]
    except KeyError:
        pass
    if isinstance(x, np.generic) or not hasattr(x, "shape"):
        return None
    if array_api_compat.is_numpy_array(x):
        name = "numpy"
    elif array_api_compat.is_torch_array(x):
        name = "torch"
    elif array_api_compat.is_cupy_array(x):
        name = "cupy"
    elif type(x).__module__.startswith("array_api_strict"):
        name = "array_api_strict"
    else:
        return None
    _NAME_BY_TYPE[type(x)] = name
    return name


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` an array lives on (its dtype if floating, else the default)."""
    name = _backend_name_of(x)
    if name is None:
        namespace_of(x)  # raises the TypeError
    dt = dtype_name(x.dtype)
    return get_backend(name, device=array_api_compat.device(x), dtype=dt if dt in FLOAT_DTYPES else None)


def describe(x: Any) -> str:
    """Short text for error messages: ``"a torch tensor on cuda:0"``."""
    name = _backend_name_of(x)
    if name is None:
        return f"a {type(x).__name__}"
    kind = {"numpy": "a numpy array", "torch": "a torch tensor", "cupy": "a cupy array"}.get(
        name, "an array_api_strict array"
    )
    return f"{kind} on {get_backend(name, device=array_api_compat.device(x)).device_name}"


def to_host(a: Any) -> np.ndarray:
    """Copy (or view) any supported array as a ``numpy.ndarray`` in host memory.

    cupy arrays are fetched with ``.get()``, torch tensors with
    ``.detach().cpu().numpy()``, array_api_strict arrays through DLPack.
    Lists and scalars go through ``numpy.asarray``. The dtype is kept.

    Examples
    --------
    >>> import nu_xp
    >>> nu_xp.to_host([1.0, 2.0])
    array([1., 2.])
    """
    name = _backend_name_of(a)
    if name == "numpy":
        return np.asarray(a)
    if name == "torch":
        return a.detach().cpu().numpy()
    if name == "cupy":
        return a.get()
    if name == "array_api_strict":
        try:
            return np.from_dlpack(a)
        except Exception:
            return np.asarray(a)
    return np.asarray(a)


def asarray(a: Any, like: Any = None, dtype: Any = None) -> Any:
    """Move ``a`` onto the backend and device of ``like`` (a layer, a model or an array).

    Parameters
    ----------
    a : array or array-like
        Any supported array, a list, or a scalar.
    like : Layer, Backend, array, str or None
        Where ``a`` should go; a backend name also works. None: the default backend.
    dtype : str or dtype, optional
        Cast to this dtype. By default the dtype is kept (integer labels stay
        integers; numpy's float64 stays float64).

    Examples
    --------
    >>> import nu_xp
    >>> model = nu_xp.Linear(2, 1, seed=0)
    >>> nu_xp.asarray([[1.0, 2.0]], like=model, dtype=model.dtype).dtype
    dtype('float32')
    """
    target = _target_backend(like)
    if dtype is not None:
        dtype = getattr(target.xp, dtype_name(dtype))
    if target.owns(a):
        if dtype is None or a.dtype == dtype:
            return a
        return target.xp.astype(a, dtype)
    host = to_host(a)
    if host.dtype == object:
        raise TypeError(f"cannot convert {describe(a)} of Python objects into an array")
    return target.xp.asarray(host, dtype=dtype, device=target.device)


def _target_backend(like: Any) -> Backend:
    if like is None or isinstance(like, (str, Backend)):
        return get_backend(like)
    backend = getattr(like, "backend_info", None)
    if isinstance(backend, Backend):
        return backend
    if _backend_name_of(like) is not None:
        return backend_of(like)
    if hasattr(like, "__name__"):
        return get_backend(like)
    raise TypeError(f"like= must be a layer, an array or a backend name, got {type(like).__name__}")
