"""Embedding: PyTorch's values and accumulated gradients (repeated indices, padding_idx), bad indices."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, host, on
from tests.layers.torch_reference import compare_with_torch


@pytest.mark.parametrize("padding_idx", [None, 0, -1])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 2, 3)])
def test_embedding_equals_torch(torch, backend, padding_idx, shape):
    idx = np.random.default_rng(0).integers(0, 5, size=shape)  # repeats for sure
    idx.flat[0] = idx.flat[1]
    ours = nu_xp.Embedding(5, 3, padding_idx=padding_idx, seed=0, backend=backend, dtype="float64")
    theirs = torch.nn.Embedding(5, 3, padding_idx=padding_idx)
    if padding_idx is not None:
        assert not np.any(nu_xp.to_host(ours.weight.data)[padding_idx])
    compare_with_torch(torch, backend, ours, theirs, idx)


def test_embedding_gradcheck(backend):
    """Without padding_idx (whose row deliberately gets no gradient, as PyTorch's, though it is read)."""
    idx = on(backend, np.array([[0, 2, 2], [4, 0, 1]]), dtype=None)
    assert nu_xp.gradcheck(nu_xp.Embedding(5, 3, seed=0, backend=backend), idx) < 1e-6


def test_the_standard_scatter_add_equals_the_native_one(backend):
    ops = nu_xp.backends.ops_for(backend)
    generic = nu_xp.backends.Ops.index_add
    table = ops.asarray(np.zeros((6, 2)), device=ops.default_device())
    idx = ops.asarray(np.array([1, 1, 5, 0, 1]), device=ops.default_device())
    vals = ops.asarray(np.arange(10.0).reshape(5, 2), device=ops.default_device())
    expected = np.zeros((6, 2))
    np.add.at(expected, [1, 1, 5, 0, 1], np.arange(10.0).reshape(5, 2))
    np.testing.assert_array_equal(nu_xp.to_host(generic(ops, table, idx, vals)), expected)
    np.testing.assert_array_equal(nu_xp.to_host(ops.index_add(table, idx, vals)), expected)


@pytest.mark.parametrize("width", [(), (3,), (2, 4)])
def test_scatter_add_with_many_repeats_equals_numpy_add_at(backend, width):
    """Random rows with many repeats, values of any trailing shape, a table that is not zero, an inf and a NaN
    (each stays in its own row), an empty index list: every backend's ``index_add`` equals ``np.add.at``."""
    ops = nu_xp.backends.ops_for(backend)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 7, size=300)
    values = rng.normal(size=(300, *width))
    values[5], values[9] = np.inf, np.nan
    table = rng.normal(size=(7, *width))
    for idx, vals in ((rows, values), (rows[:0], values[:0])):
        expected = table.copy()
        np.add.at(expected, idx, vals)
        got = host(ops.index_add(on(backend, table), on(backend, idx, dtype=None), on(backend, vals)))
        finite = np.isfinite(expected)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        assert_close(got[finite], expected[finite])


def test_bad_indices(backend):
    emb = nu_xp.Embedding(4, 2, backend=backend)
    with pytest.raises(TypeError, match="integer indices"):
        emb(on(backend, np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 4\), got values from -1 to 2"):
        emb(on(backend, np.array([0, -1, 2]), dtype=None))
    with pytest.raises(ValueError, match="got values from 0 to 4"):
        emb(on(backend, np.array([0, 4]), dtype=None))
    with pytest.raises(ValueError, match="padding_idx"):
        nu_xp.Embedding(4, 2, padding_idx=4)
    y = emb(on(backend, np.array([1, 2]), dtype=None))
    assert tuple(y.shape) == (2, 2) and emb.backward(nu_xp.backends.ops_of(y).xp.ones_like(y)) is None
