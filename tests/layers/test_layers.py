"""Layers: forward values, backward against finite differences and PyTorch autograd, API."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nu_xp
from tests.helpers import assert_close, host, on

TOL = 1e-6


def activations():
    return [nu_xp.Sigmoid(), nu_xp.Tanh(), nu_xp.ReLU(), nu_xp.Softmax(), nu_xp.Softmax(axis=0), nu_xp.Identity()]


# ------------------------------------------------------------------ finite differences


# --8<-- [start:linear_gradcheck]
def test_linear_gradcheck(backend, rng):
    layer = nu_xp.Linear(4, 3, seed=0, backend=backend)
    assert nu_xp.gradcheck(layer, on(backend, rng.normal(size=(5, 4)))) < TOL


# --8<-- [end:linear_gradcheck]


# --8<-- [start:worked_example]
def test_worked_example_by_the_numbers(backend):
    """The numbers of "A worked example" in docs/backprop.md, computed by nu_xp."""
    f64 = {"backend": backend, "dtype": "float64"}
    model = nu_xp.Sequential(nu_xp.Linear(2, 2, **f64), nu_xp.ReLU(), nu_xp.Linear(2, 1, **f64))
    model[0].weight.data = on(backend, [[0.1, 0.2], [-0.3, 0.4]])
    model[0].bias.data = on(backend, [0.0, 0.1])
    model[2].weight.data = on(backend, [[0.5, -0.6]])
    model[2].bias.data = on(backend, [0.2])
    x, t = on(backend, [[1.0, 2.0]]), on(backend, [[1.0]])
    loss = nu_xp.MSELoss()
    y = model(x)
    assert_close(y, [[0.09]])
    assert_close(loss(y, t), 0.8281)
    g = loss.backward()  # dL/dy = 2 (y - t)
    assert_close(g, [[-1.82]])
    dx = model.backward(g)
    assert_close(model[2].weight.grad, [[-0.91, -1.092]])
    assert_close(model[2].bias.grad, [-1.82])
    assert_close(model[0].weight.grad, [[-0.91, -1.82], [1.092, 2.184]])
    assert_close(model[0].bias.grad, [-0.91, 1.092])
    assert_close(dx, [[-0.4186, 0.2548]])
    nu_xp.optim.SGD(model.parameters(), lr=0.1).step()
    assert_close(model[2].weight.data, [[0.591, -0.4908]])


# --8<-- [end:worked_example]


@pytest.mark.parametrize("lead", [(7,), (2, 3)])
def test_linear_with_one_input_feature_is_the_product_exactly(backend, rng, lead):
    """``Linear(1, n)`` (its forward an outer product by broadcasting) gives exactly ``x Wᵀ + b`` in float32, for a
    batch and for leading axes, and its gradients pass finite differences in float64."""
    layer = nu_xp.Linear(1, 5, seed=0, backend=backend, dtype="float32")
    x = on(backend, rng.normal(size=(*lead, 1)), dtype="float32")
    w, b = host(layer.weight.data), host(layer.bias.data)
    want = host(x) @ w.T  # NumPy's float32 product: each sum one term, rounded once
    want += b
    np.testing.assert_array_equal(host(layer(x)), want)
    layer64 = nu_xp.Linear(1, 5, seed=0, backend=backend)
    assert nu_xp.gradcheck(layer64, on(backend, rng.normal(size=(*lead, 1)))) < TOL


def test_linear_without_bias_gradcheck(backend, rng):
    layer = nu_xp.Linear(4, 3, bias=False, seed=0, backend=backend)
    assert layer.bias is None and list(dict(layer.named_parameters())) == ["weight"]
    assert nu_xp.gradcheck(layer, on(backend, rng.normal(size=(5, 4)))) < TOL


def test_linear_batched_leading_dims_gradcheck(backend, rng):
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend)
    x = on(backend, rng.normal(size=(2, 4, 3)))
    assert tuple(layer(x).shape) == (2, 4, 2)
    assert nu_xp.gradcheck(layer, x) < TOL


@pytest.mark.parametrize("index", range(6))
def test_activation_gradcheck(backend, rng, index):
    layer = activations()[index]
    x = rng.normal(size=(4, 5)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    assert nu_xp.gradcheck(layer, on(backend, x)) < TOL


def test_dropout_gradcheck_uses_one_mask(backend, rng):
    layer = nu_xp.Dropout(0.4, seed=3)
    assert nu_xp.gradcheck(layer, on(backend, rng.normal(size=(6, 5)))) < TOL


def test_sequential_gradcheck(backend, rng):
    model = nu_xp.Sequential(
        nu_xp.Linear(3, 5, seed=0, backend=backend),
        nu_xp.Tanh(),
        nu_xp.Linear(5, 4, seed=1, backend=backend),
        nu_xp.Sigmoid(),
        nu_xp.Linear(4, 3, seed=2, backend=backend),
        nu_xp.Softmax(),
    )
    assert nu_xp.gradcheck(model, on(backend, rng.normal(size=(4, 3)))) < TOL


# ------------------------------------------------------------------ PyTorch autograd


def _torch_layer_grads(torch, torch_module, x, g):
    xt = torch.tensor(x, requires_grad=True)
    out = torch_module(xt)
    out.backward(torch.tensor(g))
    return out.detach().numpy(), xt.grad.numpy()


def test_linear_matches_torch_autograd(backend, torch, rng):
    layer = nu_xp.Linear(4, 3, seed=7, backend=backend, dtype="float64")
    ref = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(np.array(host(layer.weight.data))))  # a writeable copy (JAX's is not)
        ref.bias.copy_(torch.from_numpy(np.array(host(layer.bias.data))))
    x, g = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    out_ref, dx_ref = _torch_layer_grads(torch, ref, x, g)
    out = layer(on(backend, x))
    dx = layer.backward(on(backend, g))
    np.testing.assert_allclose(host(out), out_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(dx), dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(layer.weight.grad), ref.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(layer.bias.grad), ref.bias.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["Sigmoid", "Tanh", "ReLU", "Softmax", "Identity"])
def test_activation_matches_torch_autograd(backend, torch, rng, name):
    ours = getattr(nu_xp, name)()
    ref = {"Softmax": torch.nn.Softmax(dim=-1)}.get(name) or getattr(torch.nn, name)()
    x = rng.normal(size=(5, 4)) * 4
    g = rng.normal(size=(5, 4))
    out_ref, dx_ref = _torch_layer_grads(torch, ref, x, g)
    out = ours(on(backend, x))
    dx = ours.backward(on(backend, g))
    np.testing.assert_allclose(host(out), out_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(dx), dx_ref, rtol=1e-10, atol=1e-14)


def test_gradients_accumulate_until_zero_grad(backend, rng):
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend, dtype="float64")
    x, g = on(backend, rng.normal(size=(4, 3))), on(backend, rng.normal(size=(4, 2)))
    layer(x)
    layer.backward(g)
    once = host(layer.weight.grad).copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(host(layer.weight.grad), 2 * once)
    layer.zero_grad()
    assert layer.weight.grad is None and layer.bias.grad is None


# ------------------------------------------------------------------ numerical stability


@pytest.mark.parametrize("name", ["Sigmoid", "Tanh", "ReLU", "Softmax"])
def test_extreme_inputs_are_finite_without_warnings(backend, name):
    layer = getattr(nu_xp, name)()
    x = on(backend, [[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype="float32")
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = host(layer(x))
        g = host(layer.backward(on(backend, np.ones((1, 5)), dtype="float32")))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))


def test_sigmoid_values_at_extremes(backend):
    y = host(nu_xp.Sigmoid()(on(backend, [-1e4, -100.0, 0.0, 100.0, 1e4], dtype="float32")))
    np.testing.assert_array_equal(y[[0, 2, 4]], [0.0, 0.5, 1.0])
    assert 0 < y[1] < 1e-40 or y[1] == 0.0  # float32 underflows gracefully
    assert y[3] == 1.0


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 5)),
        elements=st.floats(-30, 30, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
    )
)
def test_property_activations_gradcheck(x):
    for layer in activations():
        assert nu_xp.gradcheck(layer, x) < 1e-5


@given(
    n=st.integers(1, 4),
    fan_in=st.integers(1, 5),
    fan_out=st.integers(1, 5),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
)
def test_property_linear_gradcheck(n, fan_in, fan_out, scale):
    x = np.random.default_rng(n * 31 + fan_in).normal(size=(n, fan_in)) * scale
    assert nu_xp.gradcheck(nu_xp.Linear(fan_in, fan_out, seed=fan_out), x) < TOL


@given(arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 6)), elements=st.floats(-1e4, 1e4, width=32)))
def test_property_extremes_stay_finite(x):
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for layer in activations():
            assert np.all(np.isfinite(layer(x)))
            assert np.all(np.isfinite(layer.backward(np.ones_like(x))))


# ------------------------------------------------------------------ initialization


@pytest.mark.parametrize("init", ["auto", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "zeros"])
def test_same_seed_same_bits_on_every_backend(backend, init):
    ref = nu_xp.Linear(5, 4, init=init, seed=42, backend="numpy")
    layer = nu_xp.Linear(5, 4, init=init, seed=42, backend=backend)
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(host(p.data), host(dict(ref.named_parameters())[name].data))


def test_init_schemes_have_the_documented_scale():
    fan_in, fan_out = 400, 300
    w = {
        k: host(nu_xp.Linear(fan_in, fan_out, init=k, seed=0, dtype="float64").weight.data)
        for k in ("auto", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal")
    }
    assert np.abs(w["auto"]).max() <= 1 / np.sqrt(fan_in)
    np.testing.assert_allclose(w["xavier_uniform"].std(), np.sqrt(2 / (fan_in + fan_out)), rtol=0.02)
    np.testing.assert_allclose(w["xavier_normal"].std(), np.sqrt(2 / (fan_in + fan_out)), rtol=0.02)
    np.testing.assert_allclose(w["he_uniform"].std(), np.sqrt(2 / fan_in), rtol=0.02)
    np.testing.assert_allclose(w["he_normal"].std(), np.sqrt(2 / fan_in), rtol=0.02)
    assert not host(nu_xp.Linear(4, 3, init="he_normal", seed=0).bias.data).any()


def test_seeds_differ_and_manual_seed_reproduces():
    a = host(nu_xp.Linear(3, 3, seed=1).weight.data)
    b = host(nu_xp.Linear(3, 3, seed=2).weight.data)
    assert not np.array_equal(a, b)
    nu_xp.manual_seed(7)
    c = host(nu_xp.Linear(3, 3).weight.data)
    nu_xp.manual_seed(7)
    d = host(nu_xp.Linear(3, 3).weight.data)
    np.testing.assert_array_equal(c, d)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_features": 0, "out_features": 2}, ValueError, "in_features must be a positive integer"),
        ({"in_features": 2, "out_features": 2.5}, ValueError, "out_features"),
        ({"in_features": 2, "out_features": 2, "init": "magic"}, ValueError, "init must be one of"),
        ({"in_features": 2, "out_features": 2, "bias": "yes"}, TypeError, "bias"),
        ({"in_features": 2, "out_features": 2, "seed": -1}, ValueError, "seed"),
    ],
)
def test_linear_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        nu_xp.Linear(**kwargs)


# ------------------------------------------------------------------ Dropout


def test_dropout_train_and_eval(backend):
    layer = nu_xp.Dropout(0.5, seed=0)
    x = on(backend, np.ones((200, 50)))
    y = host(layer(x))
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    g = host(layer.backward(on(backend, np.ones((200, 50)))))
    np.testing.assert_array_equal(g, y)
    layer.eval()
    np.testing.assert_array_equal(host(layer(x)), 1.0)
    np.testing.assert_array_equal(host(layer.backward(x)), 1.0)


def test_dropout_masks_identical_across_backends(backend):
    a = host(nu_xp.Dropout(0.3, seed=5)(on("numpy", np.ones((4, 6)))))
    b = host(nu_xp.Dropout(0.3, seed=5)(on(backend, np.ones((4, 6)))))
    np.testing.assert_array_equal(a, b)


def test_dropout_edge_probabilities():
    x = np.ones((3, 3))
    np.testing.assert_array_equal(nu_xp.Dropout(0.0)(x), x)
    np.testing.assert_array_equal(nu_xp.Dropout(1.0)(x), 0.0)
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="Dropout probability p"):
            nu_xp.Dropout(bad)


# ------------------------------------------------------------------ Sequential API


def test_sequential_container_api(backend):
    model = nu_xp.Sequential(nu_xp.Linear(2, 4, seed=0, backend=backend), nu_xp.ReLU())
    model.append(nu_xp.Linear(4, 1, seed=1, backend=backend))
    assert len(model) == 3
    assert isinstance(model[0], nu_xp.Linear) and isinstance(model[-1], nu_xp.Linear)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    assert list(dict(model.named_parameters())) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model.parameters()[2] is model[2].weight
    assert len(model[:2]) == 2
    assert model.num_parameters() == 2 * 4 + 4 + 4 + 1


def test_nested_sequential_names():
    inner = nu_xp.Sequential(nu_xp.Linear(2, 2, seed=0), nu_xp.Tanh())
    outer = nu_xp.Sequential(inner, nu_xp.Linear(2, 1, seed=1))
    assert list(dict(outer.named_parameters())) == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]


def test_sequential_refuses_non_layers_and_mixed_backends():
    with pytest.raises(TypeError, match="Sequential takes layers"):
        nu_xp.Sequential(nu_xp.Linear(2, 2), lambda x: x)
    with pytest.raises(ValueError, match=r"move it first with layer.to"):
        nu_xp.Sequential(nu_xp.Linear(2, 2), nu_xp.Linear(2, 2, dtype="float64"))


def test_sequential_repr_is_a_summary():
    model = nu_xp.Sequential(nu_xp.Linear(2, 8, seed=0), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=1), nu_xp.Sigmoid())
    text = repr(model)
    assert "(0): Linear(in_features=2, out_features=8, bias=True)" in text
    assert "# 24 params" in text and "# 9 params" in text
    assert "(1): Tanh()" in text
    assert "total 33 parameters, float32 on numpy (cpu)" in text


def test_train_eval_propagates():
    model = nu_xp.Sequential(nu_xp.Linear(2, 2), nu_xp.Dropout(0.5))
    assert model.eval() is model
    assert not model[1].training
    model.train()
    assert model[1].training


def test_predict_uses_eval_mode_and_batches(backend, rng):
    model = nu_xp.Sequential(
        nu_xp.Linear(3, 4, seed=0, backend=backend), nu_xp.Dropout(0.9), nu_xp.Linear(4, 2, seed=1, backend=backend)
    )
    x = rng.normal(size=(10, 3))
    full = host(model.predict(x))
    assert_close(model.predict(x, batch_size=3), full)  # another batch shape may take another BLAS kernel
    np.testing.assert_allclose(host(model.predict(x)), full)  # no dropout: deterministic
    assert model.training
    assert nu_xp.backends.ops_of(model.predict(x)).name == backend


def test_backward_before_forward_is_clear():
    with pytest.raises(RuntimeError, match="before forward"):
        nu_xp.Linear(2, 2).backward(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nu_xp.Tanh().backward(np.ones((1, 2)))


def test_integer_input_to_activation_is_cast():
    y = nu_xp.Sigmoid()(np.array([[0, 1]]))
    assert y.dtype == np.float32
    with pytest.raises(TypeError, match="real numbers"):
        nu_xp.Tanh()(np.array([[True]]))


def test_backward_without_input_grad_gives_same_parameter_grads(backend, rng):
    def model():
        return nu_xp.Sequential(
            nu_xp.Linear(3, 4, seed=0, backend=backend), nu_xp.Tanh(), nu_xp.Linear(4, 2, seed=1, backend=backend)
        )

    x, g = on(backend, rng.normal(size=(5, 3)), dtype="float32"), on(backend, rng.normal(size=(5, 2)), dtype="float32")
    a, b = model(), model()
    a(x)
    assert a.backward(g) is not None
    b(x)
    assert b.backward(g, input_grad=False) is None
    for name, p in a.named_parameters():
        np.testing.assert_array_equal(host(p.grad), host(dict(b.named_parameters())[name].grad))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10", True])
def test_predict_batch_size_is_validated(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None"):
        nu_xp.Linear(2, 1).predict(np.ones((3, 2)), batch_size=bad)


def test_gradcheck_moves_host_inputs_to_the_layer_backend(backend, rng):
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend)
    assert nu_xp.gradcheck(layer, rng.normal(size=(4, 3))) < TOL
