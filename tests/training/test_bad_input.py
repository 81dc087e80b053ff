"""Bad input to training and to backward: a clear error naming what was wrong, never a silent wrong answer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nu_xp
from tests.helpers import on


def model_and_opt(backend, n_out=1):
    model = nu_xp.Sequential(
        nu_xp.Linear(2, 4, seed=0, backend=backend), nu_xp.ReLU(), nu_xp.Linear(4, n_out, seed=1, backend=backend)
    )
    return model, nu_xp.optim.SGD(model.parameters(), lr=0.1)


X = np.random.default_rng(0).normal(size=(8, 2))
Y = np.random.default_rng(1).normal(size=(8, 1))


@pytest.mark.parametrize("where", ["x", "y", "val_x", "val_y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_the_data_is_refused_once(backend, where, bad):
    model, opt = model_and_opt(backend)
    data = {"x": X.copy(), "y": Y.copy(), "val_x": X.copy(), "val_y": Y.copy()}
    data[where][3, 0] = bad
    before = model.state_dict()
    name = {"x": "training x", "y": "training y", "val_x": "validation x", "val_y": "validation y"}[where]
    with pytest.raises(ValueError, match=f"{name} holds NaN or Inf.*check_inputs=False"):
        nu_xp.fit(
            model,
            nu_xp.MSELoss(),
            opt,
            data["x"],
            data["y"],
            epochs=1,
            progress=False,
            validation_data=(data["val_x"], data["val_y"]),
        )
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing trained


def test_check_inputs_false_trains_on_regardless():
    model, opt = model_and_opt("numpy")
    x = X.copy()
    x[0, 0] = np.nan
    with pytest.raises(nu_xp.NonFiniteLossError):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, x, Y, epochs=1, progress=False, check_inputs=False)
    history = nu_xp.fit(
        model, nu_xp.MSELoss(), opt, x, Y, epochs=1, progress=False, check_inputs=False, stop_on_nan=False
    )
    assert np.isnan(history["loss"][0])


def test_a_diverging_loss_stops_naming_epoch_and_step(backend):
    model, _ = model_and_opt(backend)
    opt = nu_xp.optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(nu_xp.NonFiniteLossError, match=r"at epoch \d+, step \d+") as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy says it overflowed: that is what diverging means
        nu_xp.fit(model, nu_xp.MSELoss(), opt, X * 1e10, Y, epochs=5, batch_size=2, progress=False, seed=0)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FloatingPointError)


@pytest.mark.parametrize("empty", ["train", "validation"])
def test_empty_data_is_refused(backend, empty):
    model, opt = model_and_opt(backend)
    x, y = (X[:0], Y[:0]) if empty == "train" else (X, Y)
    val = (X[:0], Y[:0]) if empty == "validation" else None
    with pytest.raises(ValueError, match="data is empty"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, x, y, epochs=1, progress=False, validation_data=val)


def test_an_optimizer_of_another_model_is_refused(backend):
    model, _ = model_and_opt(backend)
    _other, opt = model_and_opt(backend)
    with pytest.raises(ValueError, match="holds none of this model's parameters"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=1, progress=False)


def test_bce_targets_outside_0_1_are_refused(backend):
    p = on(backend, [[0.2], [0.7]])
    with pytest.raises(ValueError, match="target must hold values in \\[0, 1\\]"):
        nu_xp.BCELoss()(p, on(backend, [[0.0], [2.0]]))
    with pytest.raises(ValueError, match="target must hold values in \\[0, 1\\]"):
        nu_xp.BCELoss()(p, on(backend, [[-0.5], [1.0]]))


@pytest.mark.parametrize("name", ["lr", "momentum", "weight_decay"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), -float("inf")])
def test_non_finite_hyper_parameters_are_refused(name, value):
    model, _ = model_and_opt("numpy")
    kwargs = {"lr": 0.1, name: value}
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        nu_xp.optim.SGD(model.parameters(), **kwargs)
    with pytest.raises(ValueError, match="eps must be a finite number"):
        nu_xp.optim.Adam(model.parameters(), eps=float("inf"))


@pytest.mark.parametrize(
    "bad",
    [
        np.array(["2020-01-01"] * 8, dtype="datetime64[D]").reshape(8, 1),
        np.array([["a", "b"]] * 8),
        np.ones((8, 2), bool),
    ],
)
def test_non_numbers_are_refused(backend, bad):
    model, opt = model_and_opt(backend)
    with pytest.raises(TypeError, match="must hold real numbers"):
        nu_xp.fit(
            model,
            nu_xp.MSELoss(),
            opt,
            bad if bad.shape[1] == 2 else X,
            bad if bad.shape[1] == 1 else Y,
            epochs=1,
            progress=False,
        )


def test_cross_entropy_asks_for_integer_labels(backend):
    model, opt = model_and_opt(backend, n_out=3)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype=float)
    with pytest.raises(TypeError, match="CrossEntropyLoss needs integer class labels.*astype\\(int\\)"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, X, y, epochs=1, progress=False)
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, X, y.astype(int), epochs=1, progress=False)


@pytest.mark.parametrize(
    "layer", [nu_xp.ReLU, nu_xp.Sigmoid, nu_xp.Tanh, nu_xp.Softmax, lambda: nu_xp.Dropout(0.5, seed=0)]
)
def test_activation_backward_refuses_a_gradient_of_another_shape(backend, layer):
    act = layer()
    act(on(backend, np.ones((4, 2))))
    with pytest.raises(ValueError, match="grad has shape \\(4, 1\\), but the output had shape \\(4, 2\\)"):
        act.backward(on(backend, np.ones((4, 1))))


def test_linear_backward_refuses_a_gradient_of_another_shape(backend):
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend)
    layer(on(backend, np.ones((4, 3)), dtype=None))
    with pytest.raises(
        ValueError, match="Linear.backward: grad has shape \\(4, 3\\), but the output had shape \\(4, 2\\)"
    ):
        layer.backward(on(backend, np.ones((4, 3)), dtype=None))


def test_backward_refuses_a_gradient_of_another_backend(backend):
    other = "array_api_strict" if backend != "array_api_strict" else "numpy"
    pytest.importorskip(other)
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend)
    layer(on(backend, np.ones((4, 3)), dtype=None))
    with pytest.raises(TypeError, match="Linear.backward: grad is"):
        layer.backward(on(other, np.ones((4, 2)), dtype=None))
    relu = nu_xp.ReLU()
    relu(on(backend, np.ones((4, 2))))
    with pytest.raises(TypeError, match="ReLU.backward: grad is .* but the layer's output was"):
        relu.backward(on(other, np.ones((4, 2))))
