"""This process's place among the ranks of a data-parallel run, as plain numbers: no MPI is imported here.

[`nu_xp.distributed.init`][nu_xp.distributed.init] records the rank and the number of ranks when MPI
starts; what writes files ([`nu_xp.save`][nu_xp.model_file.save]) asks [`writes_files`][] so that only rank 0
writes, without knowing anything of MPI. A plain ``python script.py`` is rank 0 of 1.
"""

from __future__ import annotations

__all__ = ["joined", "rank", "writes_files"]

_RANK = [0, 1]  # [this process's rank, the number of ranks]


def joined(rank: int, size: int) -> None:
    """Record that this process is rank ``rank`` of ``size`` (called by ``nu_xp.distributed.init``)."""
    _RANK[:] = [int(rank), int(size)]


def rank() -> int:
    """This process's rank as recorded (0 until MPI started with several ranks)."""
    return _RANK[0]


def writes_files() -> bool:
    """True on the rank that writes files: rank 0 (every process of a world of one)."""
    return _RANK[0] == 0
