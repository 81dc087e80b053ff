"""Data-parallel training over MPI: the same script on one process, a workstation's cores, or a cluster.

``pip install "nu_xp[mpi]"`` brings ``mpi4py`` and the MPICH runtime; then
``mpiexec -n 4 python script.py`` runs ``script.py`` as 4 processes (ranks).
Without ``mpiexec``, or without ``mpi4py``, a script is a world of one and
every function here does the single-process thing.

* [`init`][] (idempotent) starts MPI and installs an exception hook: an
  uncaught exception on any rank prints its traceback, then ends every rank
  with ``MPI.COMM_WORLD.Abort`` — never a hang in a collective;
* [`rank`][], [`world_size`][] (Python ints), [`barrier`][];
* [`broadcast_parameters`][] copies rank ``root``'s parameters and buffers to every rank;
* [`allreduce_gradients`][] replaces every ``Parameter.grad`` by its mean
  over the ranks (or a weighted sum: ``Σ_r w_r g_r``) in ONE allreduce of one
  contiguous buffer, reused from step to step;
* [`DistributedOptimizer`][] averages the gradients, then steps.

``fit(..., distributed=True)`` builds on these (see [`nu_xp.training.data_parallel`][nu_xp.training.data_parallel]).

Where the buffer lives: for arrays in host memory (NumPy, PyTorch on the CPU,
array-api-strict) a float buffer in host memory, filled with one copy per
step. For GPU arrays (CuPy, PyTorch CUDA) the gradients are concatenated on
the device and then either handed to MPI directly, when
``MPI.Query_cuda_support()`` says the MPI library is CUDA-aware, or staged
through the host with one device-to-host and one host-to-device copy per step
(the MPICH wheel from PyPI is not CUDA-aware: that is the path it takes).
[`cuda_aware`][] tells which.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import world
from .backends import dtype_name, ops_of, to_host
from .layers import Layer, Parameter
from .optim.optimizer import OptimizerWrapper, unwrap

__all__ = [
    "DistributedOptimizer",
    "SameOnEveryRankError",
    "allgather",
    "allreduce_gradients",
    "barrier",
    "broadcast_parameters",
    "check_same_everywhere",
    "cuda_aware",
    "init",
    "initialized",
    "is_active",
    "rank",
    "report_failure_and_abort",
    "world_size",
]

_comm: Any = None
_started = False
_buffers: dict[tuple[str, int], np.ndarray] = {}


def init() -> None:
    """Start MPI (once; later calls do nothing). Without mpi4py, or under plain ``python``, a world of one."""
    global _comm, _started
    if _started:
        return
    _started = True
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError):  # not installed, or no MPI library found: one process
        return
    _comm = MPI.COMM_WORLD
    world.joined(_comm.Get_rank(), _comm.Get_size())
    if _comm.Get_size() > 1:
        _install_abort_hook()


def _install_abort_hook() -> None:
    """An uncaught exception on one rank ends every rank (after its message is printed), never a hang."""
    previous = sys.excepthook

    def abort_all(kind: Any, value: Any, tb: Any) -> None:
        previous(kind, value, tb)
        abort(f"an uncaught {kind.__name__} on rank {rank()}")

    sys.excepthook = abort_all


_OUTPUT_DRAIN_S = 0.5


def abort(why: str, code: int = 1) -> None:
    """Print ``why`` on stderr, flush, and end every rank (``MPI_Abort``); in a world of one, exit.

    Between the last write and ``MPI_Abort`` the rank pauses ``0.5`` s: the
    process manager (MPICH's Hydra) forwards a rank's output asynchronously
    and stops forwarding when it kills the ranks, so without the pause the
    message that says why can be lost (seen about once in ten runs on a loaded
    2-core machine).
    """
    sys.stdout.flush()
    _write_stderr(f"nu_xp.distributed: {why}; ending all {world_size()} ranks\n")
    if _comm is not None and _comm.Get_size() > 1:
        time.sleep(_OUTPUT_DRAIN_S)
        _comm.Abort(code)
    raise SystemExit(code)


def initialized() -> bool:
    """Whether [`init`][] has run (nothing here starts MPI by itself except through ``init``)."""
    return _started


def rank() -> int:
    """This process's rank, ``0 … world_size() - 1`` (0 in a world of one)."""
    init()
    return 0 if _comm is None else int(_comm.Get_rank())


def world_size() -> int:
    """The number of processes (1 without ``mpiexec``)."""
    init()
    return 1 if _comm is None else int(_comm.Get_size())


def is_active() -> bool:
    """True when this process is one of several MPI ranks."""
    return world_size() > 1


def barrier() -> None:
    """Wait until every rank has called ``barrier()``."""
    if is_active():
        _comm.Barrier()


def allgather(value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
    return list(_comm.allgather(value)) if is_active() else [value]


def cuda_aware() -> bool:
    """Whether the MPI library takes GPU buffers directly (``MPI.Query_cuda_support()``; False if it cannot tell)."""
    if not is_active():
        return False
    from mpi4py import MPI

    query = getattr(MPI, "Query_cuda_support", None)
    try:
        return bool(query()) if query is not None else False
    except Exception:
        return False


def _params(model_or_params: Layer | Iterable[Parameter]) -> list[Parameter]:
    return model_or_params.parameters() if isinstance(model_or_params, Layer) else list(model_or_params)


def broadcast_parameters(model: Layer, root: int = 0) -> None:
    """Copy rank ``root``'s parameters and buffers into the model on every rank (gradients are reset).

    The arguments are checked the same way in a world of one as under
    ``mpiexec``, so a script that is wrong fails alone too.
    """
    if not isinstance(model, Layer) or model.is_loss:
        raise TypeError(f"broadcast_parameters takes a nu_xp model (a Layer), got {type(model).__name__}")
    size = world_size()
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size:
        raise ValueError(f"broadcast_parameters: root must be a rank in [0, {size}), got {root!r}")
    if not is_active():
        return
    state = model.state_dict()
    for key in sorted(state):
        _comm.Bcast(state[key], root=root)
    model.load_state_dict(state)


def _host_buffer(dtype: np.dtype, size: int) -> np.ndarray:
    """The communication buffer of ``dtype``, grown when needed and reused from step to step."""
    key = (dtype.str, 0)  # one per dtype
    buf = _buffers.get(key)
    if buf is None or buf.size < size:
        buf = _buffers[key] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size]


def allreduce_gradients(
    model: Layer | Iterable[Parameter], weight: float | None = None, extra: Iterable[float] = ()
) -> np.ndarray:
    """Every ``Parameter.grad`` becomes the mean over ranks (``weight=None``) or ``Σ_r weight_r · grad_r``.

    All gradients travel in ONE ``Allreduce`` of one contiguous buffer; a
    parameter without a gradient counts as zeros. ``extra`` numbers ride in
    the same buffer and come back summed over the ranks (``fit`` sends its
    loss this way). Returns those sums (float64).
    """
    params = _params(model)
    extra = np.asarray(list(extra), dtype=np.float64)
    size = world_size()
    if size == 1:  # a world of one: nothing to exchange, only the weight to apply
        if weight is not None and weight != 1.0:
            for p in params:
                if p.grad is not None:
                    p.grad = p.grad * float(weight)
        return extra
    grads = [p.grad for p in params]
    ops = ops_of(params[0].data)
    dtype = np.dtype(dtype_name(params[0].data.dtype))
    sizes = [int(np.prod(p.shape)) for p in params]
    total = sum(sizes)
    scale = (1.0 / size) if weight is None else float(weight)
    device = ops.device_of(params[0].data)
    if not ops.is_host(device) and cuda_aware():
        flat = ops.xp.concat([_flat(ops, g, p) for g, p in zip(grads, params)]) * scale
        _comm.Allreduce(_in_place(), flat)
        reduced_extra = _sum_numbers(extra)
        _unpack_device(ops, flat, params, sizes)
        return reduced_extra
    buf = _host_buffer(dtype, total + extra.size)
    if ops.is_host(device):  # one copy of the gradients into the reused buffer
        offset = 0
        for g, n in zip(grads, sizes):
            buf[offset : offset + n] = 0.0 if g is None else to_host(g).reshape(-1)
            offset += n
    else:  # GPU without CUDA-aware MPI: one concatenation on the device, one copy to the host
        buf[:total] = to_host(ops.xp.concat([_flat(ops, g, p) for g, p in zip(grads, params)]))
    buf[:total] *= scale
    buf[total:] = extra
    _comm.Allreduce(_in_place(), buf)
    offset = 0
    for p, n in zip(params, sizes):
        p.grad = ops.asarray(buf[offset : offset + n].reshape(p.shape).copy(), dtype=p.data.dtype, device=device)
        offset += n
    return buf[total:].astype(np.float64)


def _flat(ops: Any, grad: Any, p: Parameter) -> Any:
    return ops.xp.reshape(ops.xp.zeros_like(p.data) if grad is None else grad, (-1,))


def _unpack_device(ops: Any, flat: Any, params: list[Parameter], sizes: list[int]) -> None:
    offset = 0
    for p, n in zip(params, sizes):
        p.grad = ops.xp.reshape(flat[offset : offset + n], p.shape)
        offset += n


def _sum_numbers(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    if is_active():
        _comm.Allreduce(_in_place(), out)
    return out


def _in_place() -> Any:
    from mpi4py import MPI

    return MPI.IN_PLACE


class SameOnEveryRankError(ValueError):
    """A ``ValueError`` raised identically on every rank (from one ``allgather``'s result).

    [`report_failure_and_abort`][] lets rank 0 alone print it: several ranks
    printing one message at once race with the first ``MPI_Abort``, which can
    cut another rank's report off mid-line.
    """


def check_same_everywhere(what: dict[str, Any]) -> None:
    """Raise one ``SameOnEveryRankError`` (a ``ValueError``) on every rank if a rank differs from rank 0.

    ``what`` maps a name (``"x"``, ``"model"``, ``"seed"``) to arrays, models
    or plain values; a CRC32 of each travels in one ``allgather``.
    """
    if not is_active():
        return
    mine = {name: _checksum(value) for name, value in what.items()}
    everyone = allgather(mine)
    problems = []
    for name in what:
        odd = [r for r, sums in enumerate(everyone) if sums[name] != everyone[0][name]]
        if odd:
            problems.append(f"{name} differs on rank{'s' if len(odd) > 1 else ''} {', '.join(map(str, odd))}")
    if problems:
        raise SameOnEveryRankError(
            "distributed fit: every rank must pass the same data, model and arguments, but "
            + "; ".join(problems)
            + " (compared with rank 0 by checksum)"
        )


def _checksum(value: Any) -> int:
    if isinstance(value, Layer):
        state = value.state_dict()
        return zlib.crc32(b"".join(np.ascontiguousarray(state[k]).tobytes() for k in sorted(state)))
    if hasattr(value, "shape"):
        host = np.ascontiguousarray(to_host(value))
        return zlib.crc32(host.tobytes(), zlib.crc32(repr((host.shape, host.dtype.str)).encode()))
    return zlib.crc32(repr(value).encode())


class DistributedOptimizer(OptimizerWrapper):
    """Wraps an optimizer: ``step()`` averages every gradient over the ranks (one allreduce), then steps.

    Everything else (``zero_grad``, ``lr``, ``state_dict``…) is the wrapped
    optimizer's. With one process it is the optimizer itself.

    Parameters
    ----------
    optimizer : Optimizer
        The ``nu_xp.optim`` optimizer to wrap.
    """

    def step(self) -> None:
        """``allreduce_gradients`` over the optimizer's parameters, then the wrapped ``step()``."""
        allreduce_gradients(unwrap(self.optimizer).params)
        self.optimizer.step()


def report_failure_and_abort(exc: BaseException, *, wait_s: float = 30.0) -> None:
    """In a distributed ``fit``: print ``exc`` with its traceback (rank named), then end every rank.

    The report goes out in one write, so that another rank's ``MPI_Abort``
    cannot cut it in half. An error every rank raised alike
    ([`SameOnEveryRankError`][]) is printed by rank 0 only; the other ranks
    wait up to ``wait_s`` seconds for rank 0's abort before aborting themselves.
    """
    if isinstance(exc, SameOnEveryRankError) and rank() != 0:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:  # rank 0 raised the same error and is ending the world
            time.sleep(0.05)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    _write_stderr(f"nu_xp.distributed: rank {rank()} of {world_size()} failed:\n{text}")
    abort(f"{type(exc).__name__} on rank {rank()}")


def _write_stderr(text: str) -> None:
    """All of ``text`` onto file descriptor 2, after what ``sys.stderr`` holds, in as few writes as it takes."""
    sys.stdout.flush()
    sys.stderr.flush()
    data = text.encode("utf-8", "replace")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (pytest's capture, a notebook)
        sys.stderr.write(text)
        sys.stderr.flush()
        return
    while data:
        data = data[os.write(fd, data) :]
