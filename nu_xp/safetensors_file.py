"""The safetensors format: read with nu_xp's own checks, written by the ``safetensors`` package.

A ``.safetensors`` file is 8 bytes (the header's length ``n``, little-endian),
``n`` bytes of JSON, then the tensors' bytes::

    {"__metadata__": {"key": "text", ...},
     "name": {"dtype": "F32", "shape": [3, 2], "data_offsets": [begin, end]}, ...}

with ``end - begin = prod(shape) · itemsize`` and offsets counted from the end
of the header. nu_xp keeps its own ``__nu_xp__`` JSON (architecture, ties…,
as in an ``.npz``) as one entry of ``__metadata__``, so
[`nu_xp.load`][nu_xp.model_file.load] rebuilds the model and any safetensors
reader (PyTorch, JAX, Hugging Face) still sees plain named tensors.

Reading ([`read_safetensors`][]) never trusts the header: before any tensor
is read it refuses (``ModelFileError`` naming the file) a file that is not a
regular file, a header longer than the file or than `MAX_HEADER_BYTES`,
text that is not a JSON object of the form above, an unknown dtype, a shape
that is not a list of non-negative integers, offsets outside the data or
overlapping another tensor's, and a byte count that disagrees with the shape.
So a hostile header costs at most its own length, and the tensors at most the
file's size. ``BF16`` tensors are read as float32 (exactly: bfloat16 is the
top half of a float32).

Writing ([`write_safetensors`][]) needs ``pip install "nu_xp[safetensors]"``
and goes through [`atomic_write`][nu_xp.archive.atomic_write]: temporary file,
fsync, rename.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from .archive import atomic_write, open_regular_file
from .errors import ModelFileError

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "looks_like_safetensors", "read_safetensors", "write_safetensors"]

#: the safetensors dtype names nu_xp reads, and their numpy types (little-endian); BF16 is widened to float32
DTYPES: dict[str, str] = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}  # fmt: skip
#: the longest header accepted (the safetensors package's own limit)
MAX_HEADER_BYTES = 100_000_000
_EXTRA = "pip install 'nu_xp[safetensors]'"


def looks_like_safetensors(head: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes starting with ``head`` (≥ 9 bytes) can be safetensors: a plausible
    header length followed by ``{``."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, every declaration checked before any data is read."""
    path = Path(os.fspath(path))
    with open_regular_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        header, start = _read_header(f, size, path)
        entries = _check_entries(header, size - start, path)
        tensors = {}
        for name, (dtype, shape, begin, end) in entries.items():
            f.seek(start + begin)
            data = f.read(end - begin)
            if len(data) != end - begin:
                raise ModelFileError(f"{path}: tensor {name!r} is cut short (truncated file)")
            array = np.frombuffer(data, dtype=DTYPES[dtype]).reshape(shape)
            if dtype == "BF16":  # the top 16 bits of a float32
                array = (array.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=True)
    metadata = header.get("__metadata__") or {}
    return tensors, metadata


def _read_header(f: IO[bytes], size: int, path: Path) -> tuple[dict[str, Any], int]:
    head = f.read(8)
    if len(head) < 8:
        raise ModelFileError(f"{path} is not a safetensors file: {size} bytes, shorter than its 8-byte length field")
    n = int.from_bytes(head, "little")
    if n > min(MAX_HEADER_BYTES, size - 8):
        raise ModelFileError(
            f"{path}: the safetensors header claims {n} bytes, but the file holds {size - 8} after the length "
            f"field (at most {MAX_HEADER_BYTES} are read): damaged, truncated or not a safetensors file"
        )
    text = f.read(n)
    try:
        header = json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: the safetensors header is not JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: the safetensors header must be a JSON object, got {type(header).__name__}")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path}: the safetensors '__metadata__' must map names to text")
    return header, 8 + n


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_entries(header: dict[str, Any], data_bytes: int, path: Path) -> dict[str, tuple[str, tuple, int, int]]:
    """``{name: (dtype, shape, begin, end)}`` after checking every declaration against the data's size."""
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{path}: tensor {name!r} must declare exactly dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise ModelFileError(f"{path}: tensor {name!r} has dtype {dtype!r}; nu_xp reads {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ModelFileError(f"{path}: tensor {name!r} has shape {shape!r}; a shape is a list of sizes >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise ModelFileError(f"{path}: tensor {name!r} has data_offsets {offsets!r}; expected [begin, end]")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes:
            raise ModelFileError(
                f"{path}: tensor {name!r} claims bytes {begin} to {end}, outside the file's {data_bytes} data bytes"
            )
        need = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if end - begin != need:
            raise ModelFileError(
                f"{path}: tensor {name!r} of shape {tuple(shape)} and dtype {dtype} needs {need} bytes, "
                f"its offsets give {end - begin}"
            )
        entries[name] = (dtype, tuple(shape), begin, end)
    spans = sorted((b, e, n) for n, (_, _, b, e) in entries.items() if e > b)
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise ModelFileError(f"{path}: tensors {first!r} and {second!r} overlap (damaged or hostile file)")
    return entries


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def write_safetensors(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write ``arrays`` and ``metadata`` as safetensors (the ``safetensors`` package), atomically."""
    try:
        from safetensors.numpy import save
    except ImportError:
        raise ImportError(f"saving .safetensors files needs the safetensors package: {_EXTRA}") from None
    data = save({k: np.array(v, order="C", copy=None) for k, v in arrays.items()}, metadata=metadata)  # 0-d stays 0-d
    atomic_write(path, lambda f: f.write(data))
