"""Training: ``fit``/``evaluate`` (:mod:`.loop`), ``History`` (:mod:`.history`), callbacks (:mod:`.callbacks`)."""

from .callbacks import Callback, EarlyStopping
from .history import History
from .loop import NonFiniteLossError, evaluate, fit, minibatches, prepare_data, run_epoch, train_step

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "NonFiniteLossError",
    "evaluate",
    "fit",
    "minibatches",
    "prepare_data",
    "run_epoch",
    "train_step",
]
