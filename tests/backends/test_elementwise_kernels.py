"""Backends' own GELU (``Ops.gelu``: NumPy's float32 blocks with a fitted ``Φ``, torch's fused kernel) against the
exact function in float64 and against the reference formula ``Ops.gelu``: values, slopes and the layer's backward,
across block boundaries, non-contiguous input, zero-size input and extreme values, without NumPy warnings."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import ndtr

import nu_xp
from nu_xp.backends import numpy_elementwise
from tests.helpers import assert_close, host, on


def exact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GELU's value and slope in float64: ``x Φ(x)`` and ``Φ(x) + x φ(x)``."""
    x = x.astype(np.float64)
    cdf = ndtr(x)
    with np.errstate(over="ignore", invalid="ignore"):
        pdf_term = np.where(np.abs(x) < 40, x * np.exp(-0.5 * np.minimum(x * x, 1600.0)), 0.0) / math.sqrt(2 * math.pi)
    return x * cdf, cdf + pdf_term


def assert_within(got: np.ndarray, want: np.ndarray, scale: np.ndarray) -> None:
    """``|got - want| ≤ 4 ulp(want) + 5e-7 scale``: float32 rounding plus an error in ``Φ`` of a few float32 ulps
    at ½ (NumPy's fitted ``Φ``: ≤ 2.6e-7; ``(1 + erf)/2`` with a float32 ``erf`` about as much) times the
    value's scale (``|x|`` for ``y``). A wrong coefficient or formula misses it by orders of magnitude."""
    got, want, scale = (np.asarray(a, dtype=np.float64) for a in (got, want, scale))
    bound = 4 * np.spacing(np.abs(want).astype(np.float32)).astype(np.float64) + 5e-7 * scale
    bad = np.flatnonzero(~(np.abs(got - want) <= bound))
    assert bad.size == 0, f"at {bad[0]}: {got.flat[bad[0]]} against {want.flat[bad[0]]}"


SIZES = [0, 1, 1000, numpy_elementwise.BLOCK, 2 * numpy_elementwise.BLOCK + 3]


@pytest.mark.parametrize("size", SIZES)
def test_gelu_kernel_is_accurate_in_float32(backend, size):
    """Every backend's ``ops.gelu`` in float32 within two ulps (plus ``Φ``'s error times ``x``) of the exact GELU,
    on both sides of every block boundary; the layer's backward is ``g`` times the same slope."""
    ops = nu_xp.backends.ops_for(backend)
    rng = np.random.default_rng(size)
    x = np.concatenate([np.linspace(-12, 12, min(size, 2001)), rng.normal(size=max(size - 2001, 0)) * 4])
    x = x.astype(np.float32).reshape(-1, 1) if size % 2 else x.astype(np.float32)
    y, kept = ops.gelu(on(backend, x, dtype="float32"))
    want_y, want_slope = exact(x)
    assert_within(host(y), want_y, np.abs(x))
    g = rng.normal(size=x.shape).astype(np.float32)
    dx = host(ops.gelu_backward(on(backend, g, dtype="float32"), kept))
    assert_within(dx, g.astype(np.float64) * want_slope, np.abs(g) * (1 + np.abs(x)))
    assert host(y).dtype == np.float32 and dx.dtype == np.float32 and host(y).shape == x.shape


def test_gelu_kernel_takes_strided_and_shaped_input(backend):
    """A transposed (non-contiguous) 3-d input gives the reference formula's result in the input's shape."""
    ops = nu_xp.backends.ops_for(backend)
    x = np.random.default_rng(0).normal(size=(5, 7, 300)).astype(np.float32) * 3
    xb = on(backend, x, dtype="float32")
    xt = nu_xp.backends.ops_for(backend).xp.permute_dims(xb, (2, 0, 1))
    y, kept = ops.gelu(xt)
    ref_y, ref_slope = nu_xp.backends.Ops.gelu(ops, xt)
    assert tuple(y.shape) == (300, 5, 7)
    assert_close(host(y), host(ref_y), ulps=8)
    assert_close(host(ops.gelu_backward(ops.xp.ones_like(xt), kept)), host(ref_slope), ulps=8)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_of_large_finite_values_warns_of_nothing(backend, dtype, approximate):
    """±1e30, ±1e4, ±40 and zeros: ``y`` is ``x`` or 0 exactly, the slope 1, 0 or ½, and nothing overflows
    (``x²`` and ``x³`` of the reference formula are taken of ``x`` clipped to ±40)."""
    ops = nu_xp.backends.ops_for(backend)
    x = np.array([-1e30, 1e30, -1e4, 1e4, -40.0, 40.0, 0.0, -0.0]).astype(dtype)
    xb = on(backend, x, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, kept = ops.gelu(xb, approximate)
        slope = host(ops.gelu_backward(ops.xp.ones_like(xb), kept, approximate))
    np.testing.assert_array_equal(host(y), np.maximum(x, 0))
    np.testing.assert_allclose(slope, [0, 1, 0, 1, 0, 1, 0.5, 0.5], rtol=0, atol=1e-30)


def test_numpy_gelu_kernel_on_non_finite_values():
    """NumPy's own kernel: ``-inf`` gives NaN (``-inf · 0``, as the reference formula and PyTorch's scalar
    path do), ``+inf`` gives ``inf`` with slope 1, NaN stays NaN, the largest float32 passes, a subnormal
    gives ``x/2``; no NumPy warning."""
    big = float(np.finfo(np.float32).max)
    x = np.array([-np.inf, np.inf, np.nan, -big, big, 1e-40], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, slope = numpy_elementwise.gelu(x)
    assert np.isnan(y[0]) and y[1] == np.inf and np.isnan(y[2]) and np.isnan(slope[2])
    np.testing.assert_array_equal(y[3:], [0.0, big, x[5] * np.float32(0.5)])
    np.testing.assert_allclose(slope[[0, 1, 3, 4, 5]], [0, 1, 0, 1, 0.5], rtol=0, atol=1e-30)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_layer_in_float32_equals_the_reference_formula(backend, approximate):
    """The layer's forward and backward (the backend's kernel) against ``Ops.gelu``'s formula on the same input."""
    x = np.random.default_rng(3).normal(size=(64, 513)).astype(np.float32) * 3
    layer = nu_xp.GELU(approximate)
    xb = on(backend, x, dtype="float32")
    y = layer(xb)
    g = on(backend, np.random.default_rng(4).normal(size=x.shape), dtype="float32")
    dx = layer.backward(g)
    ops = nu_xp.backends.ops_for(backend)
    ref_y, ref_slope = nu_xp.backends.Ops.gelu(ops, xb, approximate)
    assert_close(host(y), host(ref_y), ulps=8)
    assert_close(host(dx), host(g) * host(ref_slope), ulps=8)
