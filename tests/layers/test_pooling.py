"""Max and average pooling: PyTorch's values and gradients, gradcheck, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, on
from tests.layers.test_conv import native_ops
from tests.layers.torch_reference import compare_with_torch

POOLS = [
    ("MaxPool1d", (3, 2, 1), (2, 3, 11)),
    ("MaxPool1d", (2, None, 0), (2, 2, 8)),
    ("AvgPool1d", (3, 2, 1), (2, 3, 11)),
    ("AvgPool1d", (4, 1, 2), (2, 2, 6)),
    ("MaxPool2d", (2, None, 0), (2, 2, 6, 6)),
    ("MaxPool2d", (3, 1, 1), (1, 2, 5, 4)),
    ("AvgPool2d", ((2, 3), (1, 2), (1, 1)), (2, 2, 5, 6)),
]


@pytest.mark.parametrize(("name", "args", "shape"), POOLS)
def test_pooling_equals_torch(torch, backend, name, args, shape):
    x = np.random.default_rng(0).normal(size=shape)  # no ties: the first maximum is the only one
    ours = getattr(nu_xp, name)(*args)
    theirs = getattr(torch.nn, name)(*args)
    compare_with_torch(torch, backend, ours, theirs, x)


@pytest.mark.parametrize(("name", "args", "shape"), POOLS[:4])
def test_pooling_gradcheck(backend, name, args, shape):
    x = on(backend, np.random.default_rng(1).normal(size=shape))
    assert nu_xp.gradcheck(getattr(nu_xp, name)(*args), x) < 1e-6


def test_max_pool_gives_a_tie_to_the_first_maximum(torch, backend):
    x = np.array([[[1.0, 3.0, 3.0, 0.0]]])
    pool = nu_xp.MaxPool1d(2, 1)
    pool(on(backend, x))
    dx = nu_xp.to_host(pool.backward(on(backend, np.ones((1, 1, 3)))))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.MaxPool1d(2, 1)(xt).sum().backward()
    np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_bad_pooling(backend):
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        nu_xp.MaxPool1d(2, padding=2)
    with pytest.raises(ValueError, match="stride must be ≥ 1"):
        nu_xp.AvgPool2d(2, stride=0)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, H, W\)"):
        nu_xp.MaxPool2d(2)(on(backend, np.ones((2, 3, 4))))
    with pytest.raises(ValueError, match="kernel spans 5"):
        nu_xp.AvgPool1d(5)(on(backend, np.ones((2, 3, 4))))


@pytest.mark.parametrize(("name", "args", "shape"), POOLS)
@pytest.mark.parametrize("kernels", ["numpy", "torch", "jax"])
def test_native_kernels_equal_the_windows(monkeypatch, name, args, shape, kernels):
    """Where a backend has its own pooling kernels (``Ops.native_pool``: torch, numpy, XLA's on JAX), they give what the
    layer's own windows give, values and dL/dx, ties included (the first maximum wins in both)."""
    ops_class = native_ops(kernels)
    rng = np.random.default_rng(0)
    x = on(kernels, np.round(rng.normal(size=shape), 1))  # rounded: ties within windows
    g = None
    results = []
    for native in (True, False):
        monkeypatch.setattr(ops_class, "native_pool", native)
        layer = getattr(nu_xp, name)(*args)
        y = layer(x)
        g = on(kernels, rng.normal(size=tuple(y.shape))) if g is None else g
        results.append((y, layer.backward(g)))
    (y1, dx1), (y2, dx2) = results
    assert_close(y1, y2)
    assert tuple(dx1.shape) == tuple(x.shape)
    assert_close(dx1, dx2)
