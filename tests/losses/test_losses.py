"""Losses: values equal PyTorch's, backward against finite differences and autograd, stability, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import nu_xp
from tests.helpers import host, on

TOL = 1e-6


def _cases(rng):
    """(loss, pred, target, torch function name, target-is-labels)."""
    probs = rng.uniform(0.02, 0.98, size=(6, 3))
    binary = (rng.uniform(size=(6, 3)) > 0.5).astype(float)
    soft = rng.dirichlet(np.ones(4), size=6)
    return [
        (nu_xp.MSELoss(), rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), "mse_loss"),
        (nu_xp.BCELoss(), probs, binary, "binary_cross_entropy"),
        (nu_xp.BCELoss(), probs, rng.uniform(size=(6, 3)), "binary_cross_entropy"),
        (nu_xp.BCEWithLogitsLoss(), rng.normal(size=(6, 3)) * 3, binary, "binary_cross_entropy_with_logits"),
        (nu_xp.CrossEntropyLoss(), rng.normal(size=(6, 4)) * 3, rng.integers(0, 4, size=6), "cross_entropy"),
        (nu_xp.CrossEntropyLoss(), rng.normal(size=(6, 4)) * 3, soft, "cross_entropy"),
        (nu_xp.CrossEntropyLoss(), rng.normal(size=(6, 4)), np.eye(4)[rng.integers(0, 4, size=6)], "cross_entropy"),
    ]


CASE_IDS = ["mse", "bce-binary", "bce-soft", "bce-logits", "ce-labels", "ce-probs", "ce-onehot"]


def _target_on(backend, t):
    return on(backend, t, dtype=None if np.asarray(t).dtype.kind == "i" else "float64")


# --8<-- [start:cross_entropy_gradcheck]
@pytest.mark.parametrize("case", range(7), ids=CASE_IDS)
def test_loss_gradcheck(backend, rng, case):
    loss, pred, target, _ = _cases(rng)[case]
    assert nu_xp.gradcheck(loss, on(backend, pred), _target_on(backend, target)) < TOL


# --8<-- [end:cross_entropy_gradcheck]


@pytest.mark.parametrize("case", range(7), ids=CASE_IDS)
def test_loss_matches_torch_value_and_autograd(backend, torch, rng, case):
    loss, pred, target, fn = _cases(rng)[case]
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    ref = getattr(torch.nn.functional, fn)(p, t)
    ref.backward()
    value = loss.forward(on(backend, pred), _target_on(backend, target))
    assert tuple(value.shape) == ()
    np.testing.assert_allclose(float(host(value)), ref.item(), rtol=1e-12)
    np.testing.assert_allclose(host(loss.backward()), p.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_loss_classes_match_torch_module_names(torch):
    for name in ("MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"):
        assert hasattr(torch.nn, name) and issubclass(getattr(nu_xp, name), nu_xp.Layer)


def test_backward_scales_by_upstream_grad(rng):
    loss = nu_xp.MSELoss()
    pred, target = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    loss(pred, target)
    scaled = loss.backward(2.0)
    loss(pred, target)
    np.testing.assert_allclose(scaled, 2.0 * loss.backward())


def test_loss_keeps_float32(backend, rng):
    pred = on(backend, rng.normal(size=(4, 3)), dtype="float32")
    for loss, target in [
        (nu_xp.MSELoss(), on(backend, rng.normal(size=(4, 3)))),  # float64 target is cast
        (nu_xp.BCEWithLogitsLoss(), on(backend, np.ones((4, 3)), dtype=None)),
        (nu_xp.CrossEntropyLoss(), on(backend, np.array([0, 1, 2, 0]), dtype=None)),
    ]:
        assert nu_xp.backends.dtype_name(loss(pred, target).dtype) == "float32"
        assert nu_xp.backends.dtype_name(loss.backward().dtype) == "float32"


# ------------------------------------------------------------------ stability


EXTREME = np.array([[-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4]], dtype=np.float32)


def _check_finite(loss, pred, target):
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value = float(host(loss(pred, target)))
        grad = host(loss.backward())
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    return value, grad


def test_extreme_logits_are_stable(backend):
    x = on(backend, EXTREME, dtype="float32")
    for t in (np.zeros_like(EXTREME), np.ones_like(EXTREME)):
        _check_finite(nu_xp.BCEWithLogitsLoss(), x, on(backend, t, dtype="float32"))
        _check_finite(nu_xp.MSELoss(), x, on(backend, t, dtype="float32"))
    value, _ = _check_finite(nu_xp.CrossEntropyLoss(), x, on(backend, np.array([0]), dtype=None))
    np.testing.assert_allclose(value, 2e4, rtol=1e-6)  # log-sum-exp: 1e4 - (-1e4)


def test_bce_on_saturated_probabilities_is_finite(backend, torch):
    p = np.array([[0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 1e-7]], dtype=np.float32)
    t = np.array([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    value, _ = _check_finite(nu_xp.BCELoss(), on(backend, p, dtype="float32"), on(backend, t, dtype="float32"))
    ref = torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t))
    np.testing.assert_allclose(value, ref.item(), rtol=1e-5)


def test_bce_rejects_non_probabilities():
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\].*BCEWithLogitsLoss"):
        nu_xp.BCELoss()(np.array([[1.5]]), np.array([[1.0]]))


@given(
    arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(2, 5)), elements=st.floats(-1e4, 1e4, width=32)),
    st.integers(0, 2**31 - 1),
)
def test_property_losses_finite_for_extreme_values(x, seed):
    r = np.random.default_rng(seed)
    t01 = (r.uniform(size=x.shape) > 0.5).astype(np.float32)
    labels = r.integers(0, x.shape[1], size=x.shape[0])
    _check_finite(nu_xp.BCEWithLogitsLoss(), x, t01)
    _check_finite(nu_xp.MSELoss(), x, t01)
    _check_finite(nu_xp.CrossEntropyLoss(), x, labels)
    _check_finite(nu_xp.BCELoss(), nu_xp.Sigmoid()(x), t01)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 4)), elements=st.floats(-20, 20)),
    st.integers(0, 2**31 - 1),
)
def test_property_losses_gradcheck(x, seed):
    r = np.random.default_rng(seed)
    t = r.uniform(size=x.shape)
    assert nu_xp.gradcheck(nu_xp.MSELoss(), x, t) < TOL
    assert nu_xp.gradcheck(nu_xp.BCEWithLogitsLoss(), x, t) < TOL
    assert nu_xp.gradcheck(nu_xp.CrossEntropyLoss(), x, r.integers(0, x.shape[1], size=x.shape[0])) < TOL
    assert nu_xp.gradcheck(nu_xp.BCELoss(), np.clip(nu_xp.Sigmoid()(x), 0.01, 0.99), t) < TOL


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("loss", [nu_xp.MSELoss(), nu_xp.BCELoss(), nu_xp.BCEWithLogitsLoss()], ids=type)
def test_shape_mismatch_names_both_shapes(backend, loss):
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        loss(on(backend, np.full((4, 1), 0.5)), on(backend, np.ones(4)))


def test_cross_entropy_errors(backend):
    loss = nu_xp.CrossEntropyLoss()
    logits = on(backend, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 3\)"):
        loss(logits, on(backend, np.zeros((3, 3))))
    with pytest.raises(ValueError, match=r"needs labels of shape \(3,\), got \(2,\)"):
        loss(logits, on(backend, np.array([0, 1]), dtype=None))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        loss(logits, on(backend, np.array([0, 1, 4]), dtype=None))
    with pytest.raises(TypeError, match="integer class labels"):
        loss(logits, on(backend, np.array([0.0, 1.0, 2.0])))
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\)"):
        loss(on(backend, np.zeros(4)), on(backend, np.array([1]), dtype=None))


def test_target_on_another_backend_is_a_type_error(backend):
    other = "array_api_strict" if backend == "numpy" else "numpy"
    pytest.importorskip(other)
    with pytest.raises(TypeError, match="target is .* but pred is"):
        nu_xp.MSELoss()(on(backend, np.ones((2, 1))), on(other, np.ones((2, 1))))
    with pytest.raises(TypeError, match="target must be an array"):
        nu_xp.MSELoss()(on(backend, np.ones((2, 1))), [[1.0], [1.0]])


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        nu_xp.MSELoss().backward()


def test_loss_value_is_a_0d_array(backend, rng):
    pred = on(backend, rng.normal(size=(3, 2)))
    for loss, target in [
        (nu_xp.MSELoss(), pred),
        (nu_xp.BCEWithLogitsLoss(), pred),
        (nu_xp.BCELoss(), nu_xp.Sigmoid()(pred)),
        (nu_xp.CrossEntropyLoss(), on(backend, np.array([0, 1, 1]), dtype=None)),
    ]:
        value = loss(pred if not isinstance(loss, nu_xp.BCELoss) else target, target)
        assert nu_xp.backends.ops_of(value).name == backend
        assert tuple(value.shape) == ()


def test_whole_model_gradients_match_torch_autograd(backend, torch, rng):
    """A Sequential + CrossEntropyLoss step gives every parameter the gradient torch.nn computes."""
    model = nu_xp.Sequential(
        nu_xp.Linear(5, 7, seed=0, backend=backend, dtype="float64"),
        nu_xp.Tanh(),
        nu_xp.Linear(7, 6, seed=1, backend=backend, dtype="float64"),
        nu_xp.ReLU(),
        nu_xp.Linear(6, 4, seed=2, backend=backend, dtype="float64"),
    )
    twin = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 6), torch.nn.ReLU(), torch.nn.Linear(6, 4)
    ).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x, labels = rng.normal(size=(9, 5)), rng.integers(0, 4, size=9)
    loss = nu_xp.CrossEntropyLoss()
    value = loss(model(on(backend, x)), on(backend, labels, dtype=None))
    model.backward(loss.backward())
    ref = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(labels))
    ref.backward()
    np.testing.assert_allclose(float(host(value)), ref.item(), rtol=1e-12)
    ref_grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(host(p.grad), ref_grads[name].grad.numpy(), rtol=1e-9, atol=1e-12)
