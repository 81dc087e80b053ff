"""``Dropout``: random zeroing in training, the identity in evaluation."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..initializers import host_rng
from .activations import Activation
from .base import check_grad
from .registry import register_layer

__all__ = ["Dropout", "dropout_mask", "mask_source", "restore_rng"]


_SOURCE = threading.local()


@contextlib.contextmanager
def mask_source(source: Callable[[np.random.Generator, tuple[int, ...], float], Any]) -> Iterator[None]:
    """Within the block, [`dropout_mask`][] asks ``source(rng, shape, p)`` instead of drawing (this thread only).

    How a compiled step ([`nu_xp.compile_step`][]) learns which masks a step draws and feeds it the masks
    drawn on the host for each call.
    """
    previous = getattr(_SOURCE, "value", None)
    _SOURCE.value = source
    try:
        yield
    finally:
        _SOURCE.value = previous


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> Any:
    """Host mask of inverted dropout: ``m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` (all zeros for ``p = 1``).

    Drawn on the host so that a seed gives the same masks on every backend (inside a
    [`mask_source`][] block, the source answers instead).
    """
    source = getattr(_SOURCE, "value", None)
    if source is not None:
        return source(rng, shape, p)
    keep = rng.random(shape) >= p
    return keep * (0.0 if p == 1.0 else 1.0 / (1.0 - p))


def restore_rng(state: Any, owner: str) -> np.random.Generator:
    """The mask generator a layer's extra state ``{"rng": bit_generator.state}`` describes.

    ``ValueError`` (naming ``owner``) for a state that is not one of its own kind:
    a checkpoint's extra state is untrusted input.
    """
    if not isinstance(state, dict) or not isinstance(state.get("rng"), dict):
        raise ValueError(f"{owner} extra state must be {{'rng': <generator state>}}, got {state!r}")
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = state["rng"]
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"bad random-generator state for {owner} ({exc})") from exc
    return rng


@register_layer
class Dropout(Activation):
    """Inverted dropout: in training ``y = x · m / (1 - p)`` with ``m ~ Bernoulli(1 - p)``;
    in eval mode ``y = x``. Backward: ``dL/dx = g · m / (1 - p)`` (the same mask).

    Masks are drawn on the host from ``numpy.random.default_rng(seed)``, so a
    seed gives the same masks on every backend. The generator's state is the
    layer's extra state ([`get_extra_state`][]): a checkpoint restores it,
    so training resumes with the same masks.

    Parameters
    ----------
    p : float in [0, 1]
        Probability of zeroing an element (``p=1`` zeroes everything).
    seed : int or None
        Seed for the masks; None: the global generator.
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout probability p must be a number in [0, 1], got {p!r}")
        self.p = float(p)
        self._rng = host_rng(seed)

    def forward(self, x: Any) -> Any:
        ops, x = self._float_input(x)
        if not self.training or self.p == 0.0:
            self.save_for_backward(None)
            return x
        mask = ops.asarray(dropout_mask(self._rng, tuple(x.shape), self.p), dtype=x.dtype, device=ops.device_of(x))
        self.save_for_backward(mask)
        return x * mask

    def backward(self, grad: Any) -> Any:
        (mask,) = self.saved_tensors()
        if mask is None:  # eval mode (or p = 0): the identity
            return grad
        return grad * self._check(grad, mask)

    def _check(self, grad: Any, mask: Any) -> Any:
        check_grad(self, grad, mask.shape, type(mask))
        return mask

    def get_extra_state(self) -> dict[str, Any]:
        """``{"rng": <the mask generator's bit_generator.state>}`` (JSON values)."""
        return {"rng": self._rng.bit_generator.state}

    def set_extra_state(self, state: Any) -> None:
        """Restore the mask generator; ``ValueError`` for a state that is not one of its own kind."""
        self._rng = restore_rng(state, "Dropout")
