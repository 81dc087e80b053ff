"""The registry of backends: names → [`Ops`][nu_xp.backends.ops.Ops] classes, arrays → their backend.

Adding a backend is one new module with an ``Ops`` subclass and its name in
`OPS_CLASSES` (JAX came this way: ``jax_ops.py`` and this line);
nothing else in nu_xp names a backend but the kernel modules beside its
class, named after it (``numpy_windows.py``, ``jax_windows.py``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .cupy_ops import CupyOps
from .jax_ops import JaxOps
from .numpy_ops import NumpyOps
from .ops import Ops
from .strict_ops import StrictOps
from .torch_ops import TorchOps

__all__ = ["BACKENDS", "OPS_CLASSES", "normalize_name", "ops_class_of", "ops_for"]

#: every backend nu_xp knows, by name; the first is the default
OPS_CLASSES: dict[str, type[Ops]] = {cls.name: cls for cls in (NumpyOps, CupyOps, TorchOps, StrictOps, JaxOps)}
#: the valid backend names
BACKENDS: tuple[str, ...] = tuple(OPS_CLASSES)


def normalize_name(backend: Any) -> str:
    """A backend name (``"torch"``), or an imported module of one, as one of `BACKENDS`.

    Raises ``ValueError`` listing the valid names.
    """
    if isinstance(backend, str):
        name = backend.strip().lower().replace("-", "_")
        if name in OPS_CLASSES:
            return name
        raise ValueError(f"unknown backend {backend!r}; valid backends are {', '.join(map(repr, BACKENDS))}")
    module_name = getattr(backend, "__name__", None)
    if isinstance(module_name, str):
        for name, cls in OPS_CLASSES.items():
            if module_name in cls.modules:
                return name
    modules = ", ".join(cls.modules[0] for cls in OPS_CLASSES.values())
    raise ValueError(
        f"unknown backend {backend!r}: pass a name ({', '.join(map(repr, BACKENDS))}) "
        f"or one of those modules ({modules})"
    )


@functools.cache
def ops_for(name: str) -> Ops:
    """The one [`Ops`][nu_xp.backends.ops.Ops] instance of backend ``name`` (imports its library on first use).

    Raises ``ImportError`` naming the pip extra when the library is missing,
    and ``RuntimeError`` when it cannot run here (CuPy without CUDA).
    """
    return OPS_CLASSES[normalize_name(name)]()


_CLASS_BY_TYPE: dict[type, type[Ops] | None] = {}


def ops_class_of(x: Any) -> type[Ops] | None:
    """The ``Ops`` class whose arrays ``x`` is one of, or None (cached per type: one dict lookup)."""
    try:
        return _CLASS_BY_TYPE[type(x)]
    except KeyError:
        pass
    found = None
    if not isinstance(x, np.generic) and hasattr(x, "shape"):
        found = next((cls for cls in OPS_CLASSES.values() if cls.is_array(x)), None)
        _CLASS_BY_TYPE[type(x)] = found
    return found
