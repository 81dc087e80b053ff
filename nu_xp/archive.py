"""The safe ``.npz`` archive: reading one member at a time with checks, writing atomically.

This module knows zip files and ``.npy`` members, nothing about models (that
is :mod:`nu_xp.model_file`). Reading never unpickles (``allow_pickle=False``),
refuses object arrays, checks every member's CRC (zipfile does) and refuses
a member whose data does not match its header. Every problem raises
:class:`ModelFileError` naming the file.

Writing goes to a temporary file in the target's directory, which is flushed,
fsynced and renamed over the target, so a crash never leaves a half-written
file in place of a good one.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "RESERVED_PREFIX",
    "ModelFileError",
    "ModelFileNotFoundError",
    "ModelFileWarning",
    "atomic_savez",
    "read_archive",
    "weight_arrays",
]

#: members whose names start with this are nu_xp's own (metadata, optimizer state), never weights
RESERVED_PREFIX = "__"


class ModelFileError(ValueError):
    """A model file (or state dict) that cannot be used: missing, damaged, hostile or mismatched."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """The model file does not exist (also a ``FileNotFoundError``)."""


class ModelFileWarning(UserWarning):
    """A model file that loads but looks wrong (NaN or Inf weights)."""


def read_archive(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{key: array}`` for every ``.npy`` member of the archive at ``path``, read safely.

    Raises :class:`ModelFileError` for a missing file, a directory, a file that
    is not a zip of ``.npy`` arrays, a damaged member (CRC), an object or
    pickled array (never unpickled), a duplicate key, or an empty archive.
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
    return arrays


def weight_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The members that hold weights: every one whose name does not start with :data:`RESERVED_PREFIX`."""
    return {k: v for k, v in arrays.items() if not k.startswith(RESERVED_PREFIX)}


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


def atomic_savez(path: Path, arrays: dict[str, Any]) -> None:
    """``numpy.savez`` into a temporary file beside ``path``, fsync, then rename over ``path``."""
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
