"""Saving and loading models as self-describing, portable, safe ``.npz`` files.

File format (version 1): a zip archive as written by ``numpy.savez`` holding

* one ``.npy`` member per parameter, named as in ``model.state_dict()``
  (``"0.weight"``, ``"0.bias"``, …: the keys of ``torch.nn.Sequential``),
  host (numpy) arrays in the model's dtype;
* ``"__nu_xp__"``: a 0-d unicode array holding JSON::

      {"format": "nu_xp", "format_version": 1, "library_version": "0.1.0",
       "dtype": "float32", "saved_from": "numpy",
       "architecture": {"class": "Sequential", "config": {}, "layers": [
           {"class": "Linear", "config": {"in_features": 2, "out_features": 8, "bias": true, "init": "auto"}},
           {"class": "Tanh", "config": {}}, ...]},
       "parameters": {"0.weight": {"shape": [8, 2], "dtype": "float32"}, ...}}

* ``"ties"`` in the JSON, when the model shares a Parameter between layers
  (weight tying): ``{"2.weight": "0.weight"}``, every later name of a
  Parameter mapped to its first; the weights are stored under every name
  (as ``torch.save(model.state_dict())`` does) and [`load`][] restores the tie;
* for a checkpoint, optimizer state under ``"__optimizer__/<index>/<name>"``
  and its hyper-parameters in the JSON (``"optimizer"``), the state of every
  layer's extra state (``"extra_state"``: a Dropout mask generator's state,
  by layer name), so training resumes to the bit; a schedule's state
  (``"scheduler"``); and the user's ``"extra"`` (arrays in it stored under
  ``"__extra__/<n>"``, numbers that are not finite tagged ``{"__float__": "inf"}``).

Safety: the archive is read by [`nu_xp.archive`][nu_xp.archive] (``allow_pickle=False``,
member by member, CRC-checked, object arrays refused); the architecture may
only name classes in `nu_xp.LAYER_REGISTRY` (layers, never losses), each
config may only hold that layer's own constructor arguments, and each layer
checks its config and the shapes of its parameters
([`Layer.parameter_shapes`][nu_xp.layers.base.Layer.parameter_shapes])
against the file's arrays *before* anything is built. Nothing in a file is
ever imported, unpickled or executed. Every problem raises
[`ModelFileError`][nu_xp.errors.ModelFileError] naming the file. Saves are atomic
([`nu_xp.archive.atomic_savez`][nu_xp.archive.atomic_savez]).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from . import world
from ._version import __version__
from .archive import RESERVED_PREFIX, atomic_savez, read_archive, weight_arrays
from .backends import dtype_name, get_backend, to_host, use_backend
from .errors import ModelFileError, ModelFileWarning
from .formats import file_format
from .layers import LAYER_REGISTRY, IncompatibleKeys, Layer, Parameter
from .layers.state import apply_state_dict, check_state_dict
from .optim import unwrap
from .safetensors_file import read_safetensors, write_safetensors
from .torch_file import read_torch_state_dict

__all__ = [
    "FORMAT_VERSION",
    "IncompatibleKeys",
    "ModelFileError",
    "ModelFileWarning",
    "describe_architecture",
    "load",
    "load_checkpoint",
    "load_weights",
    "read_model_file",
    "save",
]

FORMAT_VERSION = 1
#: limits on the JSON entry: its size in characters, its nesting depth, the digits of any integer in it
MAX_META_CHARS = 4_000_000
MAX_META_DEPTH = 256  # about 120 containers nested in one another (JSON levels: an object and a list each)
MAX_INT_DIGITS = 40  # 128-bit generator states have 39
META_KEY = f"{RESERVED_PREFIX}nu_xp__"
OPTIM_PREFIX = f"{RESERVED_PREFIX}optimizer__/"


# ============================================================================ architecture


def describe_architecture(layer: Layer) -> dict[str, Any]:
    """JSON description of ``layer``: its registered class name, constructor config and sub-layers."""
    name = type(layer).__name__
    if LAYER_REGISTRY.get(name) is not type(layer):
        raise TypeError(
            f"cannot save a {name}: its class is not registered, so it could not be rebuilt; "
            "decorate it with @nu_xp.register_layer"
        )
    spec: dict[str, Any] = {"class": name, "config": layer.get_config()}
    if layer.holds_layers:
        slots = list(layer.named_slots())
        spec["layers"] = [describe_architecture(child) for _, child in slots]
        names = [name for name, _ in slots]
        if names != [str(i) for i in range(len(slots))]:  # not a Sequential's positions (AveragedModel's "module")
            spec["names"] = names
    try:
        json.dumps(spec["config"], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}.get_config() must return JSON values (numbers, strings, lists, dicts): {exc}") from exc
    return spec


def _build(spec: Any, source: str, arrays: dict[str, np.ndarray] | None = None, prefix: str = "") -> Layer:
    """Rebuild a layer from its JSON spec, only from registered layer classes.

    The config may hold only the class's constructor arguments (never
    ``backend``, ``device``, ``dtype`` or ``seed``: the caller decides those).
    With ``arrays`` (the file's weights), the shapes the layer says its config
    implies are compared with the stored arrays *before* it is built, so a
    hostile file cannot make nu_xp allocate a gigantic layer for a tiny array.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise ModelFileError(f"{source}: malformed architecture entry {spec!r}")
    name = spec["class"]
    cls = LAYER_REGISTRY.get(name)
    if cls is None:
        raise ModelFileError(
            f"{source}: the file names layer class {name!r}, which is not registered. If it is your own "
            "Layer subclass, import it and decorate it with @nu_xp.register_layer before loading. "
            "(nu_xp never imports or runs code named in a file.)"
        )
    config = spec.get("config", {})
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise ModelFileError(f"{source}: malformed config for {name}: {config!r}")
    foreign = sorted(set(config) - cls.config_arguments())
    if foreign:
        raise ModelFileError(
            f"{source}: the config of {prefix or 'the model'} ({name}) holds {foreign}, which are not arguments "
            f"of {name}; a file may only give a layer's own constructor arguments"
        )
    _check_flags(cls, config, prefix, source)
    children: list[Layer] = []
    if cls.holds_layers:
        entries = spec.get("layers")
        if not isinstance(entries, list):
            raise ModelFileError(f"{source}: {name} entry without a 'layers' list")
        names = spec.get("names", [str(i) for i in range(len(entries))])
        if (
            not isinstance(names, list)
            or len(names) != len(entries)
            or not all(isinstance(n, str) and n and "." not in n for n in names)
        ):
            raise ModelFileError(f"{source}: {name} entry has malformed sub-layer names {names!r}")
        children = [_build(child, source, arrays, f"{prefix}{n}.") for n, child in zip(names, entries)]
    elif arrays is not None:
        _check_shapes(cls, config, arrays, prefix, source)
    try:
        return cls(*children, **config)
    except Exception as exc:
        raise ModelFileError(f"{source}: cannot rebuild {name}(**{config!r}): {exc}") from exc


def _check_flags(cls: type[Layer], config: dict[str, Any], prefix: str, source: str) -> None:
    """Every argument whose default is True or False must be given as True or False (JSON's ``true``/``false``):
    a flag that a layer's constructor would read as truthy (``"no"``, ``[true]``, ``1``) is refused."""
    defaults = inspect.signature(cls.__init__).parameters
    for key, value in config.items():
        p = defaults.get(key)
        if p is not None and isinstance(p.default, bool) and not isinstance(value, bool):
            raise ModelFileError(
                f"{source}: the config of {prefix or 'the model'} ({cls.__name__}) gives {key}={value!r}; "
                "it must be true or false"
            )


def _check_shapes(
    cls: type[Layer], config: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str, source: str
) -> None:
    """Compare the shapes ``cls.parameter_shapes(config)`` announces with the file's arrays."""
    try:
        shapes = cls.parameter_shapes(config)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: bad config for {prefix or 'the model'} ({cls.__name__}): {exc}") from exc
    for key, wanted in (shapes or {}).items():
        stored = arrays.get(f"{prefix}{key}")
        if stored is None or tuple(stored.shape) != tuple(wanted):
            got = "nothing" if stored is None else f"shape {tuple(stored.shape)}"
            raise ModelFileError(
                f"{source}: the architecture says {prefix}{key} has shape {tuple(wanted)}, but the file holds {got}"
            )


def _check_declared_shapes(spec: dict[str, Any], arrays: dict[str, Any], prefix: str, source: str) -> None:
    """[`_check_shapes`][] and [`_check_flags`][] for every layer of an architecture ``describe_architecture`` made
    (what ``load`` checks, without building anything)."""
    cls = LAYER_REGISTRY[spec["class"]]
    if cls.holds_layers:
        names = spec.get("names", [str(i) for i in range(len(spec["layers"]))])
        for name, child in zip(names, spec["layers"]):
            _check_declared_shapes(child, arrays, f"{prefix}{name}.", source)
    else:
        _check_shapes(cls, spec["config"], arrays, prefix, source)
    _check_flags(cls, spec["config"], prefix, source)


# ============================================================================ writing


def save(
    model: Layer, path: str | os.PathLike, optimizer: Any = None, scheduler: Any = None, extra: dict | None = None
) -> Path:
    """Write ``model`` (and optionally its optimizer's and schedule's state) to one ``.npz`` or safetensors file.

    Parameters
    ----------
    model : Layer
        A model whose layer classes are registered (all built-in ones are).
    path : str or path-like
        The file, written exactly at this name (no suffix is added). A name ending in
        ``.safetensors`` writes the safetensors format (``pip install "nu_xp[safetensors]"``): the
        tensors under their ``state_dict`` names and nu_xp's JSON in the header's ``__metadata__``
        under ``"__nu_xp__"``, so any safetensors reader takes the weights and ``nu_xp.load`` the model.
        Any other name writes ``.npz``.
    optimizer : nu_xp.optim.Optimizer, optional
        Save its state beside the weights: a checkpoint that
        [`load_checkpoint`][] resumes exactly.
    scheduler : schedule, optional
        A learning-rate schedule of ``nu_xp.optim``: its ``state_dict()`` is kept too.
    extra : dict, optional
        Values to keep with a checkpoint (epoch, history…): JSON values, numbers
        that are not finite, and arrays (stored as arrays, returned by
        ``load_checkpoint`` as numpy arrays).

    Returns
    -------
    pathlib.Path
        The path written. Under MPI with several ranks ([`nu_xp.distributed`][nu_xp.distributed])
        only rank 0 writes; the others return the path without writing.

    Examples
    --------
    >>> import nu_xp, tempfile, os
    >>> model = nu_xp.Sequential(nu_xp.Linear(2, 3, seed=0), nu_xp.ReLU())
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = nu_xp.save(model, path)
    >>> nu_xp.load(path)[0].weight.shape
    (3, 2)
    """
    if not isinstance(model, Layer) or model.is_loss:
        raise TypeError(f"save expects a nu_xp Layer or Sequential, got {type(model).__name__}")
    path = Path(os.fspath(path))
    if not world.writes_files():  # under MPI, rank 0 writes
        return path
    arrays: dict[str, Any] = model.state_dict()
    meta: dict[str, Any] = {
        "format": "nu_xp",
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "dtype": model.backend.dtype_name,
        "saved_from": model.backend_name,
        "architecture": describe_architecture(model),
        "parameters": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()},
    }
    ties = model.tied_parameters()
    if ties:
        meta["ties"] = ties
    if optimizer is not None:
        optimizer = unwrap(optimizer)  # a DistributedOptimizer's checkpoint is its optimizer's
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, entries in state["state"].items():
            for key, value in entries.items():
                if isinstance(value, np.ndarray):
                    arrays[f"{OPTIM_PREFIX}{index}/{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = value
        meta["optimizer"] = {
            "class": type(optimizer).__name__,
            "param_groups": state["param_groups"],
            "scalars": scalars,
        }
        meta["extra_state"] = model.named_extra_states()
    if scheduler is not None:
        if not hasattr(scheduler, "state_dict"):
            raise TypeError(f"save: scheduler must be a nu_xp.optim schedule, got {type(scheduler).__name__}")
        meta["scheduler"] = {"class": type(scheduler).__name__, "state": _pack(scheduler.state_dict(), arrays)}
    if extra is not None:
        if not isinstance(extra, dict):
            raise TypeError(f"save: extra must be a dict, got {type(extra).__name__}")
        meta["extra"] = _pack(extra, arrays)
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save: extra= and layer configs must be JSON values: {exc}") from exc
    try:  # never write what load would refuse: the reader's own limits, checked before the target is touched
        _parse_json(text, path)
    except ModelFileError as exc:
        raise ModelFileError(
            f"save would write metadata that nu_xp.load refuses, so {path} was left as it was: {exc} "
            "(smaller numbers, less text in extra=, or a flatter model)"
        ) from None
    try:  # and the shapes load will compare: an array reshaped behind its layer's back would make a dead file
        _check_declared_shapes(meta["architecture"], arrays, "", str(path))
    except ModelFileError as exc:
        raise ModelFileError(
            f"save would write a file that nu_xp.load refuses, so {path} was left as it was: {exc} (a parameter's "
            "array must keep the shape its layer's configuration gives it, and a flag be True or False)"
        ) from None
    if path.suffix.lower() == ".safetensors":  # the JSON goes into the header's metadata
        write_safetensors(path, arrays, {META_KEY: text})
    else:
        arrays[META_KEY] = np.array(text)
        atomic_savez(path, arrays)
    return path


# ============================================================================ reading


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """``(arrays, meta)`` from a file, safely: ``meta`` is None for a file nu_xp did not write.

    ``.npz``, safetensors and ``torch.save`` files ([`nu_xp.formats.file_format`][nu_xp.formats.file_format]).

    Raises [`ModelFileError`][nu_xp.errors.ModelFileError] for everything
    [`nu_xp.archive.read_archive`][nu_xp.archive.read_archive]
    refuses, a malformed ``__nu_xp__`` entry or a format version newer than this nu_xp reads.
    """
    kind = file_format(path)
    if kind == "pytorch":
        return read_torch_state_dict(path), None
    if kind == "safetensors":
        arrays, metadata = read_safetensors(path)
        text = metadata.get(META_KEY)
        return arrays, None if text is None else _parse_meta(np.array(text), Path(os.fspath(path)))
    arrays = read_archive(path)
    meta = _parse_meta(arrays.pop(META_KEY), Path(os.fspath(path))) if META_KEY in arrays else None
    return arrays, meta


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS} are allowed)")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(text: str, path: Path) -> Any:
    """``json.loads`` within `MAX_META_CHARS`, `MAX_META_DEPTH` and `MAX_INT_DIGITS`."""
    where = f"{path}: the {META_KEY!r} entry"
    if len(text) > MAX_META_CHARS:
        raise ModelFileError(f"{where} has {len(text)} characters; at most {MAX_META_CHARS} are allowed")
    if _json_depth(text) > MAX_META_DEPTH:
        raise ModelFileError(f"{where} nests deeper than {MAX_META_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{where} is not valid JSON ({exc})") from exc


