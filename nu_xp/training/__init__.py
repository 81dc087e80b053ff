"""Training: ``fit`` ([`fit`][]: the loop of [`loop`][], or [`data_parallel`][] over MPI), ``evaluate``,
``History`` ([`history`][]), callbacks ([`callbacks`][]); mixed precision ([`precision`][]) and the BLAS thread
rule ([`threads`][]) around the same loop; compiled steps on JAX ([`compiled`][])."""

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
from .compiled import CompiledStep, compile_step
from .evaluate import evaluate
from .fit import fit
from .history import History
from .hooks import StepHooks
from .loop import FitOptions, NonFiniteLossError, run_epoch, train
from .step import train_group, train_step

__all__ = [
    "CSVLogger",
    "Callback",
    "CompiledStep",
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
    "compile_step",
    "evaluate",
    "fit",
    "minibatches",
    "prepare_data",
    "run_epoch",
    "train",
    "train_group",
    "train_step",
]
