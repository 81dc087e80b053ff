"""Saving and loading models as self-describing, portable, safe ``.npz`` files.

File format (version 1): a zip archive as written by ``numpy.savez`` holding

* one ``.npy`` member per parameter, named as in ``model.state_dict()``
  (``"0.weight"``, ``"0.bias"``, …: the keys of ``torch.nn.Sequential``),
  host (numpy) arrays in the model's dtype;
* ``"__nu_xp__"``: a 0-d unicode array holding JSON::

      {"format": "nu_xp", "format_version": 1, "library_version": "0.1.0",
       "dtype": "float32", "saved_from": "torch",
       "architecture": {"class": "Sequential", "config": {}, "layers": [
           {"class": "Linear", "config": {"in_features": 2, "out_features": 8, "bias": true, "init": "auto"}},
           {"class": "Tanh", "config": {}}, ...]},
       "parameters": {"0.weight": {"shape": [8, 2], "dtype": "float32"}, ...}}

* for a checkpoint, optimizer state under ``"__optimizer__/<index>/<name>"``
  and its hyper-parameters in the JSON (``"optimizer"``), the state of every
  Dropout mask generator (``"rng"``), so training resumes to the bit, plus
  the user's ``"extra"``.

Safety: files are read with ``allow_pickle=False`` member by member (each
CRC-checked by zipfile), object arrays are refused, and the architecture may
only name classes in :data:`nu_xp.LAYER_REGISTRY`: nothing in a file is ever
imported, unpickled or executed. Every problem raises :class:`ModelFileError`
naming the file. Saves go to a temporary file in the target's directory,
are flushed and fsynced, then renamed over the target, so a crash never
leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
import zipfile
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np

from .backend import asarray, dtype_name, get_backend, to_host, use_backend
from .layers import LAYER_REGISTRY, Layer, Linear, Sequential

__all__ = [
    "FORMAT_VERSION",
    "IncompatibleKeys",
    "ModelFileError",
    "ModelFileWarning",
    "load",
    "load_checkpoint",
    "load_weights",
    "read_model_file",
    "save",
]

FORMAT_VERSION = 1
META_KEY = "__nu_xp__"
OPTIM_PREFIX = "__optimizer__/"

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = "Keys of the model absent from the file, and keys of the file the model lacks."


class ModelFileError(ValueError):
    """A model file (or state dict) that cannot be used: missing, damaged, hostile or mismatched."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """The model file does not exist (also a ``FileNotFoundError``)."""


class ModelFileWarning(UserWarning):
    """A model file that loads but looks wrong (NaN or Inf weights)."""


# ============================================================================ architecture


def describe_architecture(layer: Layer) -> dict[str, Any]:
    """JSON description of ``layer``: its registered class name and constructor config."""
    name = type(layer).__name__
    if LAYER_REGISTRY.get(name) is not type(layer):
        raise TypeError(
            f"cannot save a {name}: its class is not registered, so it could not be rebuilt; "
            "decorate it with @nu_xp.register_layer"
        )
    spec: dict[str, Any] = {"class": name, "config": layer.get_config()}
    if isinstance(layer, Sequential):
        spec["layers"] = [describe_architecture(child) for child in layer]
    try:
        json.dumps(spec["config"], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}.get_config() must return JSON values (numbers, strings, lists, dicts): {exc}") from exc
    return spec


def _build(spec: Any, source: str, arrays: dict[str, np.ndarray] | None = None, prefix: str = "") -> Layer:
    """Rebuild a layer from its JSON spec, only from registered classes.

    With ``arrays`` (the file's parameters), a ``Linear``'s sizes are checked
    against its stored weight *before* it is built, so a hostile file cannot
    make nu_xp allocate a gigantic layer for a tiny array.
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
    if cls is Sequential or issubclass(cls, Sequential):
        children = spec.get("layers")
        if not isinstance(children, list):
            raise ModelFileError(f"{source}: Sequential entry without a 'layers' list")
        return cls(*[_build(child, source, arrays, f"{prefix}{i}.") for i, child in enumerate(children)])
    wanted = (config.get("out_features"), config.get("in_features"))
    if arrays is not None and cls is Linear and all(isinstance(v, int) for v in wanted):
        stored = arrays.get(f"{prefix}weight")
        if stored is None or tuple(stored.shape) != wanted:
            got = "nothing" if stored is None else f"shape {tuple(stored.shape)}"
            raise ModelFileError(
                f"{source}: the architecture says {prefix}weight is {wanted} (out_features, in_features), "
                f"but the file holds {got}"
            )
    try:
        return cls(**config)
    except Exception as exc:
        raise ModelFileError(f"{source}: cannot rebuild {name}(**{config!r}): {exc}") from exc


def _random_layers(model: Layer, prefix: str = "") -> list[tuple[str, Layer]]:
    """``(path, layer)`` for every layer with a host random generator (Dropout), e.g. ``("2", layer)``."""
    found = [(prefix or "model", model)] if hasattr(model, "_rng") else []
    children = list(model.children())
    for i, child in enumerate(children):
        name = str(i) if isinstance(model, Sequential) else type(child).__name__ + str(i)
        found += _random_layers(child, f"{prefix}.{name}" if prefix else name)
    return found


# ============================================================================ writing


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory; give a file name such as {path / 'model.npz'}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ModelFileError(f"{path}: directory {directory} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def save(model: Layer, path: str | os.PathLike, *, optimizer: Any = None, extra: dict | None = None) -> Path:
    """Write ``model`` (and optionally its optimizer's state) to one ``.npz`` file.

    Parameters
    ----------
    model : Layer
        A model whose layer classes are registered (all built-in ones are).
    path : str or path-like
        The file, written exactly at this name (no suffix is added).
    optimizer : nu_xp.optim.Optimizer, optional
        Save its state beside the weights: a checkpoint that
        :func:`load_checkpoint` resumes exactly.
    extra : dict, optional
        JSON values to keep with a checkpoint (epoch, history…).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import nu_xp, tempfile, os
    >>> model = nu_xp.Sequential(nu_xp.Linear(2, 3, seed=0), nu_xp.ReLU())
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = nu_xp.save(model, path)
    >>> nu_xp.load(path)[0].weight.shape
    (3, 2)
    """
    from . import __version__

    if not isinstance(model, Layer):
        raise TypeError(f"save expects a nu_xp Layer or Sequential, got {type(model).__name__}")
    path = Path(os.fspath(path))
    arrays = model.state_dict()
    meta: dict[str, Any] = {
        "format": "nu_xp",
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "dtype": model.backend_info.dtype_name,
        "saved_from": model.backend,
        "architecture": describe_architecture(model),
        "parameters": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in arrays.items()},
    }
    if optimizer is not None:
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
        meta["rng"] = {name: layer._rng.bit_generator.state for name, layer in _random_layers(model)}  # type: ignore[attr-defined]
    if extra is not None:
        meta["extra"] = extra
    try:
        text = json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save: extra= and layer configs must be JSON values: {exc}") from exc
    arrays[META_KEY] = np.array(text)
    _atomic_savez(path, arrays)
    return path


# ============================================================================ reading


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """``(arrays, meta)`` from a file, safely: ``meta`` is None for a plain ``numpy.savez`` file.

    Raises :class:`ModelFileError` for a missing file, a directory, a file that
    is not a zip of ``.npy`` arrays, a damaged member (CRC), an object or
    pickled array (never unpickled), a malformed ``__nu_xp__`` entry or a
    format version newer than this nu_xp reads.
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise ModelFileNotFoundError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the file: {exc}") from exc
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ModelFileError(
            f"{path} is not a model file: an .npz (zip) archive starts with 'PK', this starts with {head!r}"
        )
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise ModelFileError(
                        f"{path}: member {info.filename!r} is not a .npy array; this is a plain zip archive, "
                        "not a file from nu_xp.save or numpy.savez"
                    )
                key = info.filename[: -len(".npy")]
                if key in arrays:
                    raise ModelFileError(f"{path}: the key {key!r} appears twice")
                if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                    raise ModelFileError(f"{path}: member {info.filename!r} has inconsistent sizes (damaged file)")
                buffer = io.BytesIO(archive.read(info))  # raises BadZipFile on a CRC mismatch
                arrays[key] = _read_npy(buffer, path, key)
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: the file is damaged or truncated ({type(exc).__name__}: {exc})") from exc
    if not arrays:
        raise ModelFileError(f"{path}: the archive holds no arrays")
    meta = _parse_meta(arrays.pop(META_KEY), path) if META_KEY in arrays else None
    return arrays, meta


def _read_npy(buffer: io.BytesIO, path: Path, key: str) -> np.ndarray:
    try:
        array = np.lib.format.read_array(buffer, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ModelFileError(
                f"{path}: array {key!r} holds Python objects (pickled data); "
                "nu_xp refuses such files and never unpickles them"
            ) from exc
        raise ModelFileError(f"{path}: array {key!r} is damaged ({exc})") from exc
    except Exception as exc:
        raise ModelFileError(f"{path}: array {key!r} is damaged ({type(exc).__name__}: {exc})") from exc
    if buffer.read(1):
        raise ModelFileError(f"{path}: array {key!r} has trailing bytes (damaged file)")
    return array


def _parse_meta(entry: np.ndarray, path: Path) -> dict[str, Any]:
    if entry.dtype.kind != "U" or entry.ndim != 0:
        raise ModelFileError(f"{path}: the {META_KEY!r} entry must be a JSON text, got a {entry.dtype} array")
    try:
        meta = json.loads(str(entry))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the {META_KEY!r} entry is not valid JSON ({exc})") from exc
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


def _split(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    params = {k: v for k, v in arrays.items() if not k.startswith(OPTIM_PREFIX)}
    optim = {k[len(OPTIM_PREFIX) :]: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)}
    return params, optim


def load_arrays_into(
    model: Layer, arrays: dict[str, Any], *, strict: bool = True, source: str = "state_dict", cast: bool = False
) -> IncompatibleKeys:
    """Check every name, shape and dtype, then copy ``arrays`` into ``model``'s parameters.

    Nothing is changed unless every check passes. ``strict=False`` loads the
    keys present in both and returns the others; shapes and dtypes are always
    checked. ``cast=True`` converts the dtype instead of refusing it.
    NaN or Inf values load with a :class:`ModelFileWarning`.
    """
    named = model.named_parameters()
    missing = [k for k in named if k not in arrays]
    unexpected = [k for k in arrays if k not in named]
    if strict and (missing or unexpected):
        raise ModelFileError(
            f"{source}: keys do not match the model: missing {missing} (in the model, not in {source}), "
            f"unexpected {unexpected} (in {source}, not in the model); pass strict=False to load the keys that match"
        )
    target = model.backend_info
    ready: dict[str, np.ndarray] = {}
    bad_values = []
    for key, param in named.items():
        if key not in arrays:
            continue
        host = to_host(arrays[key])
        if tuple(host.shape) != param.shape:
            raise ModelFileError(
                f"{source}: {key!r} has shape {tuple(host.shape)}, but the model's {key!r} has shape {param.shape}"
            )
        if host.dtype.kind != "f":
            raise ModelFileError(f"{source}: {key!r} has dtype {host.dtype}; parameters must be floating point")
        if host.dtype.name != target.dtype_name and not cast:
            raise ModelFileError(
                f"{source}: {key!r} has dtype {host.dtype.name}, but the model's {key!r} is {target.dtype_name}; "
                f"convert the model first with model.to(dtype={host.dtype.name!r})"
            )
        if not np.all(np.isfinite(host)):
            bad_values.append(key)
        ready[key] = np.array(host, dtype=target.dtype_name, copy=True)
    if bad_values:
        warnings.warn(f"{source}: {bad_values} contain NaN or Inf values", ModelFileWarning, stacklevel=3)
    for key, host in ready.items():
        named[key].data = asarray(host, like=target)
        named[key].grad = None
    return IncompatibleKeys(missing, unexpected)


def load_weights(model: Layer, path: str | os.PathLike, strict: bool = True) -> IncompatibleKeys:
    """Fill ``model`` from a file of :func:`save` or ``numpy.savez`` (names must match).

    Every name, shape and dtype is checked before anything changes; a missing,
    extra or mismatched key raises :class:`ModelFileError` (a ``ValueError``)
    naming the key and both shapes or dtypes. ``strict=False`` loads the
    matching subset and returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
    """
    arrays, _meta = read_model_file(path)
    params, _ = _split(arrays)
    return load_arrays_into(model, params, strict=strict, source=str(path))


def load(path: str | os.PathLike, backend: Any = None, device: Any = None, dtype: Any = None) -> Layer:
    """Rebuild a model from a file written by :func:`save`, on any backend.

    Parameters
    ----------
    path : str or path-like
    backend, device : optional
        Where to put the model (default: the current default backend).
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
            f"{path} has no {META_KEY!r} entry, so its architecture is unknown (a plain numpy.savez file?); "
            "build the model in code and call model.load_weights(path)"
        )
    target_dtype = dtype_name(dtype) if dtype is not None else meta["dtype"]
    target = get_backend(backend, device, target_dtype)
    with use_backend(target.name, target.device, target.dtype_name):
        model = _build(meta["architecture"], str(path), arrays)
    params, _ = _split(arrays)
    load_arrays_into(model, params, strict=True, source=str(path), cast=True)
    return model


