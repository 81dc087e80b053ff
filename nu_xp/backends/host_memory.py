"""Freed host memory kept for the next step: glibc's malloc thresholds set where its own policy ends up.

A training step on the CPU allocates and frees the same large arrays every
step (LeNet-5 on a batch of 128: im2col buffers of 8-10 MB, activations
of 2.4 MB). glibc serves a request above its *mmap threshold* with a fresh
``mmap``, whose every page faults on first touch (the kernel zeroes it), and
gives it back on ``free``; freed memory at the top of the heap beyond the
*trim threshold* goes back to the system too. glibc raises both thresholds
as it sees large blocks freed (up to 32 MB and 64 MB on 64-bit systems),
but only from the sizes it has seen, so in a LeNet-5 step 1300-2500 page
faults remained per step: 5-10 ms of a 24 ms step on the 2-core benchmark VM
(``benchmarks/conv.py``; PyTorch's step was 13 ms in the same process).

[`keep_freed_memory`][nu_xp.backends.host_memory.keep_freed_memory] sets
the two thresholds to those ceilings at once (``mallopt``), once per
process, when nu_xp first computes with NumPy. The cost: up to 64 MB of freed
memory stays with the process instead of going back to the system, and
blocks below 32 MB come from the heap. Only glibc (Linux) is changed; other
C libraries are left as they are. ``NU_XP_KEEP_FREED_MEMORY=0`` in the
environment turns it off (``benchmarks/RESULTS.md`` has the step times both
ways).
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: glibc's ceilings for its dynamic thresholds on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``, and twice it)
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 64 * 2**20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_done: bool | None = None


def keep_freed_memory(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD, *, force: bool = False
) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (bytes); True where that took effect.

    Does nothing (and returns False) outside glibc, or when the environment
    sets ``NU_XP_KEEP_FREED_MEMORY=0``. Runs once per process unless
    ``force`` (a later call with ``force=True`` sets other values).
    """
    global _done
    if _done is not None and not force:
        return _done
    _done = False
    if os.environ.get("NU_XP_KEEP_FREED_MEMORY", "1").strip() == "0" or not _is_glibc():
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )
    return _done


def _is_glibc() -> bool:
    """Whether this process runs on glibc (``confstr``: no scan of the executable, as ``platform.libc_ver``)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False
