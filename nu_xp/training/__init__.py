"""Training: ``fit`` ([`fit`][]: the loop of [`loop`][], or [`data_parallel`][] over MPI), ``evaluate``,
``History`` ([`history`][]), callbacks ([`callbacks`][]); mixed precision ([`precision`][]) and the BLAS thread
rule ([`threads`][]) around the same loop."""

from .callbacks import Callback, EarlyStopping
from .fit import fit
from .history import History
from .loop import (
    FitOptions,
    NonFiniteLossError,
    StepHooks,
    evaluate,
    minibatches,
    prepare_data,
    run_epoch,
    train,
    train_step,
)

__all__ = [
    "Callback",
    "EarlyStopping",
    "FitOptions",
    "History",
    "NonFiniteLossError",
    "StepHooks",
    "evaluate",
    "fit",
    "minibatches",
    "prepare_data",
    "run_epoch",
    "train",
    "train_step",
]
