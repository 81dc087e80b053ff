"""Compiled training steps on JAX: the eager step's results, one compilation per input shape."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from nu_xp.training import train_step

jax = pytest.importorskip("jax")


def _mlp(seed=0):
    return nu_xp.Sequential(
        nu_xp.Linear(6, 16, seed=seed), nu_xp.ReLU(), nu_xp.Dropout(0.2, seed=seed), nu_xp.Linear(16, 3, seed=seed + 1)
    )


def _cnn(seed=0):
    return nu_xp.Sequential(
        nu_xp.Conv2d(1, 4, 3, padding=1, bias=False, seed=seed),  # a bias before BatchNorm gets rounding noise
        nu_xp.BatchNorm2d(4),
        nu_xp.ReLU(),
        nu_xp.MaxPool2d(2),
        nu_xp.Flatten(),
        nu_xp.Linear(4 * 4 * 4, 3, seed=seed + 1),
    )


def _lstm(seed=0):
    return nu_xp.Sequential(
        nu_xp.LSTM(5, 8, num_layers=2, dropout=0.1, batch_first=True, seed=seed),
        nu_xp.Select(0),
        nu_xp.TimeStep(-1, batch_first=True),
        nu_xp.Linear(8, 3, seed=seed + 1),
    )


def _gpt(seed=0):
    embed = nu_xp.TokenAndPosition(11, 16, 8, seed=seed)
    block = nu_xp.TransformerEncoderLayer(
        16, 2, dim_feedforward=32, dropout=0.1, batch_first=True, norm_first=True, causal=True, seed=seed
    )
    return nu_xp.Sequential(embed, block, nu_xp.LayerNorm(16), nu_xp.Linear(16, 11, seed=seed + 1))


def _data(kind, n, rng):
    if kind == "mlp":
        return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)
    if kind == "cnn":
        return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)
    if kind == "lstm":
        return rng.standard_normal((n, 7, 5)).astype(np.float32), rng.integers(0, 3, n)
    return rng.integers(0, 11, (n, 8)), rng.integers(0, 11, (n * 8,))


def _close(actual, desired, what=""):
    """float32's rtol 1e-5, and for entries near zero an absolute 1e-6 (or 1e-5 of the array's scale): a
    gradient that is a sum of O(0.1) terms cancelling to 1e-3 carries the terms' rounding (XLA fuses and
    reorders the sums), about 1e-7 in float32."""
    desired = np.asarray(desired, dtype=np.float64)
    atol = max(1e-6, 1e-5 * float(np.abs(desired).max()))
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=atol, err_msg=what)


BUILD = {"mlp": _mlp, "cnn": _cnn, "lstm": _lstm, "gpt": _gpt}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "lstm", "gpt"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd_momentum"])
def test_the_compiled_step_equals_the_eager_step(kind, optimizer):
    """Five steps (the last batch smaller) compiled and eager, from the same weights and masks: the same losses
    and weights (float32 rtol 1e-5), Adam's moments and step counts, BatchNorm's statistics."""
    rng = np.random.default_rng(0)
    batches = [_data(kind, n, rng) for n in (8, 8, 8, 8, 5)]
    results = []
    for compiled in (False, True):
        model = BUILD[kind]().to(backend="jax")
        if kind == "gpt":
            model = nu_xp.Sequential(*model, nu_xp.Flatten(0, 1))
        params = model.parameters()
        opt = (
            nu_xp.optim.Adam(params, lr=1e-2, eps=1e-4)  # a gradient that is 0 in exact arithmetic (attention's
            if optimizer == "adam"  # key bias) is rounding noise, which eps=1e-8 would blow up to ±lr per step
            else nu_xp.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
        )
        loss = nu_xp.CrossEntropyLoss()
        step = nu_xp.compile_step(model, loss, opt) if compiled else None
        losses = []
        for x, y in batches:
            if compiled:
                losses.append(float(step(x, y)))
            else:
                xb, yb = nu_xp.asarray(x, like=model, dtype=None if x.dtype.kind == "f" else "int64"), y
                total, _, _ = train_step(model, loss, opt, xb, nu_xp.asarray(yb, like=model, dtype="int64"))
                losses.append(float(total) / len(x))
        state = {k: np.asarray(v) for k, v in model.state_dict().items()}
        results.append((losses, state, opt.state_dict()))
        if compiled:
            assert step.compiles == 2  # batch 8 and batch 5; the first step ran eagerly to create the state
            assert all(p.grad is None for p in model.parameters())
    (eager_losses, eager_state, eager_opt), (losses, state, opt_state) = results
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for key in eager_state:
        _close(state[key], eager_state[key], key)
    for index, entries in eager_opt["state"].items():
        for key, value in entries.items():
            if isinstance(value, (int, float)):
                assert opt_state["state"][index][key] == value
            else:
                _close(opt_state["state"][index][key], value, key)


def test_recompiles_only_for_a_new_shape_and_follows_the_learning_rate():
    model = nu_xp.Sequential(nu_xp.Linear(6, 4, seed=0), nu_xp.Tanh(), nu_xp.Linear(4, 1, seed=1)).to(backend="jax")
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    sched = nu_xp.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    step = nu_xp.compile_step(model, nu_xp.MSELoss(), opt)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((16, 6)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    twin = nu_xp.Sequential(nu_xp.Linear(6, 4, seed=0), nu_xp.Tanh(), nu_xp.Linear(4, 1, seed=1)).to(backend="jax")
    twin_opt = nu_xp.optim.SGD(twin.parameters(), lr=0.1, momentum=0.5)
    twin_sched = nu_xp.optim.lr_scheduler.StepLR(twin_opt, step_size=2, gamma=0.1)
    for _ in range(6):
        for rows in (16, 16, 7):
            step(x[:rows], y[:rows])
            train_step(
                twin, nu_xp.MSELoss(), twin_opt, nu_xp.asarray(x[:rows], like=twin), nu_xp.asarray(y[:rows], like=twin)
            )
        sched.step()
        twin_sched.step()
    assert step.compiles == 2  # 16 rows and 7 rows, whatever the learning rate
    for a, b in zip(model.parameters(), twin.parameters()):
        _close(np.asarray(a.data), np.asarray(b.data))
    model.eval()
    step(x, y)  # eval mode is another program (Dropout and BatchNorm behave otherwise)
    assert step.compiles == 3


def test_dropout_masks_are_the_seeded_host_masks():
    """A compiled step draws its masks from the layer's own generator on the host: the same as eager."""
    x, y = np.ones((4, 6), np.float32), np.zeros(4, np.int64)
    weights = []
    for compiled in (False, True):
        model = _mlp().to(backend="jax")
        opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
        step = nu_xp.compile_step(model, nu_xp.CrossEntropyLoss(), opt)
        for _ in range(4):
            if compiled:
                step(x, y)
            else:
                train_step(
                    model, nu_xp.CrossEntropyLoss(), opt, nu_xp.asarray(x, like=model), nu_xp.asarray(y, like=model)
                )
        weights.append(np.asarray(model[0].weight.data))
    _close(weights[1], weights[0])
    assert not np.allclose(weights[0][:, 0], weights[0][0, 0])  # dropout made the rows differ


