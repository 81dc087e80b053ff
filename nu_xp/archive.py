"""The safe ``.npz`` archive: reading one member at a time with checks, writing atomically.

This module knows zip files and ``.npy`` members, nothing about models (that
is [`nu_xp.model_file`][nu_xp.model_file]). Every problem raises [`ModelFileError`][nu_xp.errors.ModelFileError]
naming the file (an ``OSError`` underneath is kept as ``__cause__``).

Reading ([`read_archive`][]) refuses, before reading any data:

* anything that is not a regular file (a directory, a FIFO, a device or a
  socket, also behind a symlink): it is opened non-blocking and checked with
  ``fstat``, so a FIFO can never make it wait;
* a member that is not ``<name>.npy``, a name that appears twice;
* a **compressed** member (``numpy.savez_compressed`` writes them): inflating
  one could cost far more memory than the file's size, so nu_xp reads only
  stored members, as ``numpy.savez`` and [`nu_xp.save`][nu_xp.model_file.save] write them;
* a ``.npy`` header of another version than 1.0 or 2.0, or longer than
  `MAX_HEADER_BYTES`;
* a dtype other than real floating point, integer, boolean or (for nu_xp's
  own metadata) unicode text: no objects (never unpickled:
  ``allow_pickle=False`` in effect), no zero-size or void or byte-string
  types;
* a member whose data is not exactly ``prod(shape) · itemsize`` bytes.

So reading a file never allocates much more than the file's own size, and
every member's CRC is checked (zipfile does it at the end of each member).

Writing ([`atomic_savez`][]) writes through a symlink to its target, refuses
to replace anything that is not a regular file (a FIFO, a device node, a
socket, a directory), and goes to a temporary file named
``.nu_xp-save-<random>.tmp`` in the target's directory, which is flushed,
fsynced and renamed over the target: a crash never leaves a half-written file
in place of a good one. The temporary file is created with mode ``0o666``
less the process umask (never changing the umask), a re-save keeps the mode
of the file it replaces, and a process killed with SIGKILL mid-save leaves
only such a ``.nu_xp-save-*.tmp`` file behind, safe to delete.
"""

from __future__ import annotations

import math
import os
import secrets
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import ModelFileError, ModelFileNotFoundError, ModelFileWarning

__all__ = [
    "MAX_HEADER_BYTES",
    "RESERVED_PREFIX",
    "TEMP_PREFIX",
    "ModelFileError",
    "ModelFileNotFoundError",
    "ModelFileWarning",
    "atomic_savez",
    "atomic_write",
    "read_archive",
    "read_weights",
    "weight_arrays",
]

#: members whose names start with this are nu_xp's own (metadata, optimizer state), never weights
RESERVED_PREFIX = "__"
#: temporary files of an interrupted save are called ``.nu_xp-save-<random>.tmp``
TEMP_PREFIX = ".nu_xp-save-"
#: the longest ``.npy`` header accepted (numpy's own reader allows 10 000)
MAX_HEADER_BYTES = 10_000
_KINDS = {"f": "floating point", "i": "integer", "u": "unsigned integer", "b": "boolean", "U": "text"}


def open_regular_file(path: Path) -> IO[bytes]:
    """``open(path, "rb")``, refusing (without blocking) anything that is not a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        other = path.name[:-4] if path.name.endswith(".npz") else path.name + ".npz"
        raise ModelFileNotFoundError(f"{path}: no such model file (nor {other})") from exc
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path} is a directory, not a model file") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot open the file: {exc.strerror or exc}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ModelFileError(f"{path} is a directory, not a model file")
        if not stat.S_ISREG(mode):
            raise ModelFileError(
                f"{path} is not a regular file (a FIFO, a device or a socket); nu_xp reads model files only"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def existing_spelling(path: Path) -> Path:
    """``path``, or the other spelling of it when only that one exists: with or without ``.npz``.

    ``nu_xp.save(model, "model")`` writes exactly ``model`` (as ``torch.save``);
    ``numpy.savez("model")`` writes ``model.npz``. Either way, ``load("model")``
    and ``load("model.npz")`` find the file, as users of both expect.
    """
    if os.path.lexists(path):
        return path
    other = (
        path.with_name(path.name[: -len(".npz")]) if path.name.endswith(".npz") else path.with_name(path.name + ".npz")
    )
    return other if other.name and os.path.lexists(other) else path


def read_archive(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{key: array}`` for every ``.npy`` member of the archive at ``path``, read safely.

    Raises [`ModelFileError`][nu_xp.errors.ModelFileError] for a missing file, a directory or other
    non-regular file, a file that is not a zip of ``.npy`` arrays, a compressed
    member, a damaged member (CRC, sizes, header), a refused dtype (objects are
    never unpickled), a duplicate key, or an empty archive.
    """
    path = existing_spelling(Path(os.fspath(path)))
    with open_regular_file(path) as f:
        try:
            head = f.read(4)
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot read the file: {exc.strerror or exc}") from exc
        if head not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ModelFileError(
                f"{path} is not a model file: an .npz (zip) archive starts with 'PK', this starts with {head!r}"
            )
        f.seek(0)
        arrays: dict[str, np.ndarray] = {}
        try:
            with zipfile.ZipFile(f) as archive:
                infos = archive.infolist()
                _check_sizes(infos, f, path)
                for info in infos:
                    key = _member_key(info, path)
                    if key in arrays:
                        raise ModelFileError(f"{path}: the key {key!r} appears twice")
                    with archive.open(info) as member:
                        arrays[key] = _read_npy(member, info.file_size, path, key)
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(f"{path}: the file is damaged or truncated ({type(exc).__name__}: {exc})") from exc
    if not arrays:
        raise ModelFileError(f"{path}: the archive holds no arrays")
    return arrays


