"""``fit(precision=...)``: bfloat16/float16 forward and backward, float32 master weights, dynamic loss scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nu_xp
from nu_xp.training.precision import check_precision, supporting

pytestmark = pytest.mark.filterwarnings("ignore:precision='16-mixed' on the CPU")


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


class Probe(nu_xp.Layer):
    """Records the dtype of what flows forward and backward (and can poison a gradient)."""

    def __init__(self, poison_steps: int = 0) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.poison_steps = poison_steps

    def forward(self, x: Any) -> Any:
        self.seen.append(str(x.dtype).rsplit(".", 1)[-1])
        return x

    def backward(self, grad: Any) -> Any:
        self.seen.append("grad " + str(grad.dtype).rsplit(".", 1)[-1])
        if self.poison_steps:
            self.poison_steps -= 1
            return grad * float("inf")
        return grad


def _runs(backend: str, precision: str) -> bool:
    return backend in supporting(precision)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_forward_and_backward_run_low_master_weights_stay_float32(backend, precision):
    x, y = _digits()
    probe = Probe()
    model = nu_xp.Sequential(
        nu_xp.Linear(64, 32, seed=0), nu_xp.BatchNorm1d(32), probe, nu_xp.ReLU(), nu_xp.Linear(32, 10, seed=1)
    ).to(backend)
    opt = nu_xp.optim.Adam(model.parameters(), lr=3e-3)
    if not _runs(backend, precision):
        with pytest.raises(ValueError, match=f"precision='{precision}' runs on the .*model.to\\('torch'\\)"):
            nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=1, progress=False, precision=precision)
        return
    low = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}[precision]
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x[:256], y[:256], epochs=1, batch_size=64, progress=False,
              precision=precision)  # fmt: skip
    assert probe.seen[:2] == [low, f"grad {low}"]
    assert set(probe.seen) == {low, f"grad {low}"}
    assert model.backend.dtype_name == "float32"
    for p in model.parameters():
        assert nu_xp.backends.dtype_name(p.data.dtype) == "float32"
        assert nu_xp.backends.dtype_name(p.grad.dtype) == "float32"
    for name, buffer in model.named_buffers():
        if "running" in name:
            assert nu_xp.backends.dtype_name(buffer.dtype) == "float32"
    for state in opt.state.values():
        assert nu_xp.backends.dtype_name(state["exp_avg"].dtype) == "float32"
    assert model.predict(x[:4]).dtype == model[0].weight.data.dtype  # predict runs in float32 afterwards


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_reaches_float32_accuracy(backend, precision):
    """Digits, an MLP and a small CNN: within two points of the same training in float32."""
    if not _runs(backend, precision):
        pytest.skip(f"{precision} does not run on {backend} (checked by the test above)")
    x, y = _digits()
    images = x.reshape(-1, 1, 8, 8)
    builders = {
        "mlp": (lambda: nu_xp.Sequential(nu_xp.Linear(64, 64, seed=0), nu_xp.ReLU(), nu_xp.Linear(64, 10, seed=1)), x),
        "cnn": (
            lambda: nu_xp.Sequential(
                nu_xp.Conv2d(1, 8, 3, padding=1, seed=0),
                nu_xp.BatchNorm2d(8),
                nu_xp.ReLU(),
                nu_xp.MaxPool2d(2),
                nu_xp.Flatten(),
                nu_xp.Linear(128, 10, seed=1),
            ),
            images,
        ),
    }
    for build, data in builders.values():
        scores = {}
        for p in ("32", precision):
            model = build().to(backend)
            opt = nu_xp.optim.Adam(model.parameters(), lr=3e-3)
            nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, data[:1400], y[:1400], epochs=6, batch_size=32, seed=0,
                      progress=False, precision=p)  # fmt: skip
            scores[p] = nu_xp.evaluate(model, nu_xp.CrossEntropyLoss(), data[1400:], y[1400:], metrics=["accuracy"])
        assert scores[precision]["accuracy"] >= scores["32"]["accuracy"] - 0.02, scores
        assert scores["32"]["accuracy"] > 0.85


def test_float16_skips_a_step_that_overflows_and_halves_the_scale(backend):
    if not _runs(backend, "16-mixed"):
        pytest.skip("16-mixed runs on torch and cupy")
    from nu_xp.training.precision import MixedPrecision

    x, y = _digits()
    model = nu_xp.Sequential(nu_xp.Linear(64, 10, seed=0), Probe(poison_steps=1)).to(backend)
    before = nu_xp.to_host(model[0].weight.data).copy()
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    hooks = MixedPrecision(model, "16-mixed", nu_xp.training.hooks.PLAIN, opt)
    xs, ys = nu_xp.asarray(x[:32], like=model), nu_xp.asarray(y[:32], like=model)
    nu_xp.training.step.train_step(model, nu_xp.CrossEntropyLoss(), opt, xs, ys, hooks)
    np.testing.assert_array_equal(nu_xp.to_host(model[0].weight.data), before)  # the poisoned step was skipped
    assert hooks.scaler.scale == 2.0**15 and hooks.scaler.skipped == 1
    nu_xp.training.step.train_step(model, nu_xp.CrossEntropyLoss(), opt, xs, ys, hooks)
    assert not np.array_equal(nu_xp.to_host(model[0].weight.data), before)  # the next one stepped
    assert hooks.scaler.scale == 2.0**15


def test_a_scale_that_cannot_fall_further_stops_training_with_a_float32_model(backend):
    """Every step overflows: the scale halves down to its floor, then NonFiniteLossError; the model stays float32."""
    if not _runs(backend, "16-mixed"):
        pytest.skip("16-mixed runs on torch and cupy")
    x, y = _digits()
    model = nu_xp.Sequential(nu_xp.Linear(64, 10, seed=0), Probe(poison_steps=10**9)).to(backend)
    before = nu_xp.to_host(model[0].weight.data).copy()
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(nu_xp.NonFiniteLossError, match="smallest loss scale"):
        nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x[:64], y[:64], epochs=2000, batch_size=1, progress=False,
                  precision="16-mixed")  # fmt: skip
    assert model.backend.dtype_name == "float32"
    for p in model.parameters():
        assert nu_xp.backends.dtype_name(p.data.dtype) == "float32"
    np.testing.assert_array_equal(nu_xp.to_host(model[0].weight.data), before)  # no step was taken


def test_loss_scale_rule():
    model = nu_xp.Linear(2, 1, seed=0)
    scaler = nu_xp.optim.LossScaleOptimizer(nu_xp.optim.SGD(model.parameters(), lr=0.1), init_scale=8.0,
                                            growth_interval=3, min_scale=4.0)  # fmt: skip
    for overflowed, scale in [(False, 8), (False, 8), (False, 16), (True, 8), (False, 8), (True, 4)]:
        value = float("inf") if overflowed else 1.0
        for p in model.parameters():
            p.grad = nu_xp.asarray(np.full(p.shape, value, dtype=np.float32), like=model)
        assert scaler.step() is not overflowed
        assert scaler.scale == scale
    assert scaler.skipped == 2 and scaler.lr == 0.1
    for p in model.parameters():
        p.grad = nu_xp.asarray(np.full(p.shape, np.nan, dtype=np.float32), like=model)
    with pytest.raises(nu_xp.NonFiniteLossError, match="smallest loss scale"):
        scaler.step()
    with pytest.raises(TypeError, match="wraps a nu_xp.optim optimizer"):
        nu_xp.optim.LossScaleOptimizer(object())
    with pytest.raises(ValueError, match="backoff_factor"):
        nu_xp.optim.LossScaleOptimizer(scaler, backoff_factor=2.0)


class _Where:
    def __init__(self, name: str, dtype_name: str = "float32") -> None:
        self.name, self.dtype_name = name, dtype_name


@pytest.mark.parametrize(
    ("precision", "where", "match"),
    [
        ("bf16-mixed", _Where("cupy"), r"the torch backend \(cupy: no bfloat16\), but this model is on cupy"),
        ("16-mixed", _Where("numpy"), "runs on the cupy and torch backends, but this model is on numpy"),
        ("bf16-mixed", _Where("torch", "float64"), "keeps float32 master weights, but this model is float64"),
        ("fp8", _Where("torch"), "precision must be one of"),
    ],
)
def test_precision_errors(precision, where, match):
    with pytest.raises(ValueError, match=match):
        check_precision(precision, where)  # type: ignore[arg-type]


def test_32_is_the_default_and_accepts_lightning_spellings():
    assert check_precision("32", _Where("numpy")) == "32"  # type: ignore[arg-type]
    assert check_precision(32, _Where("jax")) == "32"  # type: ignore[arg-type]
    assert check_precision("32-true", _Where("numpy")) == "32"  # type: ignore[arg-type]


def test_tf32_switch():
    torch = pytest.importorskip("torch")
    try:
        nu_xp.set_float32_matmul_precision("high")
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        nu_xp.set_float32_matmul_precision("highest")
    assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match="'highest', 'high' or 'medium'"):
        nu_xp.set_float32_matmul_precision("fast")


def test_float16_on_the_cpu_says_to_use_bfloat16():
    pytest.importorskip("torch")
    model = nu_xp.Sequential(nu_xp.Linear(2, 1, seed=0)).to("torch", device="cpu")
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    x = np.ones((4, 2), np.float32)
    with pytest.warns(UserWarning, match="use precision='bf16-mixed' there"):
        nu_xp.fit(model, nu_xp.MSELoss(), opt, x, x[:, :1], epochs=1, progress=False, precision="16-mixed")