def _parse_meta(entry: np.ndarray, path: Path) -> dict[str, Any]:
    if entry.dtype.kind != "U" or entry.ndim != 0:
        raise ModelFileError(f"{path}: the {META_KEY!r} entry must be a JSON text, got a {entry.dtype} array")
    meta = _parse_json(str(entry), path)
    if not isinstance(meta, dict) or meta.get("format") != "nu_xp":
        raise ModelFileError(f"{path}: the {META_KEY!r} entry does not describe a nu_xp model")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} uses file format version {version}, written by nu_xp {meta.get('library_version', '?')}; "
            f"this nu_xp reads versions up to {FORMAT_VERSION}: upgrade with pip install -U nu_xp"
        )
    if not isinstance(meta.get("architecture"), dict):
        raise ModelFileError(f"{path}: the {META_KEY!r} entry has no architecture")
    if meta.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(f"{path}: unsupported dtype {meta.get('dtype')!r} in the {META_KEY!r} entry")
    return meta


def load_weights(model: Layer, path: str | os.PathLike, strict: bool = True, cast: bool = False) -> IncompatibleKeys:
    """Fill ``model`` from a weights file (``.npz``, safetensors, ``torch.save``): names, shapes, dtypes checked.

    The same as ``model.load_weights(path, strict=strict, cast=cast)``.
    """
    return model.load_weights(path, strict=strict, cast=cast)


