"""Datasets: PyTorch's map-style protocol, ``ArrayDataset``, and reading one batch of any of them.

A dataset has ``__len__`` and ``__getitem__``. ``dataset[i]`` is one sample, a
tuple of arrays (``(x_i, y_i)``); a dataset may also take an integer index
array and return the whole batch at once, ``dataset[indices] -> (x_b, y_b)``
(the fast path: one fancy index per array instead of one call per sample).
A [`BatchReader`][] reads a batch either way. ``ArrayDataset(x, y)`` holds arrays in
memory, or ``numpy.load(path, mmap_mode="r")`` arrays that stay on disk: a
batch reads only its rows, from the file (positioned reads, nothing mapped),
so streaming a file larger than memory keeps the process's memory at a few
batches.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np

__all__ = ["ArrayDataset", "BatchReader", "read_rows"]


def read_rows(array: Any, indices: np.ndarray) -> np.ndarray:
    """``array[indices]`` as an in-memory numpy array; rows of a memory-mapped file are read from the file.

    For a C-contiguous ``numpy.memmap`` (what ``numpy.load(path, mmap_mode="r")``
    gives) the rows are read with positioned reads (``os.preadv``, one per run of
    consecutive rows, in file order) straight into the batch: nothing of the
    file is mapped into the process, so streaming a file larger than memory
    keeps the process at the size of a few batches (reading through the mapping
    would map whole neighbourhoods of pages, which count as the process's memory).
    Anything else is indexed as usual.
    """
    indices = np.asarray(indices)
    place = _file_position(array)
    if place is None:
        return np.asarray(array[indices])
    path, start, row_bytes = place
    n = array.shape[0]
    indices = np.where(indices < 0, indices + n, indices)  # negative indices count from the end, as numpy's
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise IndexError(f"index {int(indices.max() if indices.max() >= n else indices.min())} is out of bounds "
                         f"for {n} rows")  # fmt: skip
    order = np.argsort(indices, kind="stable")
    wanted = indices[order]
    rows = np.empty((len(indices), *array.shape[1:]), dtype=array.dtype)
    flat = rows.reshape(len(indices), -1).view(np.uint8).reshape(len(indices), row_bytes)
    fd = os.open(path, os.O_RDONLY)
    try:
        first = 0
        while first < len(wanted):  # one read per run of consecutive rows, scattered to where each row goes
            last = first
            while last + 1 < len(wanted) and wanted[last + 1] == wanted[last] + 1 and last + 1 - first < _IOV_MAX:
                last += 1
            targets = [memoryview(flat[k]) for k in order[first : last + 1]]
            got = os.preadv(fd, targets, start + int(wanted[first]) * row_bytes)
            if got != row_bytes * len(targets):
                raise OSError(f"{path}: the file ended before row {int(wanted[last])} (shorter than its header says)")
            first = last + 1
    finally:
        os.close(fd)
    return rows


#: the most buffers one ``preadv`` takes (POSIX's IOV_MAX is at least 1024 on Linux)
_IOV_MAX = 1024


def _file_position(array: Any) -> tuple[str, int, int] | None:
    """``(file, byte position of row 0, bytes per row)`` of a C-contiguous memmap over a file, else None."""
    mapped = getattr(array, "_mmap", None)
    path = getattr(array, "filename", None)
    if mapped is None or path is None or not hasattr(os, "preadv") or array.ndim == 0:
        return None
    if not array.flags.c_contiguous:
        return None
    base = np.frombuffer(mapped, dtype=np.uint8)  # where the mapping starts, in memory and in the file
    mapping_start = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY
    position = mapping_start + (array.ctypes.data - base.ctypes.data)
    row_bytes = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    return str(path), int(position), row_bytes


class ArrayDataset:
    """Samples as the rows of arrays (PyTorch's ``TensorDataset``): ``dataset[i] = (x[i], y[i], …)``.

    ``dataset[indices]`` (an integer array) gives a whole batch in one read per
    array. Arrays may be numpy arrays, memory-mapped files
    (``numpy.load(path, mmap_mode="r")``: only the rows of a batch are read),
    or anything with ``shape`` and numpy-style indexing.

    Parameters
    ----------
    *arrays : arrays
        The same number of rows each (at least one array).

    Examples
    --------
    >>> import numpy as np, nu_xp
    >>> ds = nu_xp.data.ArrayDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
    >>> len(ds), ds[1], ds[np.array([4, 0])][1]
    (5, (array([2., 3.]), np.int64(1)), array([4, 0]))
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise TypeError("ArrayDataset needs at least one array (the inputs, usually with the targets)")
        sizes = []
        for i, a in enumerate(arrays):
            if not hasattr(a, "shape") or len(a.shape) == 0:
                raise TypeError(f"ArrayDataset: array {i} must be an array with a sample axis, got {type(a).__name__}")
            sizes.append(int(a.shape[0]))
        if len(set(sizes)) > 1:
            raise ValueError(f"ArrayDataset: the arrays have {sizes} rows; they must all have the same number")
        self.arrays = arrays

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: Any) -> tuple[Any, ...]:
        if isinstance(index, np.ndarray) and index.ndim == 1:
            return tuple(read_rows(a, index) for a in self.arrays)
        return tuple(a[index] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays)
        return f"ArrayDataset({shapes})"


class BatchReader:
    """Reads batches of a map-style dataset: by an index array where the dataset takes one, else sample by sample.

    The first batch tries ``dataset[indices]``: a tuple whose every part has
    one row per index is the fast path, kept from then on; an error or
    anything else means samples one at a time, stacked field by field. Every
    sample must be a tuple of the same length, with one shape per field
    (else ``ValueError`` naming the sample).

    Parameters
    ----------
    dataset : map-style dataset
        ``__len__`` and ``__getitem__``.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.by_array: bool | None = True if isinstance(dataset, ArrayDataset) else None

    def __call__(self, indices: np.ndarray) -> tuple[Any, ...]:
        """The batch of ``indices`` as a tuple of arrays (numpy arrays on the per-sample path)."""
        if self.by_array is None:
            try:
                batch = self.dataset[indices]
            except (TypeError, IndexError, ValueError, KeyError):
                batch = None
            ok = isinstance(batch, tuple) and all(getattr(p, "shape", (None,))[:1] == (len(indices),) for p in batch)
            self.by_array = ok
            if ok:
                return batch  # type: ignore[return-value]
        if self.by_array:
            return tuple(self.dataset[indices])
        return self._stack(indices)

    def _stack(self, indices: np.ndarray) -> tuple[Any, ...]:
        samples = [self.dataset[int(i)] for i in indices]
        samples = [s if isinstance(s, tuple) else (s,) for s in samples]
        width = len(samples[0])
        fields = []
        for k in range(width):
            column = []
            for i, sample in zip(indices, samples):
                if len(sample) != width:
                    raise ValueError(
                        f"dataset[{int(i)}] has {len(sample)} parts, but dataset[{int(indices[0])}] has {width}; "
                        "every sample must be a tuple of the same length, such as (x, y)"
                    )
                column.append(np.asarray(sample[k]))
                if column[-1].shape != column[0].shape:
                    raise ValueError(
                        f"dataset[{int(i)}] part {k} has shape {column[-1].shape}, but dataset[{int(indices[0])}] "
                        f"part {k} has {column[0].shape}: the samples of a batch must have one shape per part"
                    )
            fields.append(np.stack(column))
        return tuple(fields)
