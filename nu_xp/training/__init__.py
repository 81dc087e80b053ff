"""Training: ``fit`` (:mod:`.fit`: the loop of :mod:`.loop`, or :mod:`.distributed` over MPI), ``evaluate``,
``History`` (:mod:`.history`), callbacks (:mod:`.callbacks`)."""

from .callbacks import Callback, EarlyStopping
from .fit import fit
from .history import History
from .loop import NonFiniteLossError, evaluate, minibatches, prepare_data, run_epoch, train_step

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
