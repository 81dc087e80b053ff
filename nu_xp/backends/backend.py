"""``Backend``: where an object computes (array library, device, dtype), and the default one.

Selection, from most to least specific:

1. per object: ``Linear(2, 8, backend="torch", device="cuda", dtype="float64")``
   or ``model.to("cupy")``;
2. for a block of code: ``with nu_xp.use_backend("torch"):``;
3. for the process: ``nu_xp.set_backend("array_api_strict")``;
4. the environment variable ``NU_XP_BACKEND`` (read when nu_xp is imported);
5. the default, ``"numpy"`` in ``float32``.

``set_backend`` sets the process-wide default, which every thread sees (as
``torch.set_default_dtype``); a ``use_backend`` block lives in a
``ContextVar``, so it applies to its own thread or async task only.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .dtypes import FLOAT_DTYPES, dtype_kind, dtype_name
from .ops import Ops
from .registry import BACKENDS, normalize_name, ops_class_of, ops_for

__all__ = ["Backend", "describe", "get_backend", "same_device", "set_backend", "use_backend"]


@dataclass(frozen=True, eq=False)
class Backend:
    """Where and in which dtype an object computes.


    Parameters
    ----------
    ops : Ops
        The backend's [`Ops`][nu_xp.backends.ops.Ops].
    device : object
        The library's device object.
    dtype : object
        The floating dtype object of the parameters.
    array_type : type, default object
        The array class of the namespace (for ``isinstance`` checks).

    Attributes
    ----------
    ops : Ops
        The backend's [`Ops`][nu_xp.backends.ops.Ops] (its fast kernels, host transfers, devices).
    device : object
        The library's device object (``"cpu"``, ``torch.device("cuda", 0)``…).
    dtype : object
        The floating dtype of the parameters, the object their arrays carry (``numpy.dtype('float32')``,
        ``torch.float32``…), as ``tensor.dtype`` gives it.
    """

    ops: Ops
    device: Any
    dtype: Any
    array_type: Any = object  # the library's array class (Any: so a type test does not narrow for mypy)

    # plain attributes copied from ``ops`` (read on every forward: an attribute is cheaper than a property)
    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.ops.name)
        object.__setattr__(self, "xp", self.ops.xp)
        object.__setattr__(self, "single_device", self.ops.single_device)

    name: str = field(init=False)  #: the backend's name (``"numpy"``, ``"torch"``…)
    xp: Any = field(init=False)  #: the array-API namespace (``array_api_compat.numpy``, ``array_api_strict``…)
    single_device: bool = field(init=False)  #: every array of the backend lives on one device

    def check(self, x: Any, role: str = "input") -> Any:
        """Return ``x`` ready for this backend's parameters, or raise ``TypeError``.

        Fast path (one type test, one dtype test, one device test) for the
        common case. A real-valued array of another dtype is cast to
        ``self.dtype``; an array of another backend or device, a complex or
        boolean array, or a non-array raises ``TypeError`` that says how to fix it.
        """
        if (
            type(x) is self.array_type
            and x.dtype == self.dtype  # type: ignore[attr-defined]
            and (self.single_device or x.device == self.device)  # type: ignore[attr-defined]
        ):
            return x
        return self._coerce(x, role)

    def _coerce(self, x: Any, role: str) -> Any:
        cls = ops_class_of(x)
        if cls is None:
            raise TypeError(
                f"{role} must be an array, got {type(x).__name__}; convert it with "
                f"nu_xp.asarray(x, like=model) (this model's parameters are on {self.name})"
            )
        if not self.owns(x):
            raise TypeError(
                f"{role} is {describe(x)}, but this model's parameters are on {self.name} "
                f"({self.device_name}); use model.to({cls.name!r}) or nu_xp.asarray(x, like=model)"
            )
        if dtype_kind(self.xp, x.dtype) in ("f", "i"):
            return self.ops.astype(x, self.dtype)
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
        return self.ops.device_name(self.device)

    def from_host(self, a: Any, dtype: Any = None) -> Any:
        """Move a host (numpy) array here, as ``dtype`` (default: keep its dtype)."""
        return self.ops.asarray(a, dtype=dtype, device=self.device)

    def with_dtype(self, dtype: Any) -> Backend:
        """This backend (library and device) computing in ``dtype`` (a name such as ``"bfloat16"``, or a dtype).

        What a model's layers compute with inside
        [`compute_dtype`][nu_xp.training.precision.compute_dtype] (mixed precision).
        """
        if isinstance(dtype, str):
            dtype = self.ops.low_dtype(dtype) if dtype not in FLOAT_DTYPES else getattr(self.xp, dtype)
        return Backend(self.ops, self.device, dtype, array_type=self.array_type)

    def owns(self, x: Any) -> bool:
        """True when ``x`` is an array of this backend on this device (or a traced value, which has no device)."""
        if ops_class_of(x) is not type(self.ops):
            return False
        device = self.ops.device_of(x)
        return device is None or same_device(device, self.device)

    def synchronize(self) -> None:
        """Wait for the device to finish queued work (for timing)."""
        self.ops.synchronize(self.device)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device_name!r}, dtype={self.dtype_name!r})"

    def _key(self) -> tuple[str, str, str]:
        return (self.name, self.device_name, self.dtype_name)

    def __eq__(self, other: object) -> bool:
        """Equal to a Backend on the same (name, device, dtype), and to its own name (``be == "torch"``)."""
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Backend) and self._key() == other._key()

    def __hash__(self) -> int:
        """The hash of the name: objects that compare equal hash alike (``be in {"numpy"}`` is ``be == "numpy"``).

        Backends of one library on other devices or dtypes share the hash and differ by ``==``.
        """
        return hash(self.name)

    def __deepcopy__(self, memo: dict) -> Backend:
        return self  # immutable, and holds a module

    def __reduce__(self) -> tuple:
        return (get_backend, self._key())


def describe(x: Any) -> str:
    """Short text for error messages: ``"a torch tensor on cuda:0"``."""
    cls = ops_class_of(x)
    if cls is None:
        return f"a {type(x).__name__}"
    device = ops_for(cls.name).device_of(x)
    return f"{cls.array_noun} on {get_backend(cls.name, device=device).device_name}"


def same_device(a: Any, b: Any) -> bool:
    """True when two device objects (or their names) are the same device."""
    return a == b or str(a) == str(b)


@dataclass(frozen=True)
class _Default:
    name: str
    device: Any
    dtype: str


def _default_from_env() -> _Default:
    env = os.environ.get("NU_XP_BACKEND", "").strip()
    if not env:
        return _Default(BACKENDS[0], None, "float32")
    try:
        return _Default(normalize_name(env), None, "float32")
    except ValueError as exc:
        raise ValueError(f"environment variable NU_XP_BACKEND: {exc}") from None


#: the process-wide default (``set_backend``): every thread sees it, as ``torch.set_default_dtype``
_PROCESS_DEFAULT: list[_Default] = [_default_from_env()]
#: a ``use_backend`` block's default, for this thread or async task only (None outside any block)
_SCOPED: contextvars.ContextVar[_Default | None] = contextvars.ContextVar("nu_xp_scoped_default", default=None)


def _current_default() -> _Default:
    return _SCOPED.get() or _PROCESS_DEFAULT[0]


def _check_dtype(dtype: Any) -> str:
    name = dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {FLOAT_DTYPES} for parameters, got {dtype!r}")
    return name


def _resolve_device(ops: Ops, device: Any) -> Any:
    try:
        return ops.resolve_device(device)
    except (ValueError, RuntimeError):
        raise
    except Exception as exc:
        raise ValueError(f"device={device!r} is not a device of the {ops.name!r} backend: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _make_backend(name: str, device_key: Any, dtype: str) -> Backend:
    ops = ops_for(name)
    ops.check_dtype(dtype)
    device = _resolve_device(ops, device_key)
    probe = ops.xp.zeros((1,), dtype=getattr(ops.xp, dtype), device=device)
    return Backend(
        ops,
        device,
        probe.dtype,  # the dtype object arrays carry (numpy's dtype('float32'), torch.float32…), as tensor.dtype
        array_type=type(probe),
    )


def get_backend(backend: Any = None, device: Any = None, dtype: Any = None) -> Backend:
    """Resolve a backend choice into a [`Backend`][].

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
    default = _current_default()
    if isinstance(backend, Backend):
        if device is None and dtype is None:
            return backend
        name = backend.name
        device = backend.device if device is None else device
        dtype = backend.dtype_name if dtype is None else dtype
    else:
        name = default.name if backend is None else normalize_name(backend)
    if device is None and name == default.name:
        device = default.device
    dtype_str = _check_dtype(default.dtype if dtype is None else dtype)
    ops = ops_for(name)
    return _make_backend(name, ops.device_key(device), dtype_str)


def _normalize(backend: Any) -> str:
    return backend.name if isinstance(backend, Backend) else normalize_name(backend)


def set_backend(backend: Any = "numpy", device: Any = None, dtype: Any = None) -> Backend:
    """Set the process-wide default backend (and optionally device and dtype), for every thread.

    Objects created afterwards without ``backend=`` use it; existing objects
    stay where they are (move them with ``.to()``). Returns the new default.

    Examples
    --------
    >>> import nu_xp
    >>> nu_xp.set_backend("numpy", dtype="float64")
    Backend('numpy', device='cpu', dtype='float64')
    >>> _ = nu_xp.set_backend("numpy")  # back to the float32 default
    """
    name = _normalize(backend)
    resolved = get_backend(name, device, dtype or "float32")
    _PROCESS_DEFAULT[0] = _Default(name, device, resolved.dtype_name)
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
    name = _normalize(backend)
    resolved = get_backend(name, device, dtype or "float32")
    token = _SCOPED.set(_Default(name, device, resolved.dtype_name))
    try:
        yield resolved
    finally:
        _SCOPED.reset(token)