def test_no_traced_value_is_left_behind():
    """After a compilation, every parameter, buffer, optimizer entry and cache holds a concrete array."""
    model = _cnn().to(backend="jax")
    opt = nu_xp.optim.Adam(model.parameters())
    step = nu_xp.compile_step(model, nu_xp.CrossEntropyLoss(), opt)
    x, y = _data("cnn", 4, np.random.default_rng(0))
    for _ in range(3):
        step(x, y)
    tracer = jax.core.Tracer
    assert not any(isinstance(p.data, tracer) for p in model.parameters())
    assert not any(isinstance(b, tracer) for b in model.buffers())
    assert not any(isinstance(v, tracer) for e in opt.state.values() for v in e.values())
    ops = model.backend.ops
    assert not any(isinstance(v, tracer) for v in ops.__dict__.get("_tap_positions", {}).values())
    model.eval()
    assert np.isfinite(np.asarray(model(nu_xp.asarray(x, like=model)))).all()


def test_only_jax_compiles():
    model = nu_xp.Linear(2, 1)
    with pytest.raises(ValueError, match="'jax'"):
        nu_xp.compile_step(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters(), lr=0.1))


def test_a_step_compiled_on_the_cpu_keeps_large_freed_blocks(monkeypatch):
    """XLA takes a program's temporaries as one block per run; on the CPU the step asks glibc to keep such a
    block for the next run (``host_memory.keep_large_blocks``, whose own test counts the page faults)."""
    from nu_xp.backends import jax_ops

    calls = []
    monkeypatch.setattr(jax_ops, "keep_large_blocks", lambda: calls.append(1) or True)
    model = nu_xp.Linear(2, 1).to(backend="jax")
    step = nu_xp.compile_step(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters(), lr=0.1))
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    step(x, y)  # the first step makes the optimizer's state, eagerly
    step(x, y)  # compiles
    on_cpu = jax.devices()[0].platform == "cpu"
    assert bool(calls) == on_cpu


