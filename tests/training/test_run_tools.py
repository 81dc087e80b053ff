"""The toolkit of a real run, against PyTorch where it has the same thing: gradient clipping and accumulation,
weight averaging, schedules, Keras' callbacks, and checkpoints that resume to the bit."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import nu_xp
from nu_xp.optim import lr_scheduler as lrs
from nu_xp.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tests.helpers import assert_close, host, on


def _grads_like_torch(torch, backend, rng):
    lin = nu_xp.Linear(4, 3, seed=0, backend=backend, dtype="float64")
    ref = torch.nn.Linear(4, 3).double()
    ref.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in lin.state_dict().items()})
    gw, gb = rng.normal(size=(3, 4)) * 5, rng.normal(size=3) * 5
    lin.weight.grad, lin.bias.grad = on(backend, gw), on(backend, gb)
    ref.weight.grad, ref.bias.grad = torch.tensor(gw), torch.tensor(gb)
    return lin, ref


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_and_value_are_pytorchs(backend, torch, rng, norm_type):
    lin, ref = _grads_like_torch(torch, backend, rng)
    total = nu_xp.clip_grad_norm_(lin.parameters(), 1.5, norm_type=norm_type)
    ref_total = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.5, norm_type=norm_type)
    assert_close(total, ref_total.numpy(), dtype="float64", ulps=64)
    assert_close(lin.weight.grad, ref.weight.grad.numpy(), dtype="float64", ulps=64)
    lin, ref = _grads_like_torch(torch, backend, rng)
    nu_xp.clip_grad_value_(lin, 0.7)
    torch.nn.utils.clip_grad_value_(ref.parameters(), 0.7)
    np.testing.assert_array_equal(host(lin.bias.grad), ref.bias.grad.numpy())
    with pytest.raises(ValueError, match="max_norm"):
        nu_xp.clip_grad_norm_(lin.parameters(), -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        nu_xp.clip_grad_norm_(lin.parameters(), 1.0, norm_type=0)
    lin.weight.grad = on(backend, np.full((3, 4), np.inf))
    with pytest.raises(RuntimeError, match="not finite|inf"):
        nu_xp.clip_grad_norm_(lin.parameters(), 1.0, error_if_nonfinite=True)


def _net(backend, dropout=0.0):
    return nu_xp.Sequential(
        nu_xp.Linear(3, 16, seed=0, backend=backend), nu_xp.Dropout(dropout, seed=5), nu_xp.Tanh(),
        nu_xp.Linear(16, 2, seed=1, backend=backend),
    )  # fmt: skip


def _xy(n=48):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n)


def test_fit_clips_like_a_loop_that_clips(backend):
    x, y = _xy()
    runs = []
    for by_fit in (True, False):
        model = _net(backend)
        opt = nu_xp.optim.SGD(model.parameters(), lr=0.5)
        loss = nu_xp.CrossEntropyLoss()
        if by_fit:
            nu_xp.fit(model, loss, opt, x, y, epochs=1, batch_size=16, shuffle=False, clip_grad_norm=0.05,
                      progress=False)  # fmt: skip
        else:
            for i in range(0, 48, 16):
                xb, yb = nu_xp.asarray(x[i : i + 16], like=model), nu_xp.asarray(y[i : i + 16], like=model)
                opt.zero_grad()
                loss(model(xb), yb)
                model.backward(loss.backward())
                nu_xp.clip_grad_norm_(model.parameters(), 0.05)
                opt.step()
        runs.append([host(p.data) for p in model.parameters()])
    for a, b in zip(*runs):
        assert_close(a, b, ulps=64)


def test_accumulated_batches_step_as_their_union(backend):
    """Two minibatches of 8 accumulated (and a last one of 4 alone) equal batches of 16 (and 4)."""
    x, y = _xy(36)
    runs = []
    for batch, accumulate in ((16, 1), (8, 2)):
        model = _net(backend)
        opt = nu_xp.optim.Adam(model.parameters(), lr=0.01)
        history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=2, batch_size=batch, shuffle=False,
                            accumulate_grad_batches=accumulate, progress=False)  # fmt: skip
        runs.append(([host(p.data) for p in model.parameters()], history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        assert_close(a, b, ulps=512)
    assert_close(np.array(runs[0][1]), np.array(runs[1][1]), dtype="float32", ulps=512)


@pytest.mark.parametrize(
    ("keyword", "value", "error", "match"),
    [
        ("accumulate_grad_batches", 0, ValueError, "accumulate_grad_batches must be a positive integer"),
        ("clip_grad_norm", -1.0, ValueError, "clip_grad_norm"),
        ("clip_grad_norm", float("nan"), ValueError, "clip_grad_norm must be a finite number"),
        ("initial_epoch", 5, ValueError, "initial_epoch=5 leaves nothing to train"),
        ("batch_size", 0, ValueError, "batch_size must be a positive integer"),
    ],
)
def test_bad_run_arguments(keyword, value, error, match):
    x, y = _xy(8)
    model = _net("numpy")
    with pytest.raises(error, match=match):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), nu_xp.optim.SGD(model.parameters()), x, y, epochs=5,
                  progress=False, **{keyword: value})  # fmt: skip


def test_averaged_model_is_pytorchs_and_updates_from_fit(backend, torch, tmp_path):
    model = _net(backend)
    twin = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Dropout(0.0), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    ref = torch.optim.swa_utils.AveragedModel(twin, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    swa, ref_swa = AveragedModel(model), torch.optim.swa_utils.AveragedModel(twin)
    rng = np.random.default_rng(0)
    for _ in range(4):
        for p, q in zip(model.parameters(), twin.parameters()):
            step = rng.normal(size=p.shape).astype(np.float32)
            p.data = p.data + nu_xp.asarray(step, like=model)
            with torch.no_grad():
                q.add_(torch.from_numpy(step))
        for ours, theirs in ((ema, ref), (swa, ref_swa)):
            ours.update_parameters(model)
            theirs.update_parameters(twin)
    for ours, theirs in ((ema, ref), (swa, ref_swa)):
        mine = ours.state_dict()
        assert sorted(mine) == sorted(theirs.state_dict())
        for key, value in theirs.state_dict().items():
            assert_close(mine[key], value.numpy(), ulps=64)
    nu_xp.save(ema, tmp_path / "ema.npz")
    again = nu_xp.load(tmp_path / "ema.npz", backend=backend)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(host(again.predict(x)), host(ema.predict(x)))
    # through fit: one update per step
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5))
    xs, ys = _xy(32)
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), nu_xp.optim.SGD(model.parameters(), lr=0.1), xs, ys, epochs=2,
              batch_size=8, callbacks=[nu_xp.callbacks.WeightAveraging(averaged)], progress=False)  # fmt: skip
    assert int(host(averaged.n_averaged)) == 8


def _lrs(optimizer, schedule, steps, metric=None):
    out = [optimizer.param_groups[0]["lr"]]
    for i in range(steps):
        schedule.step() if metric is None else schedule.step(metric(i))
        out.append(optimizer.param_groups[0]["lr"])
    return np.array(out)


@pytest.mark.parametrize(
    "case",
    ["linear", "onecycle", "onecycle_linear_3", "onecycle_sgd", "sequential", "plateau_min", "plateau_max_abs"],
)
def test_schedules_are_pytorchs(torch, case):
    lin, ref = nu_xp.Linear(2, 1, seed=0), torch.nn.Linear(2, 1)
    sgd = case == "onecycle_sgd"
    if sgd:
        opt, topt = nu_xp.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(ref.parameters(), lr=0.1,
                                                                                             momentum=0.9)  # fmt: skip
    else:
        opt, topt = nu_xp.optim.Adam(lin.parameters(), lr=0.1), torch.optim.Adam(ref.parameters(), lr=0.1)
    T = torch.optim.lr_scheduler
    metric = None
    if case == "linear":
        ours, theirs = lrs.LinearLR(opt, 0.2, 0.9, 4), T.LinearLR(topt, 0.2, 0.9, 4)
    elif case.startswith("onecycle"):
        kw = {"max_lr": 0.5, "total_steps": 30}
        if case == "onecycle_linear_3":
            kw.update(anneal_strategy="linear", three_phase=True, pct_start=0.25)
        ours, theirs = lrs.OneCycleLR(opt, **kw), T.OneCycleLR(topt, **kw)
    elif case == "sequential":
        parts = [lrs.LinearLR(opt, 0.1, total_iters=3), lrs.CosineAnnealingLR(opt, 10, 0.001)]
        ours = lrs.SequentialLR(opt, parts, [3])
        theirs = T.SequentialLR(topt, [T.LinearLR(topt, 0.1, total_iters=3), T.CosineAnnealingLR(topt, 10, 0.001)],
                                [3])  # fmt: skip
    else:
        values = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7]
        mode = "max" if case == "plateau_max_abs" else "min"
        values = [-v for v in values] if mode == "max" else values
        kw = {"mode": mode, "patience": 2, "cooldown": 1, "factor": 0.5, "min_lr": 0.01}
        if case == "plateau_max_abs":
            kw.update(threshold_mode="abs", threshold=0.01)
        ours, theirs = lrs.ReduceLROnPlateau(opt, **kw), T.ReduceLROnPlateau(topt, **kw)

        def metric(i):
            return values[i]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "scheduler.step() before optimizer.step()"
        a, b = _lrs(opt, ours, 29 if case.startswith("onecycle") else 14, metric), _lrs(topt, theirs, 0)
        b = _lrs(topt, theirs, 29 if case.startswith("onecycle") else 14, metric)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    if case.startswith("onecycle"):
        key = "momentum" if sgd else "betas"
        mine, theirs_m = opt.param_groups[0][key], topt.param_groups[0][key]
        np.testing.assert_allclose(np.ravel(mine), np.ravel(theirs_m), rtol=1e-12)


def test_a_schedule_resumes_from_its_state(torch):
    lin = nu_xp.Linear(2, 1, seed=0)
    opt = nu_xp.optim.SGD(lin.parameters(), lr=0.1)
    sched = lrs.SequentialLR(opt, [lrs.LinearLR(opt, 0.1, total_iters=3), lrs.CosineAnnealingLR(opt, 10)], [3])
    straight = _lrs(opt, sched, 12)
    lin2 = nu_xp.Linear(2, 1, seed=0)
    opt2 = nu_xp.optim.SGD(lin2.parameters(), lr=0.1)
    sched2 = lrs.SequentialLR(opt2, [lrs.LinearLR(opt2, 0.1, total_iters=3), lrs.CosineAnnealingLR(opt2, 10)], [3])
    first = _lrs(opt2, sched2, 5)
    state = sched2.state_dict()
    lin3 = nu_xp.Linear(2, 1, seed=0)
    opt3 = nu_xp.optim.SGD(lin3.parameters(), lr=0.1)
    sched3 = lrs.SequentialLR(opt3, [lrs.LinearLR(opt3, 0.1, total_iters=3), lrs.CosineAnnealingLR(opt3, 10)], [3])
    sched3.load_state_dict(state)
    rest = _lrs(opt3, sched3, 7)
    np.testing.assert_array_equal(np.concatenate([first, rest[1:]]), straight)


def test_keras_callbacks(tmp_path):
    x, y = _xy(40)
    model = _net("numpy")
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    cb = nu_xp.callbacks
    log = tmp_path / "logs" / "run.csv"
    ckpt = cb.ModelCheckpoint(tmp_path / "ckpts" / "m-{epoch:02d}-{val_loss:.3f}.npz")
    best = cb.ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True)
    plateau = cb.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=10.0)  # never improves enough
    rates = cb.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.9)
    history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=3, batch_size=10,
                        validation_data=(x[:10], y[:10]), metrics=["accuracy"], progress=False,
                        callbacks=[rates, plateau, ckpt, best, cb.CSVLogger(log)])  # fmt: skip
    files = sorted(p.name for p in (tmp_path / "ckpts").iterdir())
    assert len(files) == 3 and files[0].startswith("m-01-") and (tmp_path / "best.npz").exists()
    rows = list(csv.reader(open(log)))
    assert rows[0][0] == "epoch" and "val_loss" in rows[0] and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    # before each epoch the schedule multiplies by 0.9 (from epoch 1); after epochs 1 and 2 the plateau halves
    np.testing.assert_allclose(history["learning_rate"], [0.1, 0.09, 0.09 * 0.5 * 0.9], rtol=1e-12)
    assert opt.lr == pytest.approx(0.09 * 0.5 * 0.9 * 0.5)
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=1, progress=False,
              callbacks=[cb.CSVLogger(log, append=True)])  # fmt: skip
    rows = list(csv.reader(open(log)))
    assert len(rows) == 5 and rows[0][0] == "epoch"  # one header, rows appended
    with pytest.warns(
        RuntimeWarning, match=r"monitors 'val_accuracy', which is not in the logs; the logs hold \['loss'\]"
    ):
        best = cb.ModelCheckpoint(tmp_path / "x.npz", monitor="val_accuracy", save_best_only=True)
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=1, progress=False, callbacks=[best])
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="cannot write into"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=1, progress=False,
                  callbacks=[cb.ModelCheckpoint(blocker / "m.npz")])  # fmt: skip
    other = nu_xp.optim.SGD(_net("numpy").parameters(), lr=0.1)
    with pytest.raises(ValueError, match="made on another optimizer"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=1, progress=False,
                  callbacks=[cb.ScheduleStepper(lrs.StepLR(other, 1))])  # fmt: skip


def test_schedule_stepper_per_step_and_plateau():
    x, y = _xy(40)
    model = _net("numpy")
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cycle = lrs.OneCycleLR(opt, max_lr=0.5, epochs=2, steps_per_epoch=4)
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=2, batch_size=10, progress=False,
              callbacks=[nu_xp.callbacks.ScheduleStepper(cycle, interval="step")])  # fmt: skip
    assert cycle.last_epoch == 8
    plateau = lrs.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=3, batch_size=10, progress=False,
                        callbacks=[nu_xp.callbacks.ScheduleStepper(plateau, monitor="loss")])  # fmt: skip
    assert len(history["lr"]) == 3


def _resumable_run(backend, path, stop_after=None, resume=False, epochs=6):
    """A run with everything that carries state: dropout, Adam, warm-up + cosine per step, clipping, EMA,
    a streamed and augmented dataset; stopped after ``stop_after`` epochs, or resumed from ``path``."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 3)).astype(np.float32), rng.integers(0, 2, 60)

    def jitter(xb, yb, g):
        return xb + 0.01 * g.normal(size=xb.shape).astype(xb.dtype), yb

    model = _net(backend, dropout=0.3)
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.02)
    warm = lrs.LinearLR(opt, 0.1, total_iters=4)
    sched = lrs.SequentialLR(opt, [warm, lrs.CosineAnnealingLR(opt, T_max=epochs * 4 - 4)], [4])
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.8))
    loader = nu_xp.data.DataLoader(nu_xp.data.ArrayDataset(x, y), batch_size=15, shuffle=True, seed=7,
                                   transform=jitter)  # fmt: skip
    cb = nu_xp.callbacks
    callbacks = [cb.ScheduleStepper(sched, interval="step"), cb.WeightAveraging(ema), cb.ModelCheckpoint(path)]
    start = 0
    if resume:
        extra = nu_xp.load_checkpoint(path, model, opt, scheduler=sched, callbacks=callbacks)
        start = extra["epoch"] + 1

    class Stop(nu_xp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            return stop_after is not None and epoch + 1 == stop_after

    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, loader, epochs=epochs, clip_grad_norm=1.0, initial_epoch=start,
              callbacks=[*callbacks, Stop()], progress=False)  # fmt: skip
    return [host(p.data) for p in model.parameters()], [host(p.data) for p in ema.parameters()], opt.lr


