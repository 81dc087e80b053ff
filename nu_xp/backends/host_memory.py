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

A block above 32 MB is mapped afresh whatever the threshold (glibc caps it
there). XLA allocates all of a compiled program's temporaries as one such
block per run: 55 MB for a 2-block GPT's training step (width 128, 2048
tokens), 15 000 page faults and 22-28 ms of kernel time in a 55 ms step on
the 2-core benchmark VM. [`keep_large_blocks`][nu_xp.backends.host_memory.keep_large_blocks]
(``JaxOps.compile`` calls it for a step compiled on the CPU) serves blocks of
every size from the heap and keeps up to 1 GiB freed at its top, so the next
step reuses those pages: no faults, 2-5 % of the step in the kernel. The cost:
a process keeps memory it has used (up to 1 GiB beyond what it holds), and a
large block freed in the middle of the heap is reused there, never given
back. The same variable turns it off.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

__all__ = ["LARGE_TRIM_THRESHOLD", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory", "keep_large_blocks"]

#: glibc's ceilings for its dynamic thresholds on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``, and twice it)
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 64 * 2**20

#: freed bytes the heap keeps at its top once every block comes from it ([`keep_large_blocks`][])
LARGE_TRIM_THRESHOLD = 2**30

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # mallopt's parameter numbers (malloc.h)
_done: bool | None = None
_large_done: bool | None = None
_large_trim = 0  # the trim threshold keep_large_blocks set (keep_freed_memory never lowers it)


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
    mallopt = _mallopt()
    trim = max(int(trim_threshold), _large_trim)  # never below what keep_large_blocks set
    _done = mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))
    _done = _done and bool(mallopt(_M_TRIM_THRESHOLD, trim))
    return _done


def keep_large_blocks(trim_threshold: int = LARGE_TRIM_THRESHOLD, *, force: bool = False) -> bool:
    """Serve blocks of every size from glibc's heap (``M_MMAP_MAX = 0``) and keep up to ``trim_threshold``
    freed bytes at its top (``M_TRIM_THRESHOLD``); True where that took effect.

    For programs that allocate one block above 32 MB per run (XLA's temporaries; see the module
    docstring). Does nothing (False) outside glibc or with ``NU_XP_KEEP_FREED_MEMORY=0``; once per
    process unless ``force``.
    """
    global _large_done, _large_trim
    if _large_done is not None and not force:
        return _large_done
    mallopt = _mallopt()
    _large_done = mallopt is not None and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    _large_done = _large_done and bool(mallopt(_M_MMAP_MAX, 0))
    _large_trim = int(trim_threshold) if _large_done else 0
    return _large_done


def _mallopt() -> Any:
    """glibc's ``mallopt`` as a ctypes function, or None (another C library, or turned off by the environment)."""
    if os.environ.get("NU_XP_KEEP_FREED_MEMORY", "1").strip() == "0" or not _is_glibc():
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _is_glibc() -> bool:
    """Whether this process runs on glibc (``confstr``: no scan of the executable, as ``platform.libc_ver``)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False
