"""Inference that stores nothing, layers used at several places, and tied parameters — against PyTorch."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, host, on, rewrite_meta, small_mlp


def _torch_linear(torch, layer):
    t = torch.nn.Linear(layer.in_features, layer.out_features).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(np.array(host(layer.weight.data))))
        t.bias.copy_(torch.from_numpy(np.array(host(layer.bias.data))))
    return t


def test_no_grad_keeps_nothing_and_backward_then_refuses(backend, rng):
    layer = nu_xp.Linear(3, 2, seed=0, backend=backend, dtype="float64")
    x = on(backend, rng.normal(size=(4, 3)))
    assert nu_xp.is_grad_enabled()
    with nu_xp.no_grad():
        assert not nu_xp.is_grad_enabled()
        y = layer(x)
        with nu_xp.enable_grad():
            assert nu_xp.is_grad_enabled()
    assert nu_xp.is_grad_enabled()
    assert layer.pending_backwards() == 0
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(nu_xp.asarray(np.ones((4, 2)), like=y))


@pytest.mark.parametrize("between", ["predict", "evaluate", "summary", "no_grad"])
def test_inference_between_forward_and_backward_changes_nothing(backend, rng, between):

    x = on(backend, rng.normal(size=(6, 3)))
    other = on(backend, rng.normal(size=(9, 3)))
    target = on(backend, rng.normal(size=(6, 2)))
    results = []
    for disturb in (False, True):
        model, loss = small_mlp(backend), nu_xp.MSELoss()
        value = loss(model(x), target)
        if disturb:
            if between == "predict":
                model.predict(other)
            elif between == "evaluate":
                nu_xp.evaluate(model, loss, other, on(backend, rng.normal(size=(9, 2))))
            elif between == "summary":
                model.summary((3,))
            else:
                with nu_xp.no_grad():
                    loss(model(other), on(backend, rng.normal(size=(9, 2))))
        dx = model.backward(loss.backward())
        results.append((float(value), host(dx), [host(p.grad) for p in model.parameters()]))
    (v0, dx0, g0), (v1, dx1, g1) = results
    assert v0 == v1
    np.testing.assert_array_equal(dx0, dx1)
    for a, b in zip(g0, g1):
        np.testing.assert_array_equal(a, b)


def test_a_reused_layer_gets_pytorch_gradients(backend, rng, torch):
    """One ``Linear`` and one ``Tanh`` used twice in a Sequential, inside a Residual too."""
    lin = nu_xp.Linear(4, 4, seed=3, backend=backend, dtype="float64")
    act = nu_xp.Tanh()
    head = nu_xp.Linear(4, 2, seed=4, backend=backend, dtype="float64")
    model = nu_xp.Sequential(lin, act, nu_xp.Residual(lin, act), lin, act, head)
    assert len(model.parameters()) == 4 and list(dict(model.named_parameters())) == [
        "0.weight",
        "0.bias",
        "5.weight",
        "5.bias",
    ]
    x_host = rng.normal(size=(5, 4))
    g_host = rng.normal(size=(5, 2))
    y = model(on(backend, x_host))
    # the three uses of lin are calls inside the model's call: only the model waits for its backward
    assert model.pending_backwards() == 1 and lin.pending_backwards() == 0 and act.pending_backwards() == 0
    dx = model.backward(on(backend, g_host))
    assert model.pending_backwards() == 0

    t_lin, t_head = _torch_linear(torch, lin), _torch_linear(torch, head)
    xt = torch.tensor(x_host, requires_grad=True)
    h = torch.tanh(t_lin(xt))
    h = h + torch.tanh(t_lin(h))
    yt = t_head(torch.tanh(t_lin(h)))
    yt.backward(torch.tensor(g_host))
    tol = {"ulps": 1e6, "dtype": "float64"}  # 2e-10: sums in another order
    assert_close(y, yt.detach().numpy(), **tol)
    assert_close(dx, xt.grad.numpy(), **tol)
    assert_close(lin.weight.grad, t_lin.weight.grad.numpy(), **tol)
    assert_close(lin.bias.grad, t_lin.bias.grad.numpy(), **tol)
    assert_close(head.weight.grad, t_head.weight.grad.numpy(), **tol)


def test_a_users_composite_layer_may_reuse_a_sublayer(backend, rng, torch):
    class Twice(nu_xp.Layer):
        """y = f(f(x)) with one sub-layer f: backward runs f's backward twice."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(self.inner(x))

        def backward(self, grad):
            return self.inner.backward(self.inner.backward(grad))

    lin = nu_xp.Linear(3, 3, seed=5, backend=backend, dtype="float64")
    block = Twice(lin)
    x_host, g_host = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    for call in (block, block.forward):  # through __call__ and through forward
        lin.zero_grad()
        call(on(backend, x_host))
        dx = block.backward(on(backend, g_host))
        t = _torch_linear(torch, lin)
        xt = torch.tensor(x_host, requires_grad=True)
        t(t(xt)).backward(torch.tensor(g_host))
        assert_close(dx, xt.grad.numpy(), dtype="float64", ulps=1e6)
        assert_close(lin.weight.grad, t.weight.grad.numpy(), dtype="float64", ulps=1e6)