def test_a_run_stopped_and_resumed_ends_bit_identical(backend, tmp_path):
    whole = _resumable_run(backend, tmp_path / "whole.npz")
    _resumable_run(backend, tmp_path / "ckpt.npz", stop_after=3)
    resumed = _resumable_run(backend, tmp_path / "ckpt.npz", resume=True)
    for a, b in zip(whole[0] + whole[1], resumed[0] + resumed[1]):
        np.testing.assert_array_equal(a, b)
    assert whole[2] == resumed[2]


def test_checkpoints_refuse_what_does_not_fit(tmp_path):
    model = _net("numpy")
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    sched = lrs.StepLR(opt, 2)
    nu_xp.save(model, tmp_path / "c.npz", opt, sched, extra={"epoch": 1, "best": float("inf"), "w": np.ones(3)})
    extra = nu_xp.load_checkpoint(tmp_path / "c.npz", model, opt, scheduler=sched)
    assert extra["best"] == float("inf") and np.array_equal(extra["w"], np.ones(3))
    with pytest.raises(nu_xp.ModelFileError, match="holds StepLR state, not CosineAnnealingLR"):
        nu_xp.load_checkpoint(tmp_path / "c.npz", model, opt, scheduler=lrs.CosineAnnealingLR(opt, 3))
    with pytest.raises(nu_xp.ModelFileError, match="no callback states"):
        nu_xp.load_checkpoint(tmp_path / "c.npz", model, opt, callbacks=[nu_xp.callbacks.EarlyStopping()])
    nu_xp.save(model, tmp_path / "plain.npz")
    with pytest.raises(nu_xp.ModelFileError, match="no schedule state"):
        nu_xp.load_checkpoint(tmp_path / "plain.npz", model, scheduler=sched)