def _restore_ties(model: Layer, ties: Any, source: str) -> None:
    """Make every tied name refer to its first name's Parameter again (``meta["ties"]``, see the module doc)."""
    if not isinstance(ties, dict):
        raise ModelFileError(f"{source}: 'ties' must map parameter names to parameter names, got {ties!r}")
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, first in ties.items():
        if not (isinstance(first, str) and name in params and first in params and name != first):
            raise ModelFileError(f"{source}: tie {name!r} -> {first!r} does not name two parameters of the model")
        if params[name].shape != params[first].shape:
            raise ModelFileError(
                f"{source}: tie {name!r} -> {first!r} joins shapes {params[name].shape} and {params[first].shape}"
            )
        if first in ties:  # save points every tie at the first name, itself untied: a chain or a cycle is forged
            raise ModelFileError(
                f"{source}: tie {name!r} -> {first!r} points at a name that is tied itself (-> {ties[first]!r}); "
                "each tie must name a parameter that is not tied (no chains, no cycles)"
            )
    for name, first in ties.items():
        owner, _, attr = name.rpartition(".")
        layer = model.layer_at(owner)
        if not isinstance(getattr(layer, attr, None), Parameter):
            raise ModelFileError(f"{source}: tie {name!r}: {attr!r} is not a parameter attribute")
        setattr(layer, attr, params[first])


