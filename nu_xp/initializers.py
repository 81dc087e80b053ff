"""Weight initialization, drawn on the host so every backend gets the same bits.

The array API standard has no random numbers, so every random draw in nu_xp is
made by ``numpy.random.default_rng`` in float64, cast to the parameter dtype
on the host, and only then moved to the backend. The same seed therefore gives
bit-identical weights on numpy, array_api_strict, torch and cupy.

Schemes (``fan_in`` = in_features, ``fan_out`` = out_features):

=====================================  =====================================================  ===========
``init=``                              weight                                                 bias
=====================================  =====================================================  ===========
``"auto"`` / ``"pytorch"``             U(-1/sqrt(fan_in), 1/sqrt(fan_in))  (torch's default)  same as W
``"xavier_uniform"`` (glorot_uniform)  U(-a, a), a = sqrt(6 / (fan_in + fan_out))             0
``"xavier_normal"`` (glorot_normal)    N(0, 2 / (fan_in + fan_out))                           0
``"he_uniform"`` (kaiming_uniform)     U(-a, a), a = sqrt(6 / fan_in)                         0
``"he_normal"`` (kaiming_normal)       N(0, 2 / fan_in)                                       0
``"zeros"``                            0                                                      0
=====================================  =====================================================  ===========
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["INIT_SCHEMES", "host_rng", "initial_weights", "manual_seed"]

_ALIASES = {
    "auto": "pytorch",
    "default": "pytorch",
    "pytorch": "pytorch",
    "xavier_uniform": "xavier_uniform",
    "glorot_uniform": "xavier_uniform",
    "xavier_normal": "xavier_normal",
    "glorot_normal": "xavier_normal",
    "he_uniform": "he_uniform",
    "kaiming_uniform": "he_uniform",
    "he_normal": "he_normal",
    "kaiming_normal": "he_normal",
    "zeros": "zeros",
}
INIT_SCHEMES: tuple[str, ...] = tuple(_ALIASES)

_global_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator used by every object created with ``seed=None``.

    Like ``torch.manual_seed``: after ``nu_xp.manual_seed(0)``, building the
    same model twice gives the same weights (and the same dropout masks).
    """
    global _global_rng
    _global_rng = np.random.default_rng(seed)


def host_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator: from ``seed``, or the global one when ``seed`` is None."""
    if seed is None:
        return _global_rng
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.default_rng(int(seed))


def check_init(init: str) -> str:
    """The canonical scheme name for ``init``, or ``ValueError`` listing the choices."""
    try:
        return _ALIASES[init]
    except (KeyError, TypeError):
        raise ValueError(f"init must be one of {', '.join(map(repr, INIT_SCHEMES))}; got {init!r}") from None


def initial_weights(
    init: str,
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    dtype: str = "float32",
    *,
    shape: tuple[int, ...] | None = None,
    bias_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Host arrays ``(W, b)``: by default ``W.shape == (fan_out, fan_in)`` and ``b.shape == (fan_out,)``.

    A convolution passes its weight ``shape`` ``(C_out, C_in/groups, *kernel)``
    and ``bias_size`` ``C_out``, with ``fan_in = C_in/groups · prod(kernel)`` and
    ``fan_out = C_out · prod(kernel)`` as PyTorch counts them. Drawn in float64
    (weight first, then bias) and cast to ``dtype`` on the host.
    """
    scheme = check_init(init)
    shape = (fan_out, fan_in) if shape is None else shape
    bias_size = fan_out if bias_size is None else bias_size
    bias = np.zeros(bias_size)
    if scheme == "pytorch":
        bound = 1.0 / math.sqrt(fan_in)
        weight = rng.uniform(-bound, bound, size=shape)
        bias = rng.uniform(-bound, bound, size=bias_size)
    elif scheme == "xavier_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        weight = rng.uniform(-bound, bound, size=shape)
    elif scheme == "xavier_normal":
        weight = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    elif scheme == "he_uniform":
        bound = math.sqrt(6.0 / fan_in)
        weight = rng.uniform(-bound, bound, size=shape)
    elif scheme == "he_normal":
        weight = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    else:
        weight = np.zeros(shape)
    return weight.astype(dtype), bias.astype(dtype)
