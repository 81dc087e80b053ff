"""The order of the samples in each epoch: a function of the seed and the epoch, nothing else.

``fit(x, y, seed=s)`` and ``DataLoader(..., seed=s)`` draw epoch ``e``'s
permutation from ``numpy.random.default_rng([s, e])``, so the two see the
same batches, and a run resumed at epoch ``e`` (``fit(..., initial_epoch=e)``)
sees the order it would have seen without stopping. ``seed=None`` draws one
base seed from nu_xp's global generator (``nu_xp.manual_seed``) when training
starts; a numpy ``Generator`` or ``RandomState`` is used as it is, one
permutation after another (scikit-learn's way).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..initializers import host_rng

__all__ = ["EpochOrder"]


class EpochOrder:
    """Epoch ``e``'s permutation of ``n`` samples (``permutation(n, e)``), for a seed, a generator or None.

    Parameters
    ----------
    seed : int, numpy Generator, RandomState or None
        An int gives the same orders every time; None draws one base seed now from the global generator;
        a generator is drawn from in turn (then only the order of the calls matters, not the epochs).
    """

    def __init__(self, seed: Any = None) -> None:
        if hasattr(seed, "permutation"):
            self.generator: Any = seed
            self.base: int | None = None
        else:
            self.generator = None
            self.base = int(host_rng(None).integers(2**63)) if seed is None else _seed_value(seed)

    def permutation(self, n: int, epoch: int) -> np.ndarray:
        """The order of ``n`` samples in epoch ``epoch`` (0-based)."""
        if self.generator is not None:
            return np.asarray(self.generator.permutation(n))
        base = self.base if self.base is not None else 0
        return np.random.default_rng([base, int(epoch)]).permutation(n)

    def generator_for(self, epoch: int, batch: int) -> np.random.Generator:
        """A generator for batch ``batch`` of epoch ``epoch`` (a ``DataLoader``'s ``transform`` draws from it)."""
        if self.base is not None:
            base = self.base
        else:  # a numpy Generator has integers, a RandomState randint
            draw = getattr(self.generator, "integers", None) or self.generator.randint
            base = int(draw(2**31))
        return np.random.default_rng([base, int(epoch), int(batch)])


def _seed_value(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, a numpy Generator or None, got {seed!r}")
    return int(seed)