def load(path: str | os.PathLike, backend: Any = None, device: Any = None, dtype: Any = None) -> Layer:
    """Rebuild a model from a file written by [`save`][], on any backend.

    Parameters
    ----------
    path : str or path-like
    backend, device : optional
        Where to put the model (default: the current default backend). The
        file never decides this: its configs may only hold each layer's own
        constructor arguments.
    dtype : optional
        Convert to this dtype (default: the dtype stored in the file).

    Raises
    ------
    ModelFileError
        The file is missing, damaged, hostile, lacks the ``"__nu_xp__"`` entry
        (then build the model in code and call ``model.load_weights(path)``),
        or names a layer class that is not registered.
    """
    arrays, meta = read_model_file(path)
    if meta is None:
        raise ModelFileError(
            f"{path} has no {META_KEY!r} entry, so its architecture is unknown (a file that nu_xp did not write: "
            "numpy.savez, safetensors, torch.save?); "
            "build the model in code and call model.load_weights(path)"
        )
    weights = weight_arrays(arrays)
    be = get_backend(backend, device, dtype_name(dtype) if dtype is not None else meta["dtype"])
    with _as_model_file_error(path), use_backend(be.name, be.device, be.dtype_name):
        model = _build(meta["architecture"], str(path), weights)
        if "ties" in meta:
            _restore_ties(model, meta["ties"], str(path))
        model.load_state_dict(weights, strict=True, cast=True, source=str(path))
    return model


