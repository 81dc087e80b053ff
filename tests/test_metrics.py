"""Metrics (nu_xp.metrics): streamed values equal the direct computation and scikit-learn's, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from nu_xp import metrics as nm

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
Y_XOR = np.array([0, 1, 1, 0], dtype=float)


def xor_model(seed):
    return nu_xp.Sequential(nu_xp.Linear(2, 8, seed=seed), nu_xp.Tanh(), nu_xp.Linear(8, 1, seed=seed + 100))


@pytest.mark.parametrize(
    ("name", "pred", "target", "expected"),
    [
        ("accuracy", [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], [1, 1, 1], 2 / 3),
        ("accuracy", [[0.1, 0.9], [0.8, 0.2]], [[0, 1], [1, 0]], 1.0),
        ("accuracy", [[0.9], [0.2], [0.6]], [[1.0], [1.0], [0.0]], 1 / 3),
        ("binary_accuracy", [[0.9, 0.1], [0.2, 0.7]], [[1.0, 0.0], [1.0, 1.0]], 3 / 4),
        ("mse", [[1.0], [2.0]], [[0.0], [4.0]], 2.5),
        ("mae", [[1.0], [2.0]], [[0.0], [4.0]], 1.5),
    ],
)
def test_metrics_values(backend, name, pred, target, expected):
    m = nm.make_metric(name)
    p = nu_xp.asarray(np.array(pred), like=backend)
    t = nu_xp.asarray(np.array(target), like=backend)
    m.update(p[:1, ...], t[:1, ...])
    m.update(p[1:, ...], t[1:, ...])
    assert m.result() == pytest.approx(expected)


def test_r2_matches_sklearn(backend):
    from sklearn.metrics import r2_score

    r = np.random.default_rng(0)
    t = r.normal(size=(50, 2))
    p = t + r.normal(scale=0.5, size=t.shape)
    m = nm.make_metric("r2")
    for i in range(0, 50, 16):
        m.update(nu_xp.asarray(p[i : i + 16], like=backend), nu_xp.asarray(t[i : i + 16], like=backend))
    assert m.result() == pytest.approx(r2_score(t, p), rel=1e-10)


def test_callable_metric_gets_host_arrays():
    seen = []

    def max_error(y_true, y_pred):
        seen.append((type(y_true), type(y_pred)))
        return float(np.max(np.abs(y_true - y_pred)))

    model = xor_model(0)
    history = nu_xp.fit(
        model,
        nu_xp.MSELoss(),
        nu_xp.optim.SGD(model, lr=0.1),
        X_XOR,
        Y_XOR,
        epochs=2,
        metrics=[max_error],
        validation_data=(X_XOR, Y_XOR),
        progress=False,
    )
    assert "max_error" in history and "val_max_error" in history
    assert all(t is np.ndarray for pair in seen for t in pair)


def test_metric_errors():
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        nm.make_metric("f1")
    with pytest.raises(TypeError, match="names or callables"):
        nm.make_metric(3)
