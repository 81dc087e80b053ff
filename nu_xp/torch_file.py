"""PyTorch ``state_dict`` files (``torch.save``: ``.pt``/``.pth``) read as named numpy arrays.

Read by the backend whose library wrote them ([`Ops.load_state_dict_file`][nu_xp.backends.ops.Ops.load_state_dict_file]:
``torch.load(f, map_location="cpu", weights_only=True)``, PyTorch's restricted unpickler, which builds
tensors, dicts, lists and numbers and refuses every other object, so a hostile file cannot run code).
The file is opened by nu_xp first (a regular file only: a FIFO cannot make it wait). What it holds must
be a ``state_dict`` — a mapping of names to tensors — or a checkpoint dict holding one under
``"state_dict"``, ``"model_state_dict"`` or ``"model"`` (as PyTorch Lightning and most training scripts
write). Tensors come back as numpy arrays on the host; ``bfloat16`` becomes float32 (exactly). Without
the library installed, a clear ``ImportError`` names the extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .archive import open_regular_file
from .backends import OPS_CLASSES
from .backends.ops import Ops
from .errors import ModelFileError

__all__ = ["CHECKPOINT_KEYS", "read_torch_state_dict"]

#: where a checkpoint dict keeps the model's weights, tried in this order
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


def _reader() -> type[Ops]:
    """The backend that reads PyTorch's files, its library imported (``ImportError`` naming the extra)."""
    cls = next(c for c in OPS_CLASSES.values() if c.reads_state_dict_files)
    try:
        __import__(cls.package)
    except ImportError:
        raise ImportError(
            f"this is a PyTorch file; reading it needs {cls.package}: pip install 'nu_xp[{cls.extra}]' "
            "(or convert it to .safetensors where it is installed)"
        ) from None
    return cls


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: numpy array}`` from a file of ``torch.save(model.state_dict(), path)``."""
    path = Path(os.fspath(path))
    try:
        reader = _reader()
    except ImportError as exc:
        raise ImportError(f"{path}: {exc}") from None
    with open_regular_file(path) as f:
        try:
            loaded = reader.load_state_dict_file(f)
        except Exception as exc:  # UnpicklingError for a forbidden object, RuntimeError for a damaged zip…
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ModelFileError(
                f"{path}: torch.load(weights_only=True) refused the file ({type(exc).__name__}: {first}); "
                "nu_xp reads state_dict files only"
            ) from None
    state = _state_dict_in(loaded, reader)
    if state is None:
        raise ModelFileError(
            f"{path} holds a {type(loaded).__name__}, not a state_dict (a mapping of names to tensors, "
            f"or a checkpoint dict with one under {' / '.join(CHECKPOINT_KEYS)}); save with "
            "torch.save(model.state_dict(), path)"
        )
    return state


def _state_dict_in(loaded: Any, reader: type[Ops]) -> dict[str, np.ndarray] | None:
    """The state_dict in what the file held, as numpy arrays; None when there is none."""

    def arrays(value: Any) -> dict[str, np.ndarray] | None:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            return None
        out = {k: reader.tensor_to_numpy(v) for k, v in value.items()}
        return None if any(v is None for v in out.values()) else out

    found = arrays(loaded)
    if found is None and isinstance(loaded, Mapping):
        for key in CHECKPOINT_KEYS:
            found = arrays(loaded.get(key))
            if found is not None:
                break
    return found