@contextlib.contextmanager
def _as_model_file_error(path: Any) -> Iterator[None]:
    """Any other failure while reading a file's contents becomes a ``ModelFileError`` naming the file."""
    try:
        yield
    except ModelFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError) as exc:
        raise ModelFileError(f"{path}: {type(exc).__name__}: {exc}") from exc


def _extra_states(meta: dict[str, Any] | None) -> dict[str, Any]:
    """The per-layer extra state of a checkpoint (files before "extra_state" kept Dropout's under "rng")."""
    meta = meta or {}
    if "extra_state" in meta:
        states = meta["extra_state"]
        if not isinstance(states, dict):
            raise ModelFileError(f"'extra_state' must map layer names to states, got {type(states).__name__}")
        return states
    old = meta.get("rng", {})
    if not isinstance(old, dict):
        raise ModelFileError(f"'rng' must map layer names to generator states, got {type(old).__name__}")
    return {("" if k == "model" else k): {"rng": v} for k, v in old.items()}


def _optimizer_state(path: Any, meta: dict[str, Any] | None, arrays: dict[str, np.ndarray], optimizer: Any) -> dict:
    """The optimizer's state dict as saved (arrays and scalars joined), before any check of its values."""
    optimizer = unwrap(optimizer)
    saved = (meta or {}).get("optimizer")
    if not isinstance(saved, dict):
        raise ModelFileError(f"{path} holds no optimizer state; it was saved without optimizer=")
    if saved.get("class") != type(optimizer).__name__:
        raise ModelFileError(f"{path} holds {saved.get('class')} state, not {type(optimizer).__name__}")
    state: dict[int, dict[str, Any]] = {}
    for key, value in arrays.items():
        if key.startswith(OPTIM_PREFIX):
            index, name = key[len(OPTIM_PREFIX) :].split("/", 1)
            state.setdefault(int(index), {})[name] = value
    scalars = saved.get("scalars", {})
    if not isinstance(scalars, dict):
        raise ModelFileError(f"{path}: malformed optimizer scalars {scalars!r}")
    for index, entries in scalars.items():
        if not isinstance(entries, dict):
            raise ModelFileError(f"{path}: malformed optimizer state for parameter {index}")
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": saved.get("param_groups")}


