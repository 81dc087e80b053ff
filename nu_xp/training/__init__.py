"""Training: ``fit`` ([`fit`][]: the loop of [`loop`][], or [`data_parallel`][] over MPI), ``evaluate``,
``History`` ([`history`][]), callbacks ([`callbacks`][]); mixed precision ([`precision`][]) and the BLAS thread
rule ([`threads`][]) around the same loop."""

from .batches import minibatches, prepare_data
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    ScheduleStepper,
    WeightAveraging,
)
from .evaluate import evaluate
from .fit import fit
from .history import History
from .hooks import StepHooks
from .loop import FitOptions, NonFiniteLossError, run_epoch, train, train_group, train_step

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "FitOptions",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "ReduceLROnPlateau",
    "ScheduleStepper",
    "StepHooks",
    "WeightAveraging",
    "evaluate",
    "fit",
    "minibatches",
    "prepare_data",
    "run_epoch",
    "train",
    "train_group",
    "train_step",
]
