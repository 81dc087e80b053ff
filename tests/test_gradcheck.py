"""``gradcheck`` itself: it finds wrong backwards, and it measures the layer whatever state the caller's model is in."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import nu_xp
from nu_xp.gradcheck import numeric_gradients
from tests.helpers import host, on

TOL = 1e-6


def test_gradcheck_detects_a_wrong_backward(backend, rng):
    class WrongTanh(nu_xp.Tanh):
        def backward(self, grad):
            (y,) = self.saved_tensors()
            return grad * (1.0 - y)  # forgot the square

    assert nu_xp.gradcheck(WrongTanh(), on(backend, rng.normal(size=(3, 3)))) > 1e-2


def test_gradcheck_does_not_modify_the_layer(rng):
    layer = nu_xp.Linear(2, 2, seed=0)
    before = layer.state_dict()
    nu_xp.gradcheck(layer, rng.normal(size=(3, 2)))
    assert layer.weight.grad is None
    assert layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.state_dict()["weight"], before["weight"])


def test_gradcheck_input_errors():
    with pytest.raises(TypeError, match="Layer"):
        nu_xp.gradcheck(lambda x: x, np.ones(2))
    with pytest.raises(TypeError, match=r"\(pred, target\)"):
        nu_xp.gradcheck(nu_xp.MSELoss(), np.ones(2))


def test_stored_gradients_do_not_change_the_score(backend, rng):
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend)
    x = on(backend, rng.normal(size=(4, 3)))
    fresh = nu_xp.gradcheck(layer, x)
    xs = on(backend, rng.normal(size=(4, 3)), dtype=None)
    layer(nu_xp.asarray(xs, like=layer, dtype=layer.dtype))
    layer.backward(nu_xp.asarray(np.ones((4, 2)), like=layer, dtype=layer.dtype))  # grads now stored
    assert fresh < TOL and nu_xp.gradcheck(layer, x) < TOL
    model = nu_xp.Sequential(
        nu_xp.Linear(3, 4, seed=1, backend=backend), nu_xp.Tanh(), nu_xp.Linear(4, 1, seed=2, backend=backend)
    )
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    nu_xp.fit(model, nu_xp.MSELoss(), opt, rng.normal(size=(8, 3)), rng.normal(size=(8, 1)), epochs=3, progress=False)
    model(nu_xp.asarray(xs, like=model, dtype=model.dtype)[:, :3])
    model.backward(nu_xp.asarray(np.ones((4, 1)), like=model, dtype=model.dtype))  # leaves gradients behind
    model(nu_xp.asarray(xs, like=model, dtype=model.dtype))  # and a forward whose backward is pending
    assert nu_xp.gradcheck(model, x) < TOL


def test_the_callers_model_is_left_exactly_as_found(backend, rng):
    model = nu_xp.Sequential(
        nu_xp.Linear(3, 4, seed=1, backend=backend),
        nu_xp.Dropout(0.3, seed=4),
        nu_xp.Linear(4, 2, seed=2, backend=backend),
    )
    x = nu_xp.asarray(rng.normal(size=(5, 3)), like=model, dtype=model.dtype)
    model(x)
    model.backward(nu_xp.asarray(np.ones((5, 2)), like=model, dtype=model.dtype))
    snapshot = copy.deepcopy(model)  # a copy carries no pending forward: run both forward alike
    model(x)  # pending: gradcheck must not consume or replace what it kept
    snapshot(x)
    model.eval()
    snapshot.eval()
    g = nu_xp.asarray(np.ones((5, 2)), like=model, dtype=model.dtype)
    rng_state = model[1].get_extra_state()
    nu_xp.gradcheck(model, on(backend, rng.normal(size=(5, 3))))
    assert not model.training and model[1].get_extra_state() == rng_state
    for (name, p), q in zip(model.named_parameters(), snapshot.parameters()):
        np.testing.assert_array_equal(host(p.data), host(q.data), err_msg=name)
        np.testing.assert_array_equal(host(p.grad), host(q.grad), err_msg=name)
        assert p.data.dtype == q.data.dtype
    assert model.pending_backwards() == 1
    np.testing.assert_array_equal(host(model.backward(g)), host(snapshot.backward(g)))  # what it kept is intact
    for p, q in zip(model.parameters(), snapshot.parameters()):
        np.testing.assert_array_equal(host(p.grad), host(q.grad))


def test_gradcheck_takes_several_inputs(backend, rng):
    """Attention's (query, key, value) with a mask, and a recurrent layer's (x, hx): every floating input checked."""
    mha = nu_xp.MultiheadAttention(4, 2, seed=0, backend=backend, dtype="float64")
    q, k, v = (on(backend, rng.normal(size=shape)) for shape in ((3, 2, 4), (5, 2, 4), (5, 2, 4)))
    mask = nu_xp.asarray(np.array([[False] * 4 + [True], [False] * 5]), like=backend)
    assert nu_xp.gradcheck(mha, q, k, v) < 1e-6
    assert nu_xp.gradcheck(mha, q, k, v, mask) < 1e-6
    assert nu_xp.gradcheck(mha, q) < 1e-6  # self-attention: one input, one gradient
    x = on(backend, rng.normal(size=(4, 2, 3)))
    h0, c0 = on(backend, rng.normal(size=(2, 2, 5))), on(backend, rng.normal(size=(2, 2, 5)))
    lstm = nu_xp.LSTM(3, 5, num_layers=2, seed=0, backend=backend, dtype="float64")
    pairs = numeric_gradients(lstm, x, (h0, c0))
    assert {"input0", "input1", "input2"} <= set(pairs)  # x, h0 and c0 each checked
    assert nu_xp.gradcheck(lstm, x, (h0, c0)) < 1e-6
    gru = nu_xp.GRU(3, 5, bidirectional=True, seed=0, backend=backend, dtype="float64")
    assert nu_xp.gradcheck(gru, x, on(backend, rng.normal(size=(2, 2, 5)))) < 1e-6


def test_a_wrong_input_gradient_among_several_is_found(backend, rng):
    class Wrong(nu_xp.Layer):
        """y = a · b; a deliberately wrong dL/db."""

        def forward(self, a, b):
            self.save_for_backward(a, b)
            return a * b

        def backward(self, grad):
            _a, b = self.saved_tensors()
            return grad * b, grad * b  # dL/db should be grad * _a

    a, b = on(backend, rng.normal(size=(3,))), on(backend, rng.normal(size=(3,)))
    pairs = numeric_gradients(Wrong(), a, b)
    errors = {name: float(np.max(np.abs(x - y))) for name, (x, y) in pairs.items()}
    assert errors["input0"] < 1e-6 < errors["input1"]