def load_checkpoint(
    path: str | os.PathLike, model: Layer, optimizer: Any = None, scheduler: Any = None, *, callbacks: Any = ()
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``, ``scheduler``, ``fit``'s ``callbacks``) from a file of
    ``save(model, path, optimizer=..., scheduler=..., extra=...)`` (``ModelCheckpoint`` writes them).

    All or nothing: the weights, the optimizer's hyper-parameters and state
    (through the same checks as its constructor), every layer's extra state
    (Dropout's generator), the schedule's state and the callbacks' states
    (those that ``ModelCheckpoint`` kept, for callbacks of the same classes in
    the same order) are checked first; only then is anything changed.
    Returns the ``extra`` dict that was saved (empty if none); after a
    ``ModelCheckpoint``, ``fit(..., initial_epoch=extra["epoch"] + 1)`` resumes
    the run exactly.
    """
    arrays, meta = read_model_file(path)
    meta = meta or {}
    with _as_model_file_error(path):
        ready, _ = check_state_dict(model, weight_arrays(arrays), strict=True, source=str(path))
        if optimizer is not None:
            hyper, state = optimizer.check_state_dict(_optimizer_state(path, meta, arrays, optimizer))
            extra_states = _extra_states(meta)
            for name, layer_state in extra_states.items():
                copy.deepcopy(model.layer_at(name)).set_extra_state(layer_state)  # a rehearsal on a copy
        extra = _unpack(meta.get("extra", {}), arrays, path)
        extra = extra if isinstance(extra, dict) else {"extra": extra}
        schedule_state = _schedule_state(path, meta, arrays, scheduler)
        restore = _callback_states(path, extra, list(callbacks))
    for cb, cb_state in restore:
        cb.load_state_dict(cb_state)
    apply_state_dict(model, ready)
    if optimizer is not None:
        optimizer.apply_state_dict(hyper, state)
        for name, layer_state in extra_states.items():
            model.layer_at(name).set_extra_state(layer_state)
    if scheduler is not None:
        scheduler.load_state_dict(schedule_state)
    return extra


def _schedule_state(path: Any, meta: dict[str, Any], arrays: dict[str, np.ndarray], scheduler: Any) -> Any:
    """The schedule's saved state, tried on ``scheduler`` (then its own state put back); None without one."""
    if scheduler is None:
        return None
    saved = meta.get("scheduler")
    if not isinstance(saved, dict):
        raise ModelFileError(f"{path} holds no schedule state; it was saved without scheduler=")
    if saved.get("class") != type(scheduler).__name__:
        raise ModelFileError(f"{path} holds {saved.get('class')} state, not {type(scheduler).__name__}")
    state = _unpack(saved.get("state"), arrays, path)
    before = scheduler.state_dict()
    lrs = [group["lr"] for group in unwrap(scheduler.optimizer).param_groups]
    try:
        scheduler.load_state_dict(state)
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: the {type(scheduler).__name__} state does not fit: {exc}") from exc
    finally:
        scheduler.load_state_dict(before)
        for group, lr in zip(unwrap(scheduler.optimizer).param_groups, lrs):
            group["lr"] = lr
    return state


def _callback_states(path: Any, extra: dict[str, Any], callbacks: list[Any]) -> list[tuple[Any, Any]]:
    """``[(callback, its saved state)]`` for each of ``callbacks`` that keeps state: the saved state of the
    callback of the same class at the same place among those of its class (``ModelCheckpoint`` saved them)."""
    keeping = [cb for cb in callbacks if hasattr(cb, "load_state_dict")]
    if not keeping:
        return []
    states, classes = extra.get("callbacks"), extra.get("callback_classes")
    if not isinstance(states, list) or not isinstance(classes, list) or len(states) != len(classes):
        raise ModelFileError(f"{path} holds no callback states (it was not written by ModelCheckpoint)")
    saved: dict[str, list[Any]] = {}
    for name, state in zip(classes, states):
        saved.setdefault(str(name), []).append(state)
    seen: dict[str, int] = {}
    out = []
    for cb in keeping:
        name = type(cb).__name__
        place = seen.get(name, 0)
        seen[name] = place + 1
        mine = saved.get(name, [])
        if place >= len(mine) or mine[place] is None:
            raise ModelFileError(
                f"{path} holds no state for the callback {name} (number {place + 1} of its class); the checkpoint "
                f"kept {classes}: pass fit's callbacks as they were"
            )
        out.append((cb, mine[place]))
    return out


#: where arrays inside ``extra`` (and schedule states) are stored: ``"__extra__/<n>"``
EXTRA_PREFIX = f"{RESERVED_PREFIX}extra__/"


def _pack(value: Any, arrays: dict[str, Any]) -> Any:
    """``value`` as JSON: arrays moved into ``arrays`` (and named there), non-finite floats tagged."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"save: keys of extra= must be strings, got {key!r}")
            out[key] = _pack(item, arrays)
        return out
    if isinstance(value, (list, tuple)):
        return [_pack(item, arrays) for item in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else {"__float__": repr(number)}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        name = f"{EXTRA_PREFIX}{sum(k.startswith(EXTRA_PREFIX) for k in arrays)}"
        arrays[name] = np.array(to_host(value))
        return {"__array__": name}
    return value


def _unpack(value: Any, arrays: dict[str, np.ndarray], path: Any) -> Any:
    """The inverse of [`_pack`][]: tagged arrays and numbers back (a tag naming no array is an error)."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            name = value["__array__"]
            if not isinstance(name, str) or not name.startswith(EXTRA_PREFIX) or name not in arrays:
                raise ModelFileError(f"{path}: the metadata names an array {name!r} that the file does not hold")
            return arrays[name]
        if set(value) == {"__float__"}:
            if value["__float__"] not in ("inf", "-inf", "nan"):
                raise ModelFileError(f"{path}: malformed number {value!r} in the metadata")
            return float(value["__float__"])
        return {k: _unpack(v, arrays, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v, arrays, path) for v in value]
    return value