def load_checkpoint(path: str | os.PathLike, model: Layer, optimizer: Any = None) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) from a file of ``save(model, path, optimizer=..., extra=...)``.

    Returns the ``extra`` dict that was saved (empty if none).
    """
    arrays, meta = read_model_file(path)
    params, optim_arrays = _split(arrays)
    saved: Any = None
    if optimizer is not None:
        saved = (meta or {}).get("optimizer")
        if not isinstance(saved, dict):
            raise ModelFileError(f"{path} holds no optimizer state; it was saved without optimizer=")
        if saved.get("class") != type(optimizer).__name__:
            raise ModelFileError(f"{path} holds {saved.get('class')} state, not {type(optimizer).__name__}")
        state: dict[int, dict[str, Any]] = {}
        try:
            for key, value in optim_arrays.items():
                index, name = key.split("/", 1)
                state.setdefault(int(index), {})[name] = value
            for index, entries in saved.get("scalars", {}).items():
                state.setdefault(int(index), {}).update(entries)
        except (ValueError, AttributeError) as exc:
            raise ModelFileError(f"{path}: malformed optimizer state ({exc})") from exc
    load_arrays_into(model, params, strict=True, source=str(path))
    if optimizer is not None:
        try:
            optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: optimizer state does not fit this optimizer ({exc})") from exc
        rng_states = (meta or {}).get("rng", {})
        for name, layer in _random_layers(model):
            if name in rng_states:
                try:
                    layer._rng.bit_generator.state = rng_states[name]  # type: ignore[attr-defined]
                except (TypeError, ValueError, KeyError) as exc:
                    raise ModelFileError(f"{path}: bad random-generator state for layer {name} ({exc})") from exc
    extra = (meta or {}).get("extra", {})
    return extra if isinstance(extra, dict) else {"extra": extra}
