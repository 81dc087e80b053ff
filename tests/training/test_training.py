"""fit, History, metrics, callbacks, progress and interrupts."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from nu_xp import training
from tests.helpers import assert_close, host

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
Y_XOR = np.array([0, 1, 1, 0], dtype=float)


def xor_model(seed, backend="numpy"):
    return nu_xp.Sequential(
        nu_xp.Linear(2, 8, seed=seed, backend=backend),
        nu_xp.Tanh(),
        nu_xp.Linear(8, 1, seed=seed + 100, backend=backend),
    )


def fit_xor(seed, backend="numpy", epochs=400, progress=False, **kwargs):
    model = xor_model(seed, backend)
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.05)
    history = nu_xp.fit(
        model,
        nu_xp.BCEWithLogitsLoss(),
        opt,
        X_XOR,
        Y_XOR,
        epochs=epochs,
        seed=seed,
        metrics=["accuracy"],
        progress=progress,
        **kwargs,
    )
    return model, history


def test_xor_reaches_full_accuracy_for_most_seeds(backend):
    solved = 0
    for seed in range(10):
        model, history = fit_xor(seed, backend)
        pred = host(model.predict(X_XOR))[:, 0] > 0
        solved += bool(np.all(pred == (Y_XOR > 0.5))) and history["accuracy"][-1] == 1.0
    assert solved >= 9


def test_same_seed_same_history(backend):
    x = np.random.default_rng(0).normal(size=(64, 3))
    y = np.random.default_rng(1).integers(0, 3, size=64)

    def run():
        model = nu_xp.Sequential(
            nu_xp.Linear(3, 8, seed=0, backend=backend),
            nu_xp.ReLU(),
            nu_xp.Dropout(0.2, seed=1),
            nu_xp.Linear(8, 3, seed=2, backend=backend),
        )
        opt = nu_xp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return nu_xp.fit(
            model,
            nu_xp.CrossEntropyLoss(),
            opt,
            x,
            y,
            epochs=5,
            batch_size=16,
            seed=3,
            validation_data=(x[:10], y[:10]),
            metrics=["accuracy"],
            progress=False,
        )

    first, second = run(), run()
    assert first == second
    assert set(first.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(first) == 5 and first.epoch == [0, 1, 2, 3, 4]


def test_shuffle_seed_changes_the_order():
    x = np.random.default_rng(0).normal(size=(64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])

    def run(seed):
        model = nu_xp.Sequential(nu_xp.Linear(3, 1, seed=0))
        return nu_xp.fit(
            model,
            nu_xp.MSELoss(),
            nu_xp.optim.SGD(model, lr=0.05),
            x,
            y,
            epochs=3,
            batch_size=8,
            seed=seed,
            progress=False,
        )

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_loss_decreases_and_matches_manual_loop():
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    a = nu_xp.Sequential(nu_xp.Linear(3, 1, seed=0))
    history = nu_xp.fit(a, nu_xp.MSELoss(), nu_xp.optim.SGD(a, lr=0.1), x, y, epochs=3, shuffle=False, progress=False)
    b = nu_xp.Sequential(nu_xp.Linear(3, 1, seed=0))
    loss, opt = nu_xp.MSELoss(), nu_xp.optim.SGD(b, lr=0.1)
    values = []
    for _ in range(3):
        values.append(float(loss(b(x), y)))
        opt.zero_grad()
        b.backward(loss.backward())
        opt.step()
    assert_close(history["loss"], values, dtype="float32")  # a mean of per-batch means: another order
    np.testing.assert_array_equal(a.state_dict()["0.weight"], b.state_dict()["0.weight"])
    assert history["loss"][-1] < history["loss"][0]


def test_early_stopping_restores_best_weights():
    r = np.random.default_rng(0)
    x, y = r.normal(size=(40, 2)), r.normal(size=(40, 1))
    model = nu_xp.Sequential(nu_xp.Linear(2, 16, seed=0), nu_xp.Tanh(), nu_xp.Linear(16, 1, seed=1))
    stopper = nu_xp.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    x_val, y_val = r.normal(size=(20, 2)), r.normal(size=(20, 1))
    history = nu_xp.fit(
        model,
        nu_xp.MSELoss(),
        nu_xp.optim.SGD(model, lr=0.5),
        x,
        y,
        epochs=200,
        validation_data=(x_val, y_val),
        callbacks=[stopper],
        progress=False,
    )
    assert history.stopped_early and len(history) < 200
    assert stopper.stopped_epoch == len(history) - 1
    assert len(history) - 1 - stopper.best_epoch == 2  # patience epochs without improvement
    best = min(history["val_loss"])
    assert history["val_loss"][stopper.best_epoch] == best
    restored = nu_xp.training.evaluate(model, nu_xp.MSELoss(), x_val, y_val)["loss"]
    assert restored == pytest.approx(best, rel=1e-6)


def test_early_stopping_needs_its_key():
    with pytest.raises(ValueError, match="pass validation_data"):
        fit_xor(0, epochs=2, callbacks=[nu_xp.EarlyStopping()])
    with pytest.raises(ValueError, match="patience"):
        nu_xp.EarlyStopping(patience=-1)


def test_schedule_as_callback_logs_lr():
    model = xor_model(0)
    opt = nu_xp.optim.SGD(model, lr=1.0)
    history = nu_xp.fit(
        model,
        nu_xp.BCEWithLogitsLoss(),
        opt,
        X_XOR,
        Y_XOR,
        epochs=4,
        callbacks=[nu_xp.optim.StepLR(opt, step_size=2, gamma=0.1)],
        progress=False,
    )
    np.testing.assert_allclose(history["lr"], [1.0, 0.1, 0.1, 0.01])


def test_keyboard_interrupt_returns_history_so_far():
    class Interrupt(training.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning, match="interrupted after 2"):
        _, history = fit_xor(0, epochs=10, callbacks=[Interrupt()])
    assert history.interrupted and len(history) == 2


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    pytest.importorskip("tqdm")
    fit_xor(0, epochs=3, progress=True)
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal

    class FakeTTY:
        def __init__(self):
            self.text = []

        def isatty(self):
            return True

        def write(self, s):
            self.text.append(s)

        def flush(self):
            pass

    fake = FakeTTY()
    monkeypatch.setattr("sys.stderr", fake)
    fit_xor(0, epochs=3, progress=True)
    out = "".join(fake.text)
    assert "epoch 3/3" in out and "loss=" in out
    fake.text.clear()
    fit_xor(0, epochs=3, progress=False)
    assert fake.text == []


def test_fit_argument_errors():
    model = xor_model(0)
    opt = nu_xp.optim.SGD(model, lr=0.1)
    loss = nu_xp.MSELoss()
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        nu_xp.fit(model, loss, opt, X_XOR, Y_XOR, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        nu_xp.fit(model, loss, opt, X_XOR, Y_XOR, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="4 samples but y has 3"):
        nu_xp.fit(model, loss, opt, X_XOR, Y_XOR[:3], epochs=1)
    with pytest.raises(TypeError, match="loss must be"):
        nu_xp.fit(model, lambda a, b: 0, opt, X_XOR, Y_XOR, epochs=1)
    with pytest.raises(TypeError, match="optimizer must be"):
        nu_xp.fit(model, loss, None, X_XOR, Y_XOR, epochs=1)
    with pytest.raises(ValueError, match="validation_data must be a pair"):
        nu_xp.fit(model, loss, opt, X_XOR, Y_XOR, epochs=1, validation_data=X_XOR)


def test_fit_moves_host_data_to_the_model_backend(backend):
    _, history = fit_xor(0, backend, epochs=5)
    assert len(history) == 5 and np.isfinite(history["loss"]).all()


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    _, history = fit_xor(0, epochs=5, validation_data=(X_XOR, Y_XOR))
    fig = history.plot(tmp_path / "h.png", title="xor")
    assert (tmp_path / "h.png").stat().st_size > 1000
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2  # train and validation
    assert "History(5 epochs" in repr(history)


def test_history_attribute_access():
    _, history = fit_xor(0, epochs=2)
    assert history.loss == history["loss"] == history.history["loss"]
    with pytest.raises(AttributeError, match="recorded"):
        _ = history.val_loss
