"""How many BLAS threads the CPU's matrix products use: by a rule, never by a timing.

OpenBLAS (and MKL, and OpenMP) start one thread per core and spin while they
wait for work. On small matrix products a second thread buys little even on
a quiet machine, and when another process holds a core the spinning threads
wait for each other: a digits CNN that trains in 0.9 s took 3.2 s with one
busy process beside it at the default two threads, and 1.0 s at one thread
(``benchmarks/RESULTS.md``). And the thread count changes the order in which
a product sums, so the last bits of a result: a seeded run reproduces bit for
bit only at one thread count.

So ``fit(..., threads="auto")`` (the default) decides from the work, never
from the clock: [`auto_threads`][] gives one thread when a step's products
are small (``batch_size × parameters`` below `AUTO_LIMIT` multiply-adds in
the forward), and the libraries' own count otherwise. The same model and
batch size always get the same count, whatever the load, so two seeded runs
give bit-identical weights. ``threads=n`` fixes ``n`` threads, ``threads=None``
leaves the libraries alone; everything is restored when ``fit`` returns
([`blas_threads`][], a context around the loop). For a hand-written loop,
[`set_num_threads`][] and [`get_num_threads`][] (PyTorch's names) set and
read the count for the whole process. The choice acts on the CPU only, through
``threadpoolctl``, which finds the BLAS and OpenMP libraries loaded in the
process (numpy's OpenBLAS, PyTorch's OpenMP…).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from typing import Any

from ..backends import OPS_CLASSES

__all__ = ["AUTO_LIMIT", "auto_threads", "blas_threads", "check_threads", "get_num_threads", "set_num_threads"]

#: multiply-adds in one step's forward (``batch_size × parameters``) below which ``threads="auto"`` takes one thread
AUTO_LIMIT = 2**22
#: the most threads a BLAS library can be given (its thread count is a C ``int``)
MAX_THREADS = 2**31 - 1
_PROCESS_LIMIT: list[Any] = []  # the threadpoolctl limit that set_num_threads holds for the process


def check_threads(value: Any) -> str | int | None:
    """``"auto"``, ``None`` or a positive int (numpy ints too); ``TypeError``/``ValueError`` naming ``threads``."""
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, bool) or isinstance(value, str):
        raise TypeError(f"threads must be 'auto', None or a positive int, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"threads must be 'auto', None or a positive int, got {value!r}") from None
    if not 1 <= count <= MAX_THREADS:
        raise ValueError(
            f"threads must be a positive int of at most {MAX_THREADS} (what a BLAS library takes), got {value!r}"
        )
    return count


def auto_threads(parameters: int, batch_size: int) -> int | None:
    """``threads="auto"``: 1 when ``batch_size × parameters < AUTO_LIMIT`` (small products), else None (the
    libraries' own count). A function of the model and the batch only: the same run always gets the same count.
    After [`set_num_threads`][] the count set there stays (None)."""
    if _PROCESS_LIMIT:
        return None
    return 1 if parameters * batch_size < AUTO_LIMIT else None


def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def blas_threads(threads: int | None) -> Iterator[None]:
    """Inside, every BLAS/OpenMP library of the process uses ``threads`` threads (None: leaves them alone)."""
    if threads is None:
        yield
        return
    limit = _controller().limit(limits=threads)
    try:
        yield
    finally:
        limit.restore_original_limits()


def set_num_threads(threads: int) -> None:
    """Use ``threads`` BLAS/OpenMP threads in this process from now on (``torch.set_num_threads``'s name).

    For hand-written training loops: small products run faster at one thread,
    and a count fixed by you makes seeded runs reproduce. Sets numpy's BLAS
    (and every library ``threadpoolctl`` finds) and, when torch is imported,
    ``torch.set_num_threads``. ``fit`` chooses its own count while it runs
    (its ``threads=``) and restores this one afterwards.

    Examples
    --------
    >>> import nu_xp
    >>> nu_xp.set_num_threads(1)
    >>> nu_xp.get_num_threads()
    1
    """
    count = check_threads(threads)
    if not isinstance(count, int):
        raise TypeError(f"set_num_threads takes a positive int, got {threads!r}")
    if _PROCESS_LIMIT:
        _PROCESS_LIMIT.pop().restore_original_limits()
    _PROCESS_LIMIT.append(_controller().limit(limits=count))
    for cls in OPS_CLASSES.values():  # a library's own thread count besides BLAS's (torch's intra-op threads)
        cls.set_num_threads(count)


def get_num_threads() -> int:
    """The threads the BLAS libraries of this process use now (the largest count among them)."""
    infos = _controller().info()
    return max((int(info.get("num_threads", 1)) for info in infos), default=1)
