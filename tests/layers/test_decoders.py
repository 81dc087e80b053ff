"""The layers that decode (transposed convolutions, upsampling, adaptive pooling, GroupNorm, Unflatten) and
TimeStep: PyTorch's values and gradients, gradcheck, save/load, summary, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, host, on
from tests.layers.test_conv import assert_native_equals_reference
from tests.layers.torch_reference import compare_with_torch

CT1D = [
    # in, out, kernel, stride, padding, output_padding, groups, bias, dilation, length
    (4, 2, 2, 2, 0, 0, 1, True, 1, 10),
    (4, 6, 3, 2, 1, 1, 2, False, 1, 7),
    (3, 3, 3, 3, 2, 1, 3, True, 2, 6),
    (2, 5, 4, 1, 0, 0, 1, True, 1, 1),
]
CT2D = [
    (8, 1, 4, 2, 1, 0, 1, True, 1, (4, 4)),
    (4, 6, (3, 2), (2, 3), (1, 0), (1, 2), 2, True, (1, 2), (5, 3)),
    (2, 2, 3, 1, 1, 0, 1, False, 1, (6, 5)),
]


def build_ct(cls, args, backend, dtype="float64"):
    c_in, c_out, k, s, p, op, g, b, d, _ = args
    return cls(c_in, c_out, k, stride=s, padding=p, output_padding=op, groups=g, bias=b, dilation=d, seed=0,
               backend=backend, dtype=dtype)  # fmt: skip


def torch_ct(torch, name, args):
    c_in, c_out, k, s, p, op, g, b, d, _ = args
    return getattr(torch.nn, name)(c_in, c_out, k, stride=s, padding=p, output_padding=op, groups=g, bias=b,
                                   dilation=d)  # fmt: skip


@pytest.mark.parametrize("args", CT1D)
def test_conv_transpose1d_equals_torch(torch, backend, args):
    x = np.random.default_rng(1).normal(size=(3, args[0], args[-1]))
    compare_with_torch(torch, backend, build_ct(nu_xp.ConvTranspose1d, args, backend),
                       torch_ct(torch, "ConvTranspose1d", args), x, steps=2)  # fmt: skip


@pytest.mark.parametrize("args", CT2D)
def test_conv_transpose2d_equals_torch(torch, backend, args):
    x = np.random.default_rng(2).normal(size=(2, args[0], *args[-1]))
    compare_with_torch(torch, backend, build_ct(nu_xp.ConvTranspose2d, args, backend),
                       torch_ct(torch, "ConvTranspose2d", args), x)  # fmt: skip


def test_conv_transpose_initializes_as_pytorch(torch):
    """PyTorch's bound: 1/√(C_out/groups · K) for the weight and the bias (the fan-in of its weight layout)."""
    layer = nu_xp.ConvTranspose2d(16, 8, 3, groups=2, seed=0)
    bound = 1 / np.sqrt(8 // 2 * 9)
    w, b = host(layer.weight.data), host(layer.bias.data)
    assert w.shape == (16, 4, 3, 3) and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound


@pytest.mark.parametrize("cls", [nu_xp.ConvTranspose1d, nu_xp.ConvTranspose2d])
def test_conv_transpose_gradcheck_and_its_native_kernel_agrees_with_the_formula(backend, cls):
    args = CT1D[1] if cls is nu_xp.ConvTranspose1d else CT2D[1]
    shape = (2, args[0], args[-1]) if cls is nu_xp.ConvTranspose1d else (2, args[0], *args[-1])
    x = on(backend, np.random.default_rng(3).normal(size=shape))
    assert nu_xp.gradcheck(build_ct(cls, args, backend), x) < 1e-6


@pytest.mark.parametrize(
    ("cls", "args"), [(nu_xp.ConvTranspose1d, a) for a in CT1D] + [(nu_xp.ConvTranspose2d, a) for a in CT2D]
)
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("kernels", ["numpy", "torch"])
def test_conv_transpose_native_kernels_equal_the_col2im_formula(monkeypatch, cls, args, input_grad, kernels):
    """Where a backend has its own kernels (``Ops.native_conv_transpose``: numpy's batch-last GEMMs, torch's oneDNN), a
    transposed convolution gives what the layer's col2im formula gives: output, dL/dx, dL/dW, dL/db."""
    spatial = args[-1] if isinstance(args[-1], tuple) else (args[-1],)
    x = np.random.default_rng(5).normal(size=(3, args[0], *spatial))
    make = lambda: build_ct(cls, args, kernels)  # noqa: E731
    assert_native_equals_reference(monkeypatch, kernels, "native_conv_transpose", make, x, input_grad, g_seed=6)


def test_conv_transpose_is_the_input_gradient_of_a_convolution(backend):
    """⟨conv(x), y⟩ = ⟨x, conv_transpose(y)⟩ for the same weights: the two are adjoint."""
    rng = np.random.default_rng(4)
    conv = nu_xp.Conv2d(3, 4, 3, stride=2, padding=1, bias=False, seed=0, backend=backend, dtype="float64")
    up = nu_xp.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, bias=False, seed=1,
                               backend=backend, dtype="float64")  # fmt: skip
    up.weight.data = conv.weight.data
    x, y = rng.normal(size=(2, 3, 8, 8)), rng.normal(size=(2, 4, 4, 4))
    left = float(np.sum(host(conv(on(backend, x))) * y))
    right = float(np.sum(x * host(up(on(backend, y)))))
    assert abs(left - right) < 1e-10 * max(abs(left), 1.0)


