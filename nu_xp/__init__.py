"""nu_xp: a neural-network library where every layer states its own forward and backward.

The same layer code runs on NumPy, CuPy, PyTorch tensors and array-api-strict:
layers get their array namespace through ``array-api-compat``.

>>> import nu_xp
>>> model = nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=1), nu_xp.Sigmoid())
>>> model(nu_xp.asarray([[0.0, 1.0]])).shape
(1, 1)
"""

from . import layers, optim
from .backend import Backend, asarray, get_backend, set_backend, to_host, use_backend
from .gradcheck import gradcheck
from .init import manual_seed
from .io import ModelFileError, ModelFileWarning, load, load_checkpoint, save
from .layers import (
    LAYER_REGISTRY,
    Dropout,
    Identity,
    Layer,
    Linear,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    register_layer,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss
from .training import EarlyStopping, History, fit

layers._freeze_builtins()

__version__ = "0.1.0"

__all__ = [
    "LAYER_REGISTRY",
    "BCELoss",
    "BCEWithLogitsLoss",
    "Backend",
    "CrossEntropyLoss",
    "Dropout",
    "EarlyStopping",
    "History",
    "Identity",
    "Layer",
    "Linear",
    "Loss",
    "MSELoss",
    "ModelFileError",
    "ModelFileWarning",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "__version__",
    "asarray",
    "fit",
    "get_backend",
    "gradcheck",
    "load",
    "load_checkpoint",
    "manual_seed",
    "optim",
    "register_layer",
    "save",
    "set_backend",
    "to_host",
    "use_backend",
]
