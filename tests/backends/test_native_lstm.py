"""Backends' own LSTM loops (``Ops.native_lstm``: NumPy's ``numpy_recurrent``, torch's oneDNN kernel) against
``LSTMCell``'s reference steps, on every configuration of the layer: stacked, bidirectional, batch first, without
biases, unbatched, an empty batch, a given initial state with gradients for it, gradients of the last state only,
frozen weights, float32 and float64 (where the backend's kernel takes them)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, on

CONFIGS = [
    dict(num_layers=1, bidirectional=False, batch_first=False, bias=True),
    dict(num_layers=2, bidirectional=True, batch_first=True, bias=True),
    dict(num_layers=3, bidirectional=False, batch_first=True, bias=False),
    dict(num_layers=1, bidirectional=True, batch_first=False, bias=False),
]


def both_ways(monkeypatch, backend, x, make, run):
    """``run(model)`` through the backend's own loop and through the reference cells: two lists of arrays."""
    ops = nu_xp.get_backend(backend).ops
    if not ops.native_lstm:
        pytest.skip(f"the {backend} backend has no LSTM loop of its own (Ops.native_lstm is False)")
    if not ops.lstm_supports(x):
        pytest.skip(f"the {backend} backend's LSTM kernel does not take {x.dtype} input of shape {tuple(x.shape)}")
    results = []
    for native in (True, False):
        monkeypatch.setattr(type(ops), "native_lstm", native)
        results.append(run(make()))
    return results


def assert_all_close(a_list, b_list):
    assert len(a_list) == len(b_list)
    for a, b in zip(a_list, b_list):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert_close(a, b)


def grads(model):
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize("config, dtype", list(itertools.product(CONFIGS, ["float32", "float64"])))
@pytest.mark.parametrize("batch", [5, 0])
def test_native_lstm_equals_the_reference_cells(monkeypatch, backend, config, dtype, batch):
    rng = np.random.default_rng(0)
    steps, width, hidden = 7, 3, 6
    shape = (batch, steps, width) if config["batch_first"] else (steps, batch, width)
    x = on(backend, rng.normal(size=shape), dtype)
    directions = 2 if config["bidirectional"] else 1
    h0 = on(backend, rng.normal(size=(config["num_layers"] * directions, batch, hidden)), dtype)
    c0 = on(backend, rng.normal(size=h0.shape), dtype)

    def make():
        return nu_xp.LSTM(width, hidden, seed=3, dtype=dtype, backend=backend, **config)

    def run(model):
        out, (h_n, c_n) = model(x, (h0, c0))
        g = np.random.default_rng(1)
        g_out, g_h, g_c = (on(backend, g.normal(size=a.shape), dtype) for a in (out, h_n, c_n))
        dx, (dh0, dc0) = model.backward((g_out, (g_h, g_c)))
        return [out, h_n, c_n, dx, dh0, dc0, *grads(model)]

    assert_all_close(*both_ways(monkeypatch, backend, x, make, run))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_native_lstm_with_gradients_of_the_last_state_only_and_unbatched(monkeypatch, backend, dtype):
    """No ``g_output``, only ``c_n``'s gradient (the backward starts from zeros), and an unbatched sequence."""
    x = on(backend, np.random.default_rng(2).normal(size=(9, 4)), dtype)

    def make():
        return nu_xp.LSTM(4, 5, num_layers=2, seed=0, dtype=dtype, backend=backend)

    def run(model):
        out, (h_n, c_n) = model(x)
        dx = model.backward((None, (None, nu_xp.get_backend(backend).xp.ones_like(c_n))))
        return [out, h_n, c_n, dx, *grads(model)]

    assert_all_close(*both_ways(monkeypatch, backend, x, make, run))


def test_native_lstm_leaves_frozen_weights_without_gradient_and_gives_each_bias_its_own(monkeypatch, backend):
    x = on(backend, np.random.default_rng(3).normal(size=(6, 2, 3)), "float32")

    def make():
        model = nu_xp.LSTM(3, 4, seed=0, backend=backend)
        model.weight_ih_l0.requires_grad = False
        return model

    def run(model):
        out, _ = model(x)
        dx = model.backward(nu_xp.get_backend(backend).xp.ones_like(out))
        assert model.weight_ih_l0.grad is None
        assert model.bias_ih_l0.grad is not model.bias_hh_l0.grad
        return [out, dx, model.weight_hh_l0.grad, model.bias_ih_l0.grad, model.bias_hh_l0.grad]

    assert_all_close(*both_ways(monkeypatch, backend, x, make, run))


def test_numpy_lstm_saturated_gates_stay_finite_and_warn_nothing(monkeypatch):
    """Pre-activations of ±1e4 (weights of 1e3): tanh saturates, nothing overflows, the results are the reference's."""
    x = np.full((5, 2, 3), 10.0, dtype="float32")

    def make():
        model = nu_xp.LSTM(3, 4, seed=0)
        for p in model.parameters():
            p.data[...] = np.sign(p.data) * 1e3
        return model

    def run(model):
        out, _ = model(x)
        dx = model.backward(np.ones_like(out))
        return [out, dx, *grads(model)]

    with np.errstate(all="raise"):
        native, reference = both_ways(monkeypatch, "numpy", x, make, run)
    assert all(np.isfinite(a).all() for a in native)
    assert_all_close(native, reference)


def test_torch_lstm_under_torch_no_grad_and_inference_mode_still_has_a_backward(backend):
    """oneDNN hands out its workspace only with torch's grad mode on: the forward turns it on for its call, and
    under ``torch.inference_mode`` (where it cannot) the layer steps the reference cells."""
    if backend != "torch":
        pytest.skip("about torch's own grad modes")
    import torch

    x = on(backend, np.random.default_rng(4).normal(size=(5, 3, 2)), "float32")
    results = []
    for mode in (torch.no_grad, torch.inference_mode, torch.enable_grad):
        model = nu_xp.LSTM(2, 3, seed=0, backend=backend)
        with mode():
            out, _ = model(x)
        dx = model.backward(torch.ones_like(out))
        results.append([out, dx, *grads(model)])
    assert_all_close(results[0], results[2])
    assert_all_close(results[1], results[2])