NORMS = [(3, 6, (2, 6, 5)), (1, 4, (3, 4, 2, 3)), (4, 4, (2, 4, 3, 3)), (2, 4, (5, 4))]


@pytest.mark.parametrize(("groups", "channels", "shape"), NORMS)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_equals_torch(torch, backend, groups, channels, shape, affine):
    layer = nu_xp.GroupNorm(groups, channels, affine=affine, backend=backend, dtype="float64")
    if affine:  # not the initial ones and zeros: the per-channel scale and shift must be applied
        layer.weight.data = on(backend, np.linspace(0.5, 2.0, channels))
        layer.bias.data = on(backend, np.linspace(-1.0, 1.0, channels))
    x = np.random.default_rng(5).normal(size=shape) * 3 + 1
    compare_with_torch(torch, backend, layer, torch.nn.GroupNorm(groups, channels, affine=affine), x, steps=2)


def test_group_norm_gradcheck(backend):
    layer = nu_xp.GroupNorm(2, 4, backend=backend, dtype="float64")
    layer.weight.data = on(backend, np.array([0.5, 1.5, -1.0, 2.0]))
    assert nu_xp.gradcheck(layer, on(backend, np.random.default_rng(6).normal(size=(3, 4, 5)))) < 1e-6


UPSAMPLES = [
    ({"scale_factor": 2}, (2, 3, 4, 5)),
    ({"size": (7, 4)}, (2, 3, 4, 5)),
    ({"scale_factor": 0.5}, (1, 2, 6, 4)),
    ({"scale_factor": 1.7, "mode": "bilinear"}, (2, 3, 4, 6)),
    ({"size": (3, 9), "mode": "bilinear", "align_corners": True}, (2, 2, 4, 6)),
    ({"scale_factor": (2.5, 1.5), "mode": "bilinear"}, (1, 2, 4, 6)),
    ({"size": (1, 1), "mode": "bilinear"}, (1, 2, 4, 6)),
    ({"scale_factor": 3, "mode": "linear"}, (2, 3, 4)),
    ({"size": 11, "mode": "linear", "align_corners": True}, (2, 3, 4)),
    ({"size": 5}, (2, 3, 4)),
]


@pytest.mark.parametrize(("kwargs", "shape"), UPSAMPLES, ids=[str(k) for k, _ in UPSAMPLES])
def test_upsample_equals_torch(torch, backend, kwargs, shape):
    x = np.random.default_rng(7).normal(size=shape)
    compare_with_torch(torch, backend, nu_xp.Upsample(**kwargs), torch.nn.Upsample(**kwargs), x)


ADAPTIVE = [(nu_xp.AdaptiveAvgPool1d, 3, (2, 3, 7)), (nu_xp.AdaptiveAvgPool1d, 7, (2, 3, 4)),
            (nu_xp.AdaptiveAvgPool2d, 1, (2, 3, 5, 6)), (nu_xp.AdaptiveAvgPool2d, (3, None), (2, 3, 7, 5)),
            (nu_xp.AdaptiveAvgPool2d, (2, 4), (1, 2, 5, 7))]  # fmt: skip


@pytest.mark.parametrize(("cls", "size", "shape"), ADAPTIVE)
def test_adaptive_average_pooling_equals_torch(torch, backend, cls, size, shape):
    x = np.random.default_rng(8).normal(size=shape)
    compare_with_torch(torch, backend, cls(size), getattr(torch.nn, cls.__name__)(size), x)


@pytest.mark.parametrize(
    "layer",
    [nu_xp.Upsample(scale_factor=1.5, mode="bilinear"), nu_xp.AdaptiveAvgPool2d((2, 3)), nu_xp.Unflatten(1, (2, 3)),
     nu_xp.TimeStep(1, batch_first=True)],
    ids=["upsample", "adaptive", "unflatten", "timestep"],
)  # fmt: skip
def test_parameter_free_decoders_gradcheck(backend, layer):
    shape = {"Unflatten": (2, 6, 2), "TimeStep": (2, 4, 3)}.get(type(layer).__name__, (2, 2, 5, 4))
    assert nu_xp.gradcheck(layer, on(backend, np.random.default_rng(9).normal(size=shape))) < 1e-6


def test_unflatten_equals_torch(torch, backend):
    x = np.random.default_rng(10).normal(size=(3, 12, 2))
    compare_with_torch(torch, backend, nu_xp.Unflatten(1, (3, -1)), torch.nn.Unflatten(1, (3, 4)), x)
    compare_with_torch(torch, backend, nu_xp.Unflatten(-1, (1, 2)), torch.nn.Unflatten(-1, (1, 2)), x)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("index", [-1, 0, 2])
