"""fit's conveniences: History as a mapping, validation_split, verbose, evaluate at the top level."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp

X = np.random.default_rng(0).normal(size=(40, 2))
Y = X @ np.array([[1.0], [-1.0]])


def model_and_opt():
    model = nu_xp.Sequential(nu_xp.Linear(2, 4, seed=0), nu_xp.Tanh(), nu_xp.Linear(4, 1, seed=1))
    return model, nu_xp.optim.Adam(model.parameters(), lr=0.01)


def test_history_reads_as_a_mapping():
    model, opt = model_and_opt()
    h = nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=3, metrics=["mae"], validation_data=(X, Y), verbose=0)
    assert list(h.keys()) == ["loss", "mae", "val_loss", "val_mae"] == list(h)
    assert dict(h.items())["val_loss"] == h["val_loss"] == h.history["val_loss"] and len(h) == 3
    assert h.get("accuracy") is None and h.get("loss") == h["loss"]


def test_validation_split_holds_out_the_last_fraction_before_shuffling():
    model, opt = model_and_opt()
    h = nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=2, validation_split=0.25, verbose=0, seed=0)
    reference = nu_xp.evaluate(model, nu_xp.MSELoss(), X[30:], Y[30:])["loss"]
    assert h["val_loss"][-1] == pytest.approx(reference, rel=1e-6)
    with pytest.raises(ValueError, match="not both"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=1, validation_split=0.2, validation_data=(X, Y))
    with pytest.raises(ValueError, match="validation_split"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=1, validation_split=1.0)
    with pytest.raises(ValueError, match="leaves 0 for training|at least one"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, X[:2], Y[:2], epochs=1, validation_split=0.9)


@pytest.mark.parametrize(
    ("verbose", "epochs", "shown"),
    [("auto", 3, [1, 2, 3]), ("auto", 45, [1, 5, 10, 15, 20, 25, 30, 35, 40, 45]), ("auto", 23, [1, 3, 6, 9, 12,
     15, 18, 21, 23]), (2, 23, list(range(1, 24))), (0, 3, []), (1, 3, [])],
)  # fmt: skip
def test_verbose_off_a_terminal(capsys, verbose, epochs, shown):
    """Captured output is not a terminal: "auto" writes about ten lines (the first epoch, every few, the last),
    2 one line per epoch, 1 a bar (on stderr), 0 nothing."""
    model, opt = model_and_opt()
    nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=epochs, verbose=verbose)
    out = capsys.readouterr().out.splitlines()
    assert [int(line.split()[1].split("/")[0]) for line in out] == shown
    assert all(line.startswith(f"epoch {e}/{epochs} - loss: ") for e, line in zip(shown, out))
    with pytest.raises(ValueError, match="verbose must be"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=1, verbose=3)


def test_progress_false_is_silent(capsys):
    model, opt = model_and_opt()
    nu_xp.fit(model, nu_xp.MSELoss(), opt, X, Y, epochs=2, progress=False)
    assert capsys.readouterr().out == ""


def test_probabilities_from_logits_is_one_line():
    """The README's recipe: a model that outputs logits, and nu_xp.Softmax()(...) (or Sigmoid) for probabilities."""
    model = nu_xp.Linear(2, 3, seed=0)
    p = nu_xp.Softmax()(model.predict(X))
    np.testing.assert_allclose(np.sum(nu_xp.to_host(p), axis=1), 1.0, rtol=1e-6)


def test_every_keyword_of_fit_is_one_field_of_fit_options():
    """One options object behind the public keywords: a new option is a field and a keyword, nothing else."""
    import dataclasses
    import inspect

    keywords = [p.name for p in inspect.signature(nu_xp.fit).parameters.values() if p.kind is p.KEYWORD_ONLY]
    fields = {f.name: f.default for f in dataclasses.fields(nu_xp.training.FitOptions)}
    assert sorted(keywords) == sorted(fields)
    for p in inspect.signature(nu_xp.fit).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.default is not p.empty:
            assert fields[p.name] == p.default, p.name


def test_the_one_loop_with_hooks_equals_fit(backend):
    """``train`` with a hook that changes nothing gives fit's History; one that adds to the loss shows it."""

    class Counting(nu_xp.training.StepHooks):
        steps = 0

        def after_backward(self, batch_loss, rows, batch_rows):
            Counting.steps += 1
            return batch_loss + 1.0 * batch_rows  # the recorded mean loss grows by exactly 1

    histories = []
    for hooks in (None, Counting()):
        model = nu_xp.Sequential(
            nu_xp.Linear(2, 4, seed=0, backend=backend), nu_xp.Tanh(), nu_xp.Linear(4, 1, seed=1, backend=backend)
        )
        opt = nu_xp.optim.SGD(model.parameters(), lr=0.05)
        options = nu_xp.training.FitOptions(epochs=2, batch_size=16, seed=3, progress=False)
        xs = nu_xp.asarray(X, like=model, dtype=model.dtype)
        ys = nu_xp.asarray(Y, like=model, dtype=model.dtype)
        kwargs = {} if hooks is None else {"hooks": hooks}
        data = nu_xp.training.batches.ArrayBatches(xs, ys, 16, True, nu_xp.data.EpochOrder(3))
        histories.append(nu_xp.training.train(model, nu_xp.MSELoss(), opt, data, options, **kwargs))
    assert Counting.steps == 2 * 3
    np.testing.assert_allclose(np.array(histories[1]["loss"]) - 1.0, histories[0]["loss"], rtol=1e-5)
