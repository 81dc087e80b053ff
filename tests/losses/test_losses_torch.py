"""Every loss and every reduction against ``torch.nn`` (values and dL/dpred, through autograd), and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import host, on

R = np.random.default_rng(0)
LOGITS = R.normal(size=(6, 4)) * 3
LOGITS_ND = R.normal(size=(3, 4, 2, 5))
LABELS = np.array([0, 3, 1, 1, 2, 3])
LABELS_IGNORED = np.array([0, -100, 1, 2, -100, 3])
LABELS_ND = R.integers(0, 4, size=(3, 2, 5))
PROBS = R.dirichlet(np.ones(4), size=6)
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])

CASES = [
    # name, kwargs, pred, target
    ("CrossEntropyLoss", {}, LOGITS, LABELS),
    ("CrossEntropyLoss", {"weight": WEIGHT}, LOGITS, LABELS),
    ("CrossEntropyLoss", {"ignore_index": -100}, LOGITS, LABELS_IGNORED),
    ("CrossEntropyLoss", {"ignore_index": 1, "weight": WEIGHT}, LOGITS, LABELS),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, LOGITS, LABELS_IGNORED),
    ("CrossEntropyLoss", {"label_smoothing": 0.2, "weight": WEIGHT}, LOGITS, LABELS),
    ("CrossEntropyLoss", {}, LOGITS_ND, LABELS_ND),
    ("CrossEntropyLoss", {"weight": WEIGHT, "label_smoothing": 0.05}, LOGITS_ND, LABELS_ND),
    ("CrossEntropyLoss", {}, LOGITS, PROBS),
    ("CrossEntropyLoss", {"weight": WEIGHT, "label_smoothing": 0.1}, LOGITS, PROBS),
    ("NLLLoss", {}, np.log(PROBS), LABELS),
    ("NLLLoss", {"weight": WEIGHT, "ignore_index": 3}, np.log(PROBS), LABELS),
    ("BCEWithLogitsLoss", {}, LOGITS, (R.random((6, 4)) > 0.5) * 1.0),
    ("BCEWithLogitsLoss", {"pos_weight": np.array([1.0, 3.0, 0.5, 2.0])}, LOGITS, R.random((6, 4))),
    ("BCELoss", {}, PROBS, (R.random((6, 4)) > 0.5) * 1.0),
    ("MSELoss", {}, LOGITS, R.normal(size=(6, 4))),
    ("L1Loss", {}, LOGITS, R.normal(size=(6, 4))),
    ("HuberLoss", {}, LOGITS, R.normal(size=(6, 4))),
    ("HuberLoss", {"delta": 0.5}, LOGITS, R.normal(size=(6, 4))),
]


def torch_args(torch, kwargs):
    out = {}
    for k, v in kwargs.items():
        out[k] = torch.tensor(v) if isinstance(v, np.ndarray) else v
    return out


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("name", "kwargs", "pred", "target"), CASES)
def test_value_and_gradient_equal_torch(torch, backend, name, kwargs, pred, target, reduction):
    theirs = getattr(torch.nn, name)(reduction=reduction, **torch_args(torch, kwargs))
    pt = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    value_t = theirs(pt, tt)
    upstream = R.normal(size=tuple(value_t.shape))
    value_t.backward(torch.tensor(upstream) if reduction == "none" else None)
    ours = getattr(nu_xp, name)(reduction=reduction, **kwargs)
    value = ours(on(backend, pred), on(backend, target, dtype=None if target.dtype.kind == "i" else "float64"))
    grad = ours.backward(on(backend, upstream) if reduction == "none" else None)
    np.testing.assert_allclose(host(value), value_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(host(grad), pt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize(("name", "kwargs", "pred", "target"), CASES[::3])
def test_gradcheck(backend, name, kwargs, pred, target, reduction):
    loss = getattr(nu_xp, name)(reduction=reduction, **kwargs)
    target_b = on(backend, target, dtype=None if target.dtype.kind == "i" else "float64")
    assert nu_xp.gradcheck(loss, on(backend, pred), target_b) < 1e-6


def test_all_ignored_gives_nan_without_a_warning(backend):
    loss = nu_xp.CrossEntropyLoss(ignore_index=0)
    value = loss(on(backend, LOGITS[:2]), on(backend, np.array([0, 0]), dtype=None))
    assert np.isnan(float(host(value)))


def test_reduction_errors(backend):
    with pytest.raises(ValueError, match="reduction must be one of"):
        nu_xp.MSELoss(reduction="avg")
    loss = nu_xp.MSELoss(reduction="none")
    loss(on(backend, np.ones((2, 3))), on(backend, np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"needs grad = dL/d\(value\) of the value's shape \(2, 3\)"):
        loss.backward()