def _check_sizes(infos: list[zipfile.ZipInfo], f: IO[bytes], path: Path) -> None:
    """The members' data must fit in the file once: no member may be read twice (overlapping entries)."""
    length = os.fstat(f.fileno()).st_size
    if sum(info.compress_size for info in infos) > length:
        raise ModelFileError(f"{path}: the archive's members claim more bytes than the file holds (damaged or hostile)")
    spans = sorted((info.header_offset, info.header_offset + info.compress_size) for info in infos)
    if any(end > start for (_, end), (start, _) in zip(spans, spans[1:])):
        raise ModelFileError(f"{path}: the archive's members overlap (damaged or hostile file)")


def _member_key(info: zipfile.ZipInfo, path: Path) -> str:
    """The array name of a member, after checking that it is a stored ``.npy`` member."""
    if not info.filename.endswith(".npy"):
        raise ModelFileError(
            f"{path}: member {info.filename!r} is not a .npy array; this is a plain zip archive, "
            "not a file from nu_xp.save or numpy.savez"
        )
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(
            f"{path}: member {info.filename!r} is compressed (as numpy.savez_compressed writes); nu_xp reads "
            "uncompressed archives only, whose size bounds the memory they need: save with nu_xp.save or numpy.savez"
        )
    if info.file_size != info.compress_size:
        raise ModelFileError(f"{path}: member {info.filename!r} has inconsistent sizes (damaged file)")
    return info.filename[: -len(".npy")]


def weight_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The members that hold weights: every one whose name does not start with `RESERVED_PREFIX`."""
    return {k: v for k, v in arrays.items() if not k.startswith(RESERVED_PREFIX)}


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The weight arrays of a file of ``nu_xp.save`` or ``numpy.savez``, checked as [`read_archive`][] does.

    What [`Layer.load_weights`][nu_xp.layers.base.Layer.load_weights] reads with (layers never open files
    themselves: this module does, and it knows nothing about layers).
    """
    return weight_arrays(read_archive(path))


def _read_npy(member: IO[bytes], size: int, path: Path, key: str) -> np.ndarray:
    """One ``.npy`` member: header checked against its size before its data is read."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(member, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(member, max_header_size=MAX_HEADER_BYTES)
        else:
            raise ModelFileError(f"{path}: array {key!r} has .npy format version {version}; nu_xp reads 1.0 and 2.0")
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"{path}: array {key!r} has a damaged header ({type(exc).__name__}: {exc})") from exc
    if dtype.hasobject:
        raise ModelFileError(
            f"{path}: array {key!r} holds Python objects (pickled data); nu_xp refuses such files and never "
            "unpickles them"
        )
    if dtype.kind not in _KINDS or dtype.itemsize == 0 or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(
            f"{path}: array {key!r} has dtype {dtype.str!r}; a model file holds only real floating point, "
            "integer or boolean arrays (and nu_xp's JSON text)"
        )
    count = math.prod(int(n) for n in shape)
    declared = count * dtype.itemsize
    header = member.tell()
    if size - header != declared:
        raise ModelFileError(
            f"{path}: array {key!r} declares shape {tuple(shape)} of {dtype.str} ({declared} bytes) "
            f"but holds {size - header} bytes (damaged or hostile file)"
        )
    data = member.read(declared)
    if len(data) != declared or member.read(1):  # reading to the end also checks the member's CRC
        raise ModelFileError(f"{path}: array {key!r} is truncated or has trailing bytes (damaged file)")
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def atomic_savez(path: Path, arrays: dict[str, Any]) -> None:
    """``numpy.savez`` into ``.nu_xp-save-<random>.tmp`` beside ``path``, fsync, then rename over ``path``."""
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(f)`` into ``.nu_xp-save-<random>.tmp`` beside ``path``, fsync, then rename over ``path``.

    ``OSError`` (no permission, a full disk, a name too long…) becomes
    [`ModelFileError`][nu_xp.errors.ModelFileError] naming ``path``, with the original as ``__cause__``;
    the temporary file never outlives a failure.
    """
    try:
        path = _save_target(path)
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise ModelFileError(f"{path}: directory {directory} does not exist")
        keep_mode = stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else None
        fd, tmp = _create_temporary(directory)
    except OSError as exc:
        raise ModelFileError(f"cannot save {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if keep_mode is not None:
            os.chmod(tmp, keep_mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ModelFileError(f"cannot save {path}: {exc.strerror or exc}") from exc
        raise
    _fsync_directory(directory)


def _save_target(path: Path) -> Path:
    """The file a save replaces: ``path`` itself, or the file a symlink points to (written through, as
    ``open(path, "w")`` would); anything that exists and is not a regular file is refused.

    A rename over a symlink would replace the link and leave its target old; over a FIFO, a device
    node (``/dev/null`` as root) or a socket it would replace that special file.
    """
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target  # a new file (or a dangling symlink's target, created)
    if stat.S_ISDIR(mode):
        raise ModelFileError(f"{path} is a directory; give a file name such as {path / 'model.npz'}")
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise ModelFileError(f"cannot save {path}: it is {kind}; nu_xp only replaces regular files")
    return target


def _create_temporary(directory: Path) -> tuple[int, Path]:
    """A new file ``.nu_xp-save-<random>.tmp``, mode 0o666 less the umask (as ``open`` gives it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file in {directory}")


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (where the platform lets a directory be fsynced)."""
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
