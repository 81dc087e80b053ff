"""State dicts: a layer tree's arrays as ``{PyTorch name: host array}``, and loading them back with every check.

``state_dict`` copies every parameter and buffer to host memory under the
names ``named_parameters(remove_duplicate=False)`` and ``named_buffers`` give.
Loading is two steps, so a checkpoint that holds several parts (weights,
optimizer, extra state) changes nothing until every part has passed:
[`check_state_dict`][] checks names, shapes and dtypes and returns host
arrays ready to apply, [`apply_state_dict`][] installs them. Every mismatch
is a [`ModelFileError`][nu_xp.errors.ModelFileError] (a ``ValueError``) naming the key.
"""

from __future__ import annotations

import warnings
from collections import namedtuple
from typing import Any

import numpy as np

from ..backends import asarray, to_host
from ..errors import ModelFileError, ModelFileWarning

__all__ = ["IncompatibleKeys", "apply_state_dict", "check_state_dict", "state_dict"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = "Keys of the model absent from the source, and keys of the source the model lacks."


def state_dict(layer: Any) -> dict[str, np.ndarray]:
    """``{name: numpy array}``: host copies of every parameter (tied ones under every name) and buffer."""
    state = {name: np.array(to_host(p.data)) for name, p in layer.named_parameters(remove_duplicate=False)}
    state.update({name: np.array(to_host(b)) for name, b in layer.named_buffers(remove_duplicate=False)})
    return state


def _spec(value: Any) -> tuple[tuple[int, ...], str]:
    """``(shape, "f" or "i")`` of a buffer: floating buffers follow the model's dtype, integer ones stay int64."""
    return tuple(value.shape), "f" if to_host(value).dtype.kind == "f" else "i"


def check_state_dict(
    layer: Any, state: dict[str, Any], strict: bool = True, *, cast: bool = False, source: str = "state_dict"
) -> tuple[dict[str, np.ndarray], IncompatibleKeys]:
    """The checks of ``load_state_dict``, changing nothing: ``(host arrays ready to apply, keys)``.

    ``strict=False`` keeps the keys present in both and reports the rest;
    shapes and dtypes are always checked; ``cast=True`` converts a floating
    dtype instead of refusing it. NaN or Inf values (also those a cast to the
    model's dtype creates) pass with a ``ModelFileWarning``.
    """
    if not isinstance(state, dict):
        raise TypeError(f"{source}: a state dict must be a dict of arrays, got {type(state).__name__}")
    mine = {k: (p.shape, "f") for k, p in layer.named_parameters(remove_duplicate=False)}
    mine.update({k: _spec(b) for k, b in layer.named_buffers(remove_duplicate=False)})
    missing = [k for k in mine if k not in state]
    unexpected = [k for k in state if k not in mine]
    if strict and (missing or unexpected):
        raise ModelFileError(
            f"{source}: keys do not match the model: missing {missing} (in the model, not in {source}), "
            f"unexpected {unexpected} (in {source}, not in the model); "
            "pass strict=False to load the keys that match"
        )
    be = layer.backend
    ready: dict[str, np.ndarray] = {}
    bad_values = []
    for key, (shape, kind) in mine.items():
        if key not in state:
            continue
        host = to_host(state[key])
        if tuple(host.shape) != shape:
            raise ModelFileError(
                f"{source}: {key!r} has shape {tuple(host.shape)}, but the model's {key!r} has shape {shape}"
            )
        if kind == "f":
            if host.dtype.kind != "f":
                raise ModelFileError(f"{source}: {key!r} has dtype {host.dtype}; it must be floating point")
            if host.dtype.name != be.dtype_name and not cast:
                raise ModelFileError(
                    f"{source}: {key!r} has dtype {host.dtype.name}, but the model's {key!r} is "
                    f"{be.dtype_name}; pass cast=True to convert the values, or convert the model first with "
                    f"model.to(dtype={host.dtype.name!r}), "
                    f"or rebuild it from a nu_xp file in {be.dtype_name} with "
                    f"nu_xp.load(path, dtype={be.dtype_name!r})"
                )
            with np.errstate(over="ignore"):  # an overflow to inf is reported below, as a NaN is
                ready[key] = np.array(host, dtype=be.dtype_name, copy=True)
            if not np.all(np.isfinite(ready[key])):
                bad_values.append(key)
        else:
            if host.dtype.kind not in "iu":
                raise ModelFileError(f"{source}: {key!r} has dtype {host.dtype}; it must be an integer")
            ready[key] = np.array(host, dtype=np.int64, copy=True)
    if bad_values:
        warnings.warn(
            f"{source}: {bad_values} contain NaN or Inf values (in the {be.dtype_name} the model uses)",
            ModelFileWarning,
            stacklevel=4,
        )
    return ready, IncompatibleKeys(missing, unexpected)


def apply_state_dict(layer: Any, ready: dict[str, np.ndarray]) -> None:
    """Put checked host arrays (from [`check_state_dict`][]) into the parameters and buffers."""
    be = layer.backend
    params = dict(layer.named_parameters(remove_duplicate=False))
    for key, host in ready.items():
        if key in params:
            params[key].data = asarray(host, like=be)
            params[key].grad = None
        else:
            owner, _, name = key.rpartition(".")
            layer.layer_at(owner).register_buffer(name, asarray(host, like=be))
