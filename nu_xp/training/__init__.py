"""Training: ``fit`` (:mod:`.fit`: the loop of :mod:`.loop`, or :mod:`.distributed` over MPI), ``evaluate``,
``History`` (:mod:`.history`), callbacks (:mod:`.callbacks`)."""

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