def test_time_step_passes_one_step_and_its_gradient(backend, batch_first, index):
    x = np.random.default_rng(11).normal(size=(3, 4, 5))
    layer = nu_xp.TimeStep(index, batch_first=batch_first)
    y = layer(on(backend, x))
    assert_close(y, x[:, index] if batch_first else x[index])
    g = np.random.default_rng(12).normal(size=y.shape)
    dx = np.zeros_like(x)
    if batch_first:
        dx[:, index] = g
    else:
        dx[index] = g
    assert_close(layer.backward(on(backend, g)), dx)


def test_a_sequence_classifier_needs_no_layer_of_its_own(backend, tmp_path):
    """The DESIGN's sentence, as a test: Embedding → LSTM → Select(0) → TimeStep → Linear trains and saves."""
    model = nu_xp.Sequential(
        nu_xp.Embedding(10, 4, seed=0, backend=backend), nu_xp.LSTM(4, 8, batch_first=True, seed=1, backend=backend),
        nu_xp.Select(0), nu_xp.TimeStep(batch_first=True), nu_xp.Linear(8, 3, seed=2, backend=backend),
    )  # fmt: skip
    x = np.random.default_rng(13).integers(0, 10, (16, 6))
    y = x[:, -1] % 3
    history = nu_xp.fit(model, nu_xp.CrossEntropyLoss(), nu_xp.optim.Adam(model.parameters(), lr=0.05), x, y,
                        epochs=30, batch_size=16, progress=False)  # fmt: skip
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    nu_xp.save(model, tmp_path / "m.npz")
    again = nu_xp.load(tmp_path / "m.npz", backend=backend)
    assert_close(again.predict(x), model.predict(x))
    assert "(N, 8)" in model.summary((6,))


def test_a_decoder_saves_loads_and_summarizes(backend, tmp_path):
    model = nu_xp.Sequential(
        nu_xp.Linear(4, 32, seed=0, backend=backend), nu_xp.Unflatten(1, (8, 2, 2)),
        nu_xp.ConvTranspose2d(8, 4, 4, stride=2, padding=1, seed=1, backend=backend),
        nu_xp.GroupNorm(2, 4, backend=backend), nu_xp.ReLU(), nu_xp.Upsample(scale_factor=2, mode="bilinear"),
        nu_xp.Conv2d(4, 1, 3, padding=1, seed=2, backend=backend), nu_xp.AdaptiveAvgPool2d((5, 5)),
    )  # fmt: skip
    x = np.random.default_rng(14).normal(size=(3, 4)).astype(np.float32)
    nu_xp.save(model, tmp_path / "d.npz")
    again = nu_xp.load(tmp_path / "d.npz", backend=backend)
    assert_close(again.predict(x), model.predict(x))
    text = model.summary((4,))
    for expected in ("(N, 8, 2, 2)", "(N, 4, 4, 4)", "(N, 4, 8, 8)", "(N, 1, 5, 5)"):
        assert expected in text, text


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: nu_xp.ConvTranspose1d(2, 2, 3, stride=2, output_padding=2), ValueError, "output_padding"),
        (lambda: nu_xp.ConvTranspose2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
        (lambda: nu_xp.GroupNorm(3, 4), ValueError, "num_groups=3 must divide num_channels=4"),
        (lambda: nu_xp.Upsample(), ValueError, "either size or scale_factor"),
        (lambda: nu_xp.Upsample(size=3, scale_factor=2), ValueError, "either size or scale_factor"),
        (lambda: nu_xp.Upsample(scale_factor=2, align_corners=True), ValueError, "linear modes only"),
        (lambda: nu_xp.Upsample(scale_factor=-1), ValueError, "positive finite"),
        (lambda: nu_xp.Upsample(scale_factor=2, mode="cubic"), ValueError, "mode must be one of"),
        (lambda: nu_xp.AdaptiveAvgPool2d((2, 3, 4)), TypeError, "output_size"),
        (lambda: nu_xp.Unflatten(1, (0, 3)), ValueError, "positive"),
        (lambda: nu_xp.TimeStep(batch_first="yes"), TypeError, "batch_first"),
    ],
)
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_bad_inputs_are_named(backend):
    with pytest.raises(ValueError, match="expects input of shape"):
        nu_xp.ConvTranspose2d(2, 2, 3, backend=backend)(on(backend, np.zeros((1, 3, 4, 4)), dtype="float32"))
    with pytest.raises(ValueError, match="expects input of shape \\(N, C, H, W\\)"):
        nu_xp.Upsample(scale_factor=2, mode="bilinear")(on(backend, np.zeros((1, 2, 3))))
    with pytest.raises(ValueError, match="cannot split axis 1 of size 5"):
        nu_xp.Unflatten(1, (2, 3))(on(backend, np.zeros((2, 5))))
    with pytest.raises(ValueError, match="TimeStep\\(index=7\\)"):
        nu_xp.TimeStep(7)(on(backend, np.zeros((3, 2, 4))))
