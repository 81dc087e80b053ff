"""LeakyReLU, ELU, GELU, SiLU, Softplus, LogSoftmax, Flatten, Residual: PyTorch's values and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nu_xp
from tests.helpers import host, on
from tests.layers.torch_reference import compare_with_torch

CASES = [
    ("LeakyReLU", (0.2,), {}),
    ("ELU", (0.7,), {}),
    ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}),
    ("SiLU", (), {}),
    ("Softplus", (2.0, 5.0), {}),
    ("Softplus", (), {}),
    ("LogSoftmax", (1,), {}),
    ("Flatten", (), {}),
    ("Flatten", (0, 1), {}),
]


def torch_version(torch, name, args, kwargs):
    if name == "LogSoftmax":
        return torch.nn.LogSoftmax(dim=args[0])
    return getattr(torch.nn, name)(*args, **kwargs)


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES)
def test_equals_torch(torch, backend, name, args, kwargs):
    x = np.concatenate([np.random.default_rng(0).normal(size=(4, 3, 5)) * 3, np.linspace(-30, 30, 15).reshape(1, 3, 5)])
    compare_with_torch(
        torch, backend, getattr(nu_xp, name)(*args, **kwargs), torch_version(torch, name, args, kwargs), x
    )


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES)
def test_gradcheck(backend, name, args, kwargs):
    x = on(backend, np.random.default_rng(1).normal(size=(3, 2, 4)) * 2)
    assert nu_xp.gradcheck(getattr(nu_xp, name)(*args, **kwargs), x) < 1e-6


@given(arrays(np.float32, (3, 4), elements=st.floats(-1e4, 1e4, width=32)))
def test_no_overflow_for_large_inputs(x):
    for layer in (
        nu_xp.ELU(),
        nu_xp.GELU(),
        nu_xp.GELU("tanh"),
        nu_xp.SiLU(),
        nu_xp.Softplus(),
        nu_xp.LogSoftmax(),
        nu_xp.LeakyReLU(),
    ):
        y = layer(x)
        g = layer.backward(np.ones_like(x))
        assert np.all(np.isfinite(y)) and np.all(np.isfinite(g)), type(layer).__name__


def test_standard_erf_matches_math_erf(backend):
    ops = nu_xp.backends.ops_for(backend)
    x = np.linspace(-7, 7, 2001)
    ours = host(nu_xp.backends.Ops.erf(ops, on(backend, x)))
    np.testing.assert_allclose(ours, [math.erf(v) for v in x], rtol=0, atol=4e-15)
    np.testing.assert_allclose(host(ops.erf(on(backend, x))), [math.erf(v) for v in x], rtol=0, atol=4e-15)


def test_residual_equals_torch(torch, backend):
    class TorchResidual(torch.nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)

    ours = nu_xp.Residual(
        nu_xp.Linear(4, 4, seed=0, backend=backend, dtype="float64"),
        nu_xp.Tanh(),
        nu_xp.Linear(4, 4, seed=1, backend=backend, dtype="float64"),
    )
    theirs = TorchResidual(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4))
    compare_with_torch(torch, backend, ours, theirs, np.random.default_rng(2).normal(size=(5, 4)))
    assert nu_xp.gradcheck(ours, on(backend, np.random.default_rng(3).normal(size=(3, 4)))) < 1e-6
    with pytest.raises(ValueError, match="same shape"):
        nu_xp.Residual(nu_xp.Linear(4, 2, backend=backend))(on(backend, np.ones((2, 4)), dtype="float32"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="approximate"):
        nu_xp.GELU("fast")
    with pytest.raises(ValueError, match="beta"):
        nu_xp.Softplus(beta=0)
    with pytest.raises(ValueError, match="Flatten"):
        nu_xp.Flatten(2, 1)(np.ones((2, 3, 4)))