def test_forwards_without_backward_keep_bounded_memory(backend, rng):
    """A model run forward again and again without backward keeps at most MAX_PENDING calls, the latest ones."""
    model = nu_xp.Sequential(nu_xp.Linear(3, 3, seed=0, backend=backend), nu_xp.ReLU())
    x = nu_xp.asarray(rng.normal(size=(2, 3)), like=model, dtype=model.dtype)
    limit = nu_xp.grad_mode.MAX_PENDING
    for _ in range(limit + 5):
        model(x)
    assert model.pending_backwards() == limit
    assert [layer.pending_backwards() for layer in model] == [0, 0]  # their calls live inside the model's
    g = nu_xp.asarray(np.ones((2, 3)), like=model, dtype=model.dtype)
    for _ in range(limit):
        model.backward(g)
    with pytest.raises(RuntimeError, match="let go without a backward"):
        model.backward(g)
    model(x)
    model.clear_cache()
    assert model.pending_backwards() == 0
    with pytest.raises(RuntimeError, match="let go"):
        model.backward(g)


def test_tied_weights_are_listed_once_summed_stepped_once_and_saved(backend, rng, torch, tmp_path):
    emb = nu_xp.Embedding(7, 4, backend=backend, dtype="float64")
    head = nu_xp.Linear(4, 7, seed=1, backend=backend, dtype="float64")
    head.weight = emb.weight  # weight tying: (7, 4) both ways
    model = nu_xp.Sequential(emb, nu_xp.Tanh(), head)
    assert list(dict(model.named_parameters())) == ["0.weight", "2.bias"]
    assert list(dict(model.named_parameters(remove_duplicate=False))) == ["0.weight", "2.weight", "2.bias"]
    assert model.tied_parameters() == {"2.weight": "0.weight"}
    assert set(model.state_dict()) == {"0.weight", "2.weight", "2.bias"}
    ids = np.array([0, 3, 3, 6, 1])
    g_host = rng.normal(size=(5, 7))
    model(nu_xp.asarray(ids, like=model))
    model.backward(on(backend, g_host))

    t_emb = torch.nn.Embedding(7, 4).double()
    t_head = torch.nn.Linear(4, 7).double()
    with torch.no_grad():
        t_emb.weight.copy_(torch.from_numpy(np.array(host(emb.weight.data))))
        t_head.bias.copy_(torch.from_numpy(np.array(host(head.bias.data))))
    t_head.weight = t_emb.weight
    t_head(torch.tanh(t_emb(torch.from_numpy(ids)))).backward(torch.tensor(g_host))
    assert_close(emb.weight.grad, t_emb.weight.grad.numpy(), dtype="float64", ulps=1e6)

    before = host(emb.weight.data).copy()
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.5)
    opt.step()
    assert_close(emb.weight.data, before - 0.5 * host(emb.weight.grad), dtype="float64")  # stepped once

    path = tmp_path / "tied.npz"
    nu_xp.save(model, path)
    loaded = nu_xp.load(path, backend=backend)
    assert loaded[2].weight is loaded[0].weight and loaded.tied_parameters() == {"2.weight": "0.weight"}
    assert_close(loaded[0].weight.data, emb.weight.data, dtype="float64")
    target = nu_xp.Sequential(
        nu_xp.Embedding(7, 4, backend=backend, dtype="float64"),
        nu_xp.Tanh(),
        nu_xp.Linear(4, 7, backend=backend, dtype="float64"),
    )
    target[2].weight = target[0].weight
    target.load_weights(path)
    assert target[2].weight is target[0].weight
    moved = copy.deepcopy(model).to("numpy")
    assert moved[2].weight is moved[0].weight


def test_a_tie_in_a_hostile_file_is_checked(tmp_path):
    emb = nu_xp.Embedding(3, 2)
    head = nu_xp.Linear(2, 3, seed=0)
    head.weight = emb.weight
    path = tmp_path / "tied.npz"
    nu_xp.save(nu_xp.Sequential(emb, head), path)
    for ties in ({"1.weight": "1.bias"}, {"1.weight": "nope"}, ["1.weight"], {"0.weight": "0.weight"}):
        bad = tmp_path / "bad.npz"
        rewrite_meta(path, bad, lambda meta, t=ties: {**meta, "ties": t})
        with pytest.raises(nu_xp.ModelFileError, match="tie"):
            nu_xp.load(bad)


def test_no_grad_inside_a_thread_is_its_own():
    import threading

    seen = []
    with nu_xp.no_grad():
        thread = threading.Thread(target=lambda: seen.append(nu_xp.is_grad_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_jax_float64_needs_its_64_bit_mode(tmp_path):
    pytest.importorskip("jax")
    path = tmp_path / "f64.npz"
    nu_xp.save(nu_xp.Linear(2, 2, seed=0, dtype="float64"), path)
    code = (
        "import nu_xp, sys\n"
        "for make in (lambda: nu_xp.Linear(2, 2, backend='jax', dtype='float64'),\n"
        "             lambda: nu_xp.Linear(2, 2).to('jax', dtype='float64'),\n"
        "             lambda: nu_xp.load(sys.argv[1], backend='jax')):\n"
        "    try:\n"
        "        make()\n"
        "    except ValueError as exc:\n"
        "        assert 'jax_enable_x64' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "print(nu_xp.Linear(2, 2, backend='jax').dtype)\n"
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "float32" in out.stdout