def test_bad_data_is_refused_before_the_step():
    model = nu_xp.Linear(2, 1).to(backend="jax")
    step = nu_xp.compile_step(model, nu_xp.MSELoss(), nu_xp.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="NaN"):
        step(np.array([[np.nan, 1.0]], np.float32), np.zeros((1, 1), np.float32))


def test_fit_compiles_on_jax_with_the_eager_results():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((70, 6)).astype(np.float32), rng.integers(0, 3, 70)
    histories, weights = [], []
    for compile in (False, "auto"):
        model = _mlp().to(backend="jax")
        opt = nu_xp.optim.Adam(model.parameters(), lr=1e-2, eps=1e-4)
        h = nu_xp.fit(
            model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=3, batch_size=16, seed=0, verbose=0,
            metrics=["accuracy"], validation_data=(x[:10], y[:10]), compile=compile, clip_grad_norm=1.0,
        )  # fmt: skip
        histories.append(h)
        weights.append(np.asarray(model[-1].weight.data))
    for key in ("loss", "accuracy", "val_loss"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5)
    _close(weights[1], weights[0])


def test_fit_compile_option_is_checked():
    x, y = np.zeros((4, 6), np.float32), np.array([0, 1, 2, 3])
    model = _mlp()
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="compile=True.*'jax'"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y % 3, epochs=1, compile=True, verbose=0)
    with pytest.raises(ValueError, match="compile must be"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y % 3, epochs=1, compile="yes", verbose=0)
    jax_model = _mlp().to(backend="jax")
    jax_opt = nu_xp.optim.SGD(jax_model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\)"):  # checked once, before the steps
        nu_xp.fit(jax_model, nu_xp.CrossEntropyLoss(), jax_opt, x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_recurrent_layers_compile_as_one_scan(kind):
    """Under compile the time loop is one lax.scan (forward and backward), bidirectional and stacked, with the
    eager step's results; the program stays small whatever the length (it compiles in seconds)."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 30, 3)).astype(np.float32), rng.integers(0, 2, 6)
    weights = []
    for compiled in (False, True):
        layer = getattr(nu_xp, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True, seed=0)
        head = nu_xp.Linear(10, 2, seed=1)
        model = nu_xp.Sequential(layer, nu_xp.Select(0), nu_xp.TimeStep(0, batch_first=True), head).to(backend="jax")
        opt = nu_xp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        step = nu_xp.compile_step(model, nu_xp.CrossEntropyLoss(), opt)
        for _ in range(3):
            if compiled:
                step(x, y)
            else:
                train_step(
                    model, nu_xp.CrossEntropyLoss(), opt, nu_xp.asarray(x, like=model), nu_xp.asarray(y, like=model)
                )
        weights.append({k: np.asarray(v) for k, v in model.state_dict().items()})
    for key in weights[0]:
        _close(weights[1][key], weights[0][key], key)


def test_the_plain_scan_is_lax_scan():
    """Ops.scan's plain loop (every backend) and JAX's lax.scan give the same carry and stacked outputs."""
    xs = (np.arange(12.0).reshape(4, 3), (np.ones((4, 2)), None))

    def step(carry, x_t):
        a, (b, _) = x_t
        carry = carry * 0.5 + a.sum()
        return carry, (carry + b, None)

    for reverse in (False, True):
        plain = nu_xp.backends.ops_for("numpy").scan(step, 1.0, xs, reverse=reverse)
        jax_ops = nu_xp.backends.ops_for("jax")
        jxs = (jax.numpy.asarray(xs[0]), (jax.numpy.asarray(xs[1][0]), None))
        fast = jax_ops.scan(step, jax.numpy.asarray(1.0), jxs, reverse=reverse)
        np.testing.assert_allclose(np.asarray(fast[0]), plain[0])
        np.testing.assert_allclose(np.asarray(fast[1][0]), plain[1][0])
        assert plain[1][1] is None and fast[1][1] is None
