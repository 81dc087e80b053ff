"""The exceptions and warnings nu_xp raises on purpose, in one small module.

Every one subclasses the built-in a caller would catch anyway (``ValueError``,
``FileNotFoundError``, ``FloatingPointError``, ``UserWarning``), so
``except ValueError`` keeps working; the subclass says where it came from.
Nothing here imports the rest of nu_xp, so any module may raise them.
"""

from __future__ import annotations

__all__ = ["ModelFileError", "ModelFileNotFoundError", "ModelFileWarning", "NonFiniteLossError"]


class ModelFileError(ValueError):
    """A model file (or state dict) that cannot be used: missing, damaged, hostile or mismatched."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """The model file does not exist (also a ``FileNotFoundError``)."""


class ModelFileWarning(UserWarning):
    """A model file that loads but looks wrong (NaN or Inf weights)."""


class NonFiniteLossError(ValueError, FloatingPointError):
    """The training loss became NaN or infinite (``fit(..., stop_on_nan=True)``, the default)."""
