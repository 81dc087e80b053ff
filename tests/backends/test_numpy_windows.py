"""NumPy's own convolution and pooling kernels (``nu_xp.backends.numpy_windows``) against the layers' reference
windows, on the paths the small layer tests do not reach: the chunked products of a wide first layer, reused
buffers, inputs laid out in any order; and the malloc thresholds of ``host_memory``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import nu_xp
from nu_xp.backends import host_memory, numpy_windows
from nu_xp.backends.numpy_ops import NumpyOps
from tests.helpers import assert_close


def both_ways(monkeypatch, make, x, g_seed=1):
    """``(y, dx, parameter grads)`` through numpy's kernels and through the reference windows."""
    results = []
    for native in (True, False):
        monkeypatch.setattr(NumpyOps, "native_conv", native)
        monkeypatch.setattr(NumpyOps, "native_pool", native)
        model = make()
        y = model(x)
        g = np.random.default_rng(g_seed).normal(size=y.shape).astype(y.dtype)
        dx = model.backward(g)
        results.append((y, dx, [p.grad for p in model.parameters()]))
    return results


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_wide_first_layer_takes_the_chunked_products_and_equals_the_reference(monkeypatch, dtype):
    """6 kernels over 9·44·44 = 17 424 positions: the forward splits its columns into products of 4096 and the
    weight gradient its reduction into chunks of 512, each with a remainder; the results are the reference's."""
    x = np.random.default_rng(0).normal(size=(9, 1, 48, 48)).astype(dtype)

    def make():
        return nu_xp.Sequential(nu_xp.Conv2d(1, 6, 5, seed=0, dtype=dtype), nu_xp.Tanh())

    assert 9 * 44 * 44 >= numpy_windows._LONG and 9 * 44 * 44 % numpy_windows._WIDE
    (y1, dx1, g1), (y2, dx2, g2) = both_ways(monkeypatch, make, x)
    assert_close(y1, y2)
    assert_close(dx1, dx2)
    for a, b in zip(g1, g2):
        assert_close(a, b)


def test_gemm_helpers_equal_matmul_on_every_path():
    rng = np.random.default_rng(1)
    for groups, m, k, n in [(1, 6, 25, 20000), (2, 3, 4, 17000), (1, 32, 8, 20000), (3, 5, 7, 100)]:
        a, b = rng.normal(size=(groups, m, k)), rng.normal(size=(groups, k, n))
        np.testing.assert_allclose(numpy_windows._gemm(a, b), a @ b, rtol=1e-10, atol=1e-10)
        c = rng.normal(size=(groups, m, n))
        d = rng.normal(size=(groups, 7, n))
        expected = c @ d.transpose(0, 2, 1)
        np.testing.assert_allclose(numpy_windows._gemm_nt(c, d), expected, rtol=1e-10, atol=1e-8)


def test_two_calls_before_their_backwards_keep_their_own_columns(monkeypatch):
    """A buffer goes back for reuse only after its backward: a siamese model's two forwards, then the backwards
    in reverse order, then a third forward that reuses a buffer, all give the reference's gradients."""
    rng = np.random.default_rng(2)
    a, b, c = (rng.normal(size=(4, 2, 9, 9)).astype(np.float32) for _ in range(3))
    runs = []
    for native in (True, False):
        monkeypatch.setattr(NumpyOps, "native_conv", native)
        conv = nu_xp.Conv2d(2, 3, 3, padding=1, seed=0)
        ya, yb = conv(a), conv(b)
        dxb = conv.backward(np.ones(yb.shape, np.float32))
        dxa = conv.backward(2 * np.ones(ya.shape, np.float32))
        yc = conv(c)
        dxc = conv.backward(np.asarray(yc))
        runs.append([ya, yb, dxa, dxb, yc, dxc, conv.weight.grad, conv.bias.grad])
    for got, want in zip(*runs):
        assert_close(got, want)


@pytest.mark.parametrize("layout", ["contiguous", "batch last", "strided"])
def test_any_input_layout_gives_the_same_numbers(layout):
    """The kernels read their input through a transposed view: how it lies in memory changes nothing."""
    x = np.random.default_rng(3).normal(size=(5, 3, 8, 8))
    if layout == "batch last":
        x_in = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    elif layout == "strided":
        x_in = np.zeros((5, 3, 16, 8))[:, :, ::2]
        x_in[...] = x
    else:
        x_in = x
    model = nu_xp.Sequential(
        nu_xp.Conv2d(3, 4, 3, padding=1, seed=0, dtype="float64"), nu_xp.MaxPool2d(2), nu_xp.AvgPool2d(2)
    )
    np.testing.assert_array_equal(model(x_in), model(x))


def test_outputs_lie_batch_last_and_read_as_any_array():
    y = nu_xp.Conv2d(2, 3, 3, seed=0)(np.ones((4, 2, 6, 6), np.float32))
    assert y.shape == (4, 3, 4, 4) and not y.flags.c_contiguous  # a view of a (C, H, W, N) product
    assert np.ascontiguousarray(y).flags.c_contiguous
    np.testing.assert_array_equal(y.reshape(4, -1), np.ascontiguousarray(y).reshape(4, -1))


