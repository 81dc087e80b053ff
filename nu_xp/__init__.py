"""nu_xp: a neural-network library where every layer states its own forward and backward.

The same layer code runs on NumPy, CuPy, PyTorch tensors, JAX and array-api-strict:
layers get their array namespace through ``array-api-compat``.

>>> import nu_xp
>>> model = nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=1), nu_xp.Sigmoid())
>>> model(nu_xp.asarray([[0.0, 1.0]])).shape
(1, 1)
"""

from . import backends, data, distributed, functional, layers, losses, onnx_export, optim
from ._version import __version__
from .backends import Backend, asarray, get_backend, set_backend, to_host, use_backend
from .errors import ModelFileError, ModelFileWarning, NonFiniteLossError
from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .gradcheck import gradcheck
from .initializers import manual_seed
from .layers import (
    ELU,
    GELU,
    GRU,
    LAYER_REGISTRY,
    LSTM,
    RNN,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    Layer,
    LayerDict,
    LayerList,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool1d,
    MaxPool2d,
    MultiheadAttention,
    Parameter,
    ReLU,
    Residual,
    Select,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    TransformerEncoderLayer,
    register_layer,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss, MSELoss, NLLLoss
from .model_file import load, load_checkpoint, save
from .onnx_export import export_onnx
from .optim import clip_grad_norm_, clip_grad_value_
from .training import EarlyStopping, History, callbacks, evaluate, fit
from .training.precision import set_float32_matmul_precision
from .training.threads import get_num_threads, set_num_threads

__all__ = [
    "ELU",
    "GELU",
    "GRU",
    "LAYER_REGISTRY",
    "LSTM",
    "RNN",
    "AvgPool1d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "Backend",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "History",
    "HuberLoss",
    "Identity",
    "L1Loss",
    "Layer",
    "LayerDict",
    "LayerList",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Loss",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "ModelFileError",
    "ModelFileWarning",
    "MultiheadAttention",
    "NLLLoss",
    "NonFiniteLossError",
    "Parameter",
    "ReLU",
    "Residual",
    "Select",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "TransformerEncoderLayer",
    "__version__",
    "asarray",
    "backends",
    "callbacks",
    "clip_grad_norm_",
    "clip_grad_value_",
    "data",
    "distributed",
    "enable_grad",
    "evaluate",
    "export_onnx",
    "fit",
    "functional",
    "get_backend",
    "get_num_threads",
    "gradcheck",
    "is_grad_enabled",
    "layers",
    "load",
    "load_checkpoint",
    "losses",
    "manual_seed",
    "no_grad",
    "onnx_export",
    "optim",
    "register_layer",
    "save",
    "set_backend",
    "set_float32_matmul_precision",
    "set_num_threads",
    "to_host",
    "use_backend",
]
