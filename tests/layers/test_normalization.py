"""BatchNorm1d/2d and LayerNorm: PyTorch's values, gradients and running statistics over several steps."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, host, on
from tests.layers.torch_reference import compare_with_torch

BATCHNORMS = [
    ("BatchNorm1d", {}, (6, 3)),
    ("BatchNorm1d", {"momentum": None}, (4, 3, 5)),
    ("BatchNorm1d", {"affine": False, "eps": 1e-3}, (5, 2)),
    ("BatchNorm2d", {"momentum": 0.3}, (3, 2, 4, 5)),
    ("BatchNorm2d", {"track_running_stats": False}, (2, 3, 3, 3)),
]


@pytest.mark.parametrize(("name", "kwargs", "shape"), BATCHNORMS)
def test_batchnorm_equals_torch_over_steps_then_in_eval(torch, backend, name, kwargs, shape):
    x = np.random.default_rng(0).normal(size=shape) * 3.0 + 1.0
    ours = getattr(nu_xp, name)(shape[1], backend=backend, dtype="float64", **kwargs)
    theirs = getattr(torch.nn, name)(shape[1], **kwargs)
    compare_with_torch(torch, backend, ours, theirs, x, steps=4)  # running statistics after each step
    ours.eval()
    compare_with_torch(torch, backend, ours, theirs.eval(), x * 0.5, steps=2)


@pytest.mark.parametrize(
    ("shape", "kwargs", "x_shape"),
    [(5, {}, (3, 5)), ((2, 3), {"bias": False}, (4, 2, 3)), (4, {"elementwise_affine": False}, (2, 3, 4))],
)
def test_layernorm_equals_torch(torch, backend, shape, kwargs, x_shape):
    x = np.random.default_rng(1).normal(size=x_shape) * 2.0
    ours = nu_xp.LayerNorm(shape, backend=backend, dtype="float64", **kwargs)
    with torch.no_grad():
        theirs = torch.nn.LayerNorm(shape, **kwargs)
    rng = np.random.default_rng(5)
    for p in ours.parameters():  # not just ones and zeros
        p.data = nu_xp.asarray(rng.normal(size=p.shape), like=ours, dtype="float64")
    compare_with_torch(torch, backend, ours, theirs, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "kwargs", "x_shape", "frozen"),
    [
        (16, {}, (3, 7, 16), ()),
        ((2, 3), {"bias": False}, (4, 2, 3), ("weight",)),
        (4, {"elementwise_affine": False}, (2, 3, 4), ()),
        (5, {}, (5,), ("bias",)),
        (5, {}, (0, 5), ()),
    ],
)
def test_layernorm_kernel_equals_the_formula(monkeypatch, backend, dtype, shape, kwargs, x_shape, frozen):
    """The backend's ``Ops.layer_norm`` (torch: ATen's native kernels) against the reference formula
    ``Ops.layer_norm`` through the layer: output, input and parameter gradients, frozen parameters
    (no gradient), an unbatched input, an empty batch, and a backward without the input's gradient."""
    rng = np.random.default_rng(7)
    x = on(backend, rng.normal(size=x_shape) * 3 + 1, dtype=dtype)
    g = on(backend, rng.normal(size=x_shape), dtype=dtype)
    results = []
    for formula in (False, True):
        layer = nu_xp.LayerNorm(shape, backend=backend, dtype=dtype, **kwargs)
        for p in layer.parameters():
            p.data = nu_xp.asarray(np.random.default_rng(5).normal(size=p.shape), like=layer, dtype=dtype)
        for name in frozen:
            getattr(layer, name).requires_grad = False
        if formula:  # the reference formula on this backend's Ops class
            ops_class = type(layer.backend.ops)
            monkeypatch.setattr(ops_class, "layer_norm", nu_xp.backends.Ops.layer_norm)
            monkeypatch.setattr(ops_class, "layer_norm_backward", nu_xp.backends.Ops.layer_norm_backward)
        y = layer(x)
        dx = layer.backward(g)
        layer.zero_grad()
        layer(x)
        assert layer.backward(g, input_grad=False) is None
        grads = [p.grad for p in layer.parameters()]
        assert [grad is None for grad in grads] == [p.requires_grad is False for p in layer.parameters()]
        results.append([host(y), host(dx), *[host(grad) for grad in grads if grad is not None]])
    for ours, reference in zip(*results):
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        assert_close(ours, reference, ulps=64)


@pytest.mark.parametrize(
    "layer", [lambda b: nu_xp.BatchNorm1d(3, backend=b), lambda b: nu_xp.LayerNorm((2, 3), backend=b)]
)
# --8<-- [start:normalization_gradcheck]
@pytest.mark.parametrize("training", [True, False])
def test_normalization_gradcheck(backend, layer, training):
    norm = layer(backend)
    rng = np.random.default_rng(2)
    for p in norm.parameters():
        p.data = nu_xp.asarray(rng.normal(size=p.shape), like=norm)
    norm.train(training)
    x = on(backend, rng.normal(size=(4, 2, 3)) if isinstance(norm, nu_xp.LayerNorm) else rng.normal(size=(5, 3)))
    assert nu_xp.gradcheck(norm, x) < 1e-6


# --8<-- [end:normalization_gradcheck]


def test_buffers_are_saved_loaded_moved_and_not_trained(backend, tmp_path):
    model = nu_xp.Sequential(nu_xp.Linear(3, 4, seed=0, backend=backend), nu_xp.BatchNorm1d(4, backend=backend))
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.params) == 4  # weight, bias of each: the running statistics are not parameters
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.random.default_rng(1).normal(size=(16, 4))
    nu_xp.fit(model, nu_xp.MSELoss(), opt, x, y, epochs=3, batch_size=8, progress=False, seed=0)
    state = model.state_dict()
    assert int(state["1.num_batches_tracked"]) == 6 and state["1.num_batches_tracked"].dtype == np.int64
    nu_xp.save(model, tmp_path / "bn.npz")
    for target in ("numpy", "array_api_strict", "torch"):
        pytest.importorskip(target)
        loaded = nu_xp.load(tmp_path / "bn.npz", backend=target).eval()
        np.testing.assert_array_equal(loaded.state_dict()["1.running_var"], state["1.running_var"])
        np.testing.assert_allclose(
            nu_xp.to_host(loaded.predict(x)), nu_xp.to_host(model.eval().predict(x)), rtol=1e-5, atol=1e-6
        )
    moved = model.to(dtype="float64")
    assert nu_xp.backends.dtype_name(moved[1].running_mean.dtype) == "float64"


def test_batchnorm_bad_input(backend):
    bn = nu_xp.BatchNorm1d(3, backend=backend)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(on(backend, np.ones((1, 3)), dtype="float32"))
    bn.eval()(on(backend, np.ones((1, 3)), dtype="float32"))  # eval mode uses the running statistics
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\) expects input of shape \(N, C\) or \(N, C, L\) with C = 3"):
        bn(on(backend, np.ones((2, 4)), dtype="float32"))
    with pytest.raises(ValueError, match="LayerNorm"):
        nu_xp.LayerNorm(4, backend=backend)(on(backend, np.ones((2, 3)), dtype="float32"))
    with pytest.raises(ValueError, match="momentum"):
        nu_xp.BatchNorm2d(3, momentum=2.0)