def test_keep_freed_memory_sets_glibc_thresholds_once_and_can_be_turned_off():
    if not host_memory._is_glibc():
        assert host_memory.keep_freed_memory(force=True) is False
        return
    assert host_memory.keep_freed_memory() is True  # done when numpy's Ops was made
    code = "import nu_xp, nu_xp.backends.host_memory as h; nu_xp.Linear(2, 2); print(h.keep_freed_memory())"
    env = {**os.environ, "NU_XP_KEEP_FREED_MEMORY": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


_REUSE = """
import ctypes, resource
from nu_xp.backends import host_memory
kept = host_memory.keep_large_blocks()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = 96 * 2**20  # above any mmap threshold glibc accepts; malloc's pages, as XLA's (NumPy asks for huge pages)
block = libc.malloc(size)
ctypes.memset(block, 1, size)
libc.free(block)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(size)
ctypes.memset(block, 1, size)
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.parametrize("turned_off", [False, True])
def test_keep_large_blocks_lets_a_freed_block_above_32_mb_be_reused_without_page_faults(turned_off):
    """What ``JaxOps.compile`` asks for on the CPU (XLA's temporaries are one such block per run): the second
    96 MB block takes the first one's pages (no faults); turned off by the environment, every page faults again."""
    if not host_memory._is_glibc():
        assert host_memory.keep_large_blocks(force=True) is False
        return
    env = {**os.environ, "NU_XP_KEEP_FREED_MEMORY": "0" if turned_off else "1"}
    out = subprocess.run([sys.executable, "-c", _REUSE], env=env, capture_output=True, text=True, check=True)
    kept, faults = out.stdout.split()
    assert kept == str(not turned_off)
    pages = 96 * 2**20 // 4096
    assert (int(faults) > pages // 2) if turned_off else (int(faults) < pages // 20)


@pytest.mark.parametrize("pool", ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d"])
def test_pools_whose_windows_tile_the_input_spread_their_gradient_in_one_operation(monkeypatch, pool):
    """``stride == kernel``, no padding, sizes multiples of the kernel: the backward takes ``_spread_tiles``
    (one broadcast, no per-tap writes) and gives the per-tap path's gradient bit for bit and the reference's:
    ties (the first maximum wins), NaN, ±inf, a gradient of NaN and -0.0, and a gradient laid out in any order."""
    dims = int(pool[-2])
    kernel = (2, 3, 2)[:dims]
    spatial = (4, 6, 4)[:dims]
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, size=(3, 2, *spatial)).astype(np.float64)  # many ties
    flat = x.reshape(-1)
    flat[[0, 7, 19]] = [np.nan, np.inf, -np.inf]
    layer = getattr(nu_xp, pool)(kernel)
    assert numpy_windows._tiles(kernel, kernel, (0,) * dims, (2, *spatial, 3))
    calls = []
    real = numpy_windows._spread_tiles
    monkeypatch.setattr(numpy_windows, "_spread_tiles", lambda *a, **k: calls.append(1) or real(*a, **k))
    y = layer(x)
    g = rng.normal(size=y.shape)
    g.reshape(-1)[:2] = [np.nan, -0.0]
    g_any = np.ascontiguousarray(g.transpose(*range(g.ndim)[::-1])).transpose(*range(g.ndim)[::-1])  # reversed
    got = [layer.backward(g)]
    layer(x)
    got.append(layer.backward(g_any))
    assert len(calls) == 2
    monkeypatch.setattr(numpy_windows, "_tiles", lambda *a: False)  # the per-tap path
    layer(x)
    per_tap = layer.backward(g)
    monkeypatch.setattr(NumpyOps, "native_pool", False)  # the layers' reference windows
    layer(x)
    reference = layer.backward(g)
    for dx in got:
        assert dx.shape == x.shape
        np.testing.assert_array_equal(dx, per_tap)
        np.testing.assert_array_equal(dx, reference)
        assert np.array_equal(np.signbit(dx), np.signbit(per_tap))  # bit for bit, -0.0 included


def test_a_max_pool_of_128_taps_or_more_tiles_with_int32_winners():
    """``MaxPool1d(130)`` keeps its winners as int32 (int8 holds 127 taps): the tiled backward compares them
    with a grid of that type and routes each gradient to the first maximum of its window."""
    x = np.zeros((2, 1, 260))
    x[0, 0, 129], x[1, 0, 200] = 5.0, 7.0
    layer = nu_xp.MaxPool1d(130)
    y = layer(x)
    dx = layer.backward(np.full(y.shape, 3.0))
    want = np.zeros_like(x)
    want[0, 0, [129, 130]] = 3.0  # window 0's maximum at 129; window 1 all zeros: its first position, 130
    want[1, 0, [0, 200]] = 3.0
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_the_tiled_backward_takes_any_number_of_spatial_axes(monkeypatch, kind):
    """The kernels are n-dimensional (the layers stop at 2-D): three spatial axes tile as one or two do."""
    x = np.random.default_rng(5).integers(-2, 3, size=(2, 3, 4, 6, 2)).astype(np.float32)
    kernel = (2, 3, 2)
    forward, backward = getattr(numpy_windows, f"{kind}_pool"), getattr(numpy_windows, f"{kind}_pool_backward")
    results = []
    for tiled in (True, False):
        monkeypatch.setattr(numpy_windows, "_tiles", lambda *a, tiled=tiled: tiled)
        y, saved = forward(x, kernel, kernel, (0, 0, 0))
        g = np.arange(y.size, dtype=np.float32).reshape(y.shape) - 5
        results.append(backward(g, saved, kernel, kernel, (0, 0, 0)))
    np.testing.assert_array_equal(*results)
    assert results[0].shape == x.shape
