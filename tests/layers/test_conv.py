"""Conv1d and Conv2d: PyTorch's values and gradients over a grid of arguments, gradcheck, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, on
from tests.layers.torch_reference import compare_with_torch

CONV1D = [
    # in, out, kernel, stride, padding, dilation, groups, bias, length
    (1, 4, 5, 2, 1, 1, 1, True, 40),
    (4, 6, 3, 1, "same", 2, 2, False, 11),
    (3, 3, 3, 2, "valid", 1, 3, True, 9),
    (2, 4, 4, 3, 2, 1, 1, True, 10),
    (2, 2, 1, 1, 0, 1, 1, True, 5),
    (2, 3, 4, 1, "same", 1, 1, True, 7),  # an even kernel: 'same' pads one more on the right
]
CONV2D = [
    (1, 6, 5, 1, 2, 1, 1, True, (12, 12)),
    (4, 4, (3, 2), (2, 1), (1, 0), (1, 2), 2, False, (7, 8)),
    (3, 6, 3, 1, "same", 1, 3, True, (5, 6)),
    (1, 3, (3, 2), (2, 1), (1, 0), (2, 1), 1, False, (9, 8)),  # one channel, strided and dilated (JAX: by taps)
    (1, 2, (2, 3), 1, "same", 1, 1, False, (5, 8)),  # one channel, stride 1, uneven padding, odd output (by blocks)
    (1, 3, 1, 1, 0, 1, 1, True, (3, 5)),  # one channel, a 1 × 1 kernel (JAX: by blocks)
]


def build(cls, args, backend, dtype="float64", seed=0):
    c_in, c_out, k, s, p, d, g, b, _ = args
    return cls(
        c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g, bias=b, seed=seed, backend=backend, dtype=dtype
    )


def torch_conv(torch, cls_name, args):
    c_in, c_out, k, s, p, d, g, b, _ = args
    return getattr(torch.nn, cls_name)(c_in, c_out, k, stride=s, padding=p, dilation=d, groups=g, bias=b)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own note about its copy
@pytest.mark.parametrize("args", CONV1D)
def test_conv1d_equals_torch(torch, backend, args):
    x = np.random.default_rng(1).normal(size=(3, args[0], args[-1]))
    compare_with_torch(
        torch, backend, build(nu_xp.Conv1d, args, backend), torch_conv(torch, "Conv1d", args), x, steps=2
    )


@pytest.mark.parametrize("args", CONV2D)
def test_conv2d_equals_torch(torch, backend, args):
    x = np.random.default_rng(2).normal(size=(2, args[0], *args[-1]))
    compare_with_torch(torch, backend, build(nu_xp.Conv2d, args, backend), torch_conv(torch, "Conv2d", args), x)


@pytest.mark.parametrize(
    ("cls", "args"),
    [(nu_xp.Conv1d, CONV1D[1]), (nu_xp.Conv1d, CONV1D[3]), (nu_xp.Conv2d, CONV2D[1]), (nu_xp.Conv2d, CONV2D[4])],
)
def test_conv_gradcheck(backend, cls, args):
    shape = (2, args[0], args[-1]) if cls is nu_xp.Conv1d else (2, args[0], *args[-1])
    x = on(backend, np.random.default_rng(3).normal(size=shape))
    assert nu_xp.gradcheck(build(cls, args, backend), x) < 1e-6


def test_conv_skips_the_input_gradient_when_asked(backend):
    conv = build(nu_xp.Conv1d, CONV1D[0], backend)
    x = on(backend, np.random.default_rng(4).normal(size=(2, 1, 40)))
    y = conv(x)
    assert conv.backward(nu_xp.backends.ops_of(y).xp.ones_like(y), input_grad=False) is None
    assert conv.weight.grad is not None


def test_conv_state_dict_loads_into_torch_and_back(torch, tmp_path):
    model = nu_xp.Sequential(
        nu_xp.Conv1d(1, 4, 5, stride=2, seed=0), nu_xp.ReLU(), nu_xp.Flatten(), nu_xp.Linear(4 * 18, 3, seed=1)
    )
    ref = torch.nn.Sequential(
        torch.nn.Conv1d(1, 4, 5, stride=2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(72, 3)
    )
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(5, 1, 40)).astype(np.float32)
    np.testing.assert_allclose(nu_xp.to_host(model(x)), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    nu_xp.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(nu_xp.to_host(nu_xp.load(tmp_path / "m.npz")(x)), nu_xp.to_host(model(x)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 4}, ValueError, "groups=4 must divide"),
        ({"in_channels": 2, "out_channels": 2, "kernel_size": 3, "stride": 0}, ValueError, "stride must be ≥ 1"),
        ({"in_channels": 2, "out_channels": 2, "kernel_size": 0}, ValueError, "kernel_size must be ≥ 1"),
        ({"in_channels": 2, "out_channels": 2, "kernel_size": 3, "padding": -1}, ValueError, "padding must be ≥ 0"),
        ({"in_channels": 2, "out_channels": 2, "kernel_size": 3, "padding": "full"}, ValueError, "'same' or 'valid'"),
        (
            {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": "same"},
            ValueError,
            "stride 1",
        ),
        ({"in_channels": 2, "out_channels": 2, "kernel_size": 2.5}, TypeError, "kernel_size must be an int"),
        ({"in_channels": 0, "out_channels": 2, "kernel_size": 3}, ValueError, "in_channels"),
    ],
)
def test_bad_conv_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        nu_xp.Conv1d(**kwargs)


def test_bad_conv_inputs(backend):
    conv = nu_xp.Conv1d(2, 3, 5, backend=backend)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, C, L\) with C = 2, got \(4, 3, 10\)"):
        conv(on(backend, np.ones((4, 3, 10)), dtype="float32"))
    with pytest.raises(ValueError, match=r"expects input of shape"):
        conv(on(backend, np.ones((4, 10)), dtype="float32"))
    with pytest.raises(ValueError, match="kernel spans 5.*only 4"):
        conv(on(backend, np.ones((4, 2, 4)), dtype="float32"))
    y = conv(on(backend, np.ones((4, 2, 10)), dtype="float32"))
    with pytest.raises(ValueError, match="grad has shape"):
        conv.backward(on(backend, np.ones((4, 3, 5)), dtype="float32"))
    assert tuple(y.shape) == (4, 3, 6)


CONV2D_EVEN_SAME = (2, 3, (2, 4), 1, "same", (2, 1), 1, True, (6, 7))  # uneven padding on both axes


def native_ops(name):
    """The ``Ops`` class of a backend with its own convolution and pooling kernels (skips when not installed)."""
    if name == "torch":
        pytest.importorskip("torch")
        from nu_xp.backends.torch_ops import TorchOps

        return TorchOps
    if name == "jax":
        pytest.importorskip("jax")
        from nu_xp.backends.jax_ops import JaxOps

        return JaxOps
    from nu_xp.backends.numpy_ops import NumpyOps

    return NumpyOps


@pytest.mark.parametrize(
    ("cls", "args"),
    [(nu_xp.Conv1d, a) for a in CONV1D] + [(nu_xp.Conv2d, a) for a in (*CONV2D, CONV2D_EVEN_SAME)],
)
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("kernels", ["numpy", "torch", "jax"])
def test_native_kernels_equal_the_im2col_formula(monkeypatch, rng, cls, args, input_grad, kernels):
    """Where a backend has its own convolution kernels (``Ops.native_conv``: torch's oneDNN, numpy's
    batch-last GEMMs, XLA's convolutions on JAX), they give what the layer's own im2col formula gives:
    output, dL/dx, dL/dW, dL/db."""
    spatial = args[-1] if isinstance(args[-1], tuple) else (args[-1],)
    x = rng.normal(size=(3, args[0], *spatial))
    assert_native_equals_reference(
        monkeypatch, kernels, "native_conv", lambda: build(cls, args, kernels), x, input_grad
    )


def assert_native_equals_reference(monkeypatch, kernels, flag, make, x_host, input_grad, g_seed=1):
    """A layer from ``make()`` run on ``x_host`` (on backend ``kernels``) with the backend's own kernels
    (``Ops.<flag>`` True) and with the layer's reference formula: the same output, dL/dx (None with
    ``input_grad=False``) and parameter grads."""
    ops_class = native_ops(kernels)  # skips where the backend is not installed
    x = on(kernels, x_host)
    results = []
    for native in (True, False):
        monkeypatch.setattr(ops_class, flag, native)
        layer = make()
        y = layer(x)
        g = on(kernels, np.random.default_rng(g_seed).normal(size=tuple(y.shape)))
        dx = layer.backward(g, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        results.append((y, dx, [p.grad for p in layer.parameters()]))
    (y1, dx1, g1), (y2, dx2, g2) = results
    assert_close(y1, y2)
    if input_grad:
        assert tuple(dx1.shape) == tuple(x.shape)
        assert_close(dx1, dx2)
    for a, b in zip(g1, g2):
        assert_close(a, b)


@pytest.mark.parametrize("nd", [1, 2])
def test_an_empty_batch_goes_through_convolutions_and_pools(backend, nd):
    """A batch of zero samples (the tail of a split, a filtered batch) gives empty outputs and gradients of
    the right shapes, parameter gradients of zeros, on every backend and through every kernel."""
    conv, pool, avg, up = (
        (nu_xp.Conv1d, nu_xp.MaxPool1d, nu_xp.AvgPool1d, nu_xp.ConvTranspose1d)
        if nd == 1
        else (nu_xp.Conv2d, nu_xp.MaxPool2d, nu_xp.AvgPool2d, nu_xp.ConvTranspose2d)
    )
    kw = {"backend": backend, "dtype": "float64"}
    model = nu_xp.Sequential(
        conv(1, 2, 3, padding=1, seed=2, **kw),  # one input channel: JAX's convolution by taps
        conv(2, 3, 3, padding=1, seed=0, **kw), pool(2), avg(2), up(3, 2, 2, stride=2, seed=1, **kw),
    )  # fmt: skip
    x = on(backend, np.zeros((0, 1, *(8,) * nd)))
    y = model(x)
    assert tuple(y.shape) == (0, 2, *(4,) * nd)
    dx = model.backward(on(backend, np.zeros(tuple(y.shape))))
    assert tuple(dx.shape) == tuple(x.shape)
    for p in model.parameters():
        assert tuple(p.grad.shape) == tuple(p.shape)
        assert_close(p.grad, np.zeros(tuple(p.shape)))


@pytest.mark.parametrize(("args", "path"), [(CONV2D[0], "blocks"), (CONV2D[4], "blocks"), (CONV2D[3], "taps")])
def test_jax_takes_a_one_channel_convolution_by_blocks_or_by_taps(monkeypatch, args, path):
    """On JAX's CPU a 2-D convolution of one input channel goes by space-to-depth when its stride and dilation
    are 1 (``jax_blocks``), else by taps (``jax_windows``); either gives the im2col formula's numbers."""
    native_ops("jax")
    from nu_xp.backends import jax_blocks, jax_windows

    module, name = (jax_blocks, "conv_by_blocks") if path == "blocks" else (jax_windows, "conv_by_taps")
    calls = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a: calls.append(a) or real(*a))
    spatial = args[-1]
    x = np.random.default_rng(5).normal(size=(2, 1, *spatial))
    assert_native_equals_reference(monkeypatch, "jax", "native_conv", lambda: build(nu_xp.Conv2d, args, "jax"), x, True)
    assert len(calls) == 1
