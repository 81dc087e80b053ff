"""What a forward keeps for its backward (``nu_xp.grad_mode``): one node per call, matched to its own backward.

Every case is compared with PyTorch's autograd for the same module graph:
a siamese model (two top-level forwards, two backwards in reverse order),
truncated backpropagation through time (an LSTM's chunks), a sub-layer called
on its own between a model's forward and backward, losses used twice. Then the
errors of a backward that cannot be matched, and memory that stays bounded.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc

import numpy as np
import pytest

import nu_xp
from tests.helpers import assert_close, host, on, small_mlp

TOL = {"dtype": "float64", "ulps": 1e6}  # ~2e-10: sums in another order than PyTorch's


def _copy_into(torch, ours, module):
    """``module`` (a torch module) with ``ours``'s weights, in float64."""
    module = module.double()
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    return module


def _torch_mlp(torch, ours):
    nn = torch.nn
    return _copy_into(torch, ours, nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Dropout(0.0),
                                                 nn.Linear(5, 2)))  # fmt: skip


def _grads(model):
    return {name: host(p.grad) for name, p in model.named_parameters()}


def _assert_grads(model, module):
    theirs = dict(module.named_parameters())
    for name, grad in _grads(model).items():
        assert_close(grad, theirs[name].grad.numpy(), **TOL)


def test_a_siamese_model_gets_pytorchs_gradients(backend, torch, rng):
    """``model(a); model(b); model.backward(gb); model.backward(ga)``: each backward reads its own forward."""
    model = small_mlp(backend)
    module = _torch_mlp(torch, model)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
    ga, gb = rng.normal(size=(4, 2)), rng.normal(size=(6, 2))
    ya, yb = model(on(backend, a)), model(on(backend, b))
    assert model.pending_backwards() == 2
    dxb = model.backward(on(backend, gb))
    dxa = model.backward(on(backend, ga))
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    yat, ybt = module(at), module(bt)
    ((yat * torch.tensor(ga)).sum() + (ybt * torch.tensor(gb)).sum()).backward()
    assert_close(ya, yat.detach().numpy(), **TOL)
    assert_close(yb, ybt.detach().numpy(), **TOL)
    assert_close(dxa, at.grad.numpy(), **TOL)
    assert_close(dxb, bt.grad.numpy(), **TOL)
    _assert_grads(model, module)
    assert model.pending_backwards() == 0


@pytest.mark.parametrize("carry", ["through", "detached"])
def test_truncated_backpropagation_through_time(backend, torch, rng, carry):
    """An LSTM on chunk 2 from chunk 1's final state; backward of chunk 2, then of chunk 1.

    ``through``: chunk 2's state gradient flows into chunk 1 (full backpropagation through both);
    ``detached``: chunk 1's backward gets its own output's gradient only (truncated BPTT).
    """
    lstm = nu_xp.LSTM(3, 4, num_layers=2, seed=0, backend=backend, dtype="float64")
    module = _copy_into(torch, lstm, torch.nn.LSTM(3, 4, num_layers=2))
    x1, x2 = rng.normal(size=(5, 2, 3)), rng.normal(size=(4, 2, 3))
    g1, g2 = rng.normal(size=(5, 2, 4)), rng.normal(size=(4, 2, 4))
    out1, state1 = lstm(on(backend, x1))
    assert out1.shape == (5, 2, 4)
    out2, _ = lstm(on(backend, x2), state1)
    dx2, (dh1, dc1) = lstm.backward(on(backend, g2))
    if carry == "through":
        dx1 = lstm.backward((on(backend, g1), (dh1, dc1)))
    else:
        dx1 = lstm.backward(on(backend, g1))
    x1t, x2t = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    out1t, (h, c) = module(x1t)
    if carry == "detached":
        h, c = h.detach(), c.detach()
    out2t, _ = module(x2t, (h, c))
    ((out1t * torch.tensor(g1)).sum() + (out2t * torch.tensor(g2)).sum()).backward()
    assert_close(out2, out2t.detach().numpy(), **TOL)
    assert_close(dx1, x1t.grad.numpy(), **TOL)
    assert_close(dx2, x2t.grad.numpy(), **TOL)
    _assert_grads(lstm, module)


def test_a_sublayer_called_alone_between_forward_and_backward(backend, torch, rng):
    """``model(x1); lin(x2); model.backward(g)``: the model's backward reads x1, ``lin.backward`` then x2."""
    model = small_mlp(backend)
    lin = model[0]
    module = _torch_mlp(torch, model)
    x1, x2 = rng.normal(size=(4, 3)), rng.normal(size=(7, 3))
    g, g2 = rng.normal(size=(4, 2)), rng.normal(size=(7, 5))
    model(on(backend, x1))
    lin(on(backend, x2))
    dx = model.backward(on(backend, g))
    x1t = torch.tensor(x1, requires_grad=True)
    (module(x1t) * torch.tensor(g)).sum().backward()
    assert_close(dx, x1t.grad.numpy(), **TOL)
    _assert_grads(model, module)  # nothing of x2 reached the model's gradients
    dx2 = lin.backward(on(backend, g2))
    x2t = torch.tensor(x2, requires_grad=True)
    (module[0](x2t) * torch.tensor(g2)).sum().backward()
    assert_close(dx2, x2t.grad.numpy(), **TOL)
    _assert_grads(model, module)


def test_composites_and_calls_are_one_mechanism(backend, torch, rng):
    """``layer(x)`` and ``layer.forward(x)`` are the same call for built-in composites and users' layers."""
    block = nu_xp.TransformerEncoderLayer(4, 2, 8, dropout=0.0, seed=0, backend=backend, dtype="float64")
    module = _copy_into(torch, block, torch.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0))
    x, g = rng.normal(size=(3, 2, 4)), rng.normal(size=(3, 2, 4))
    xt = torch.tensor(x, requires_grad=True)
    (module(xt) * torch.tensor(g)).sum().backward()
    for call in (block, block.forward):
        block.zero_grad()
        call(on(backend, x))
        block.self_attn(on(backend, x))  # the sub-layer alone in between: its own call
        dx = block.backward(on(backend, g))
        assert_close(dx, xt.grad.numpy(), **TOL)
        _assert_grads(block, module)
        assert block.self_attn.pending_backwards() == 1 and block.pending_backwards() == 0
        block.self_attn.clear_cache()


def test_a_loss_used_twice_keeps_each_call(backend, torch, rng):
    loss = nu_xp.CrossEntropyLoss(label_smoothing=0.1)
    za, zb = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    ya, yb = rng.integers(0, 3, 4), rng.integers(0, 3, 5)
    loss(on(backend, za), on(backend, ya, dtype=None))
    loss(on(backend, zb), on(backend, yb, dtype=None))
    gb, ga = loss.backward(), loss.backward()
    ref = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    for z, y, got in ((za, ya, ga), (zb, yb, gb)):
        zt = torch.tensor(z, requires_grad=True)
        ref(zt, torch.tensor(y)).backward()
        assert_close(got, zt.grad.numpy(), **TOL)
    assert not hasattr(loss, "_cache")  # no second channel on the instance


def test_a_backward_without_its_forward_raises_and_says_why(backend, rng):
    model = small_mlp(backend)
    x, g = on(backend, rng.normal(size=(4, 3))), on(backend, rng.normal(size=(4, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(g)
    with nu_xp.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(g)
    model(x)
    with pytest.raises(RuntimeError, match="inside another layer's call"):
        model[4].backward(g)  # its forward was part of the model's call: the model's backward differentiates it

    class Forgetful(nu_xp.Layer):
        def __init__(self):
            super().__init__()
            self.inner = nu_xp.Linear(3, 3, seed=0, backend=backend, dtype="float64")
            self.other = nu_xp.Linear(3, 3, seed=1, backend=backend, dtype="float64")

        def forward(self, x):
            return self.inner(x)

        def backward(self, grad):
            return self.other.backward(self.inner.backward(grad))  # other's forward never ran in this call

    layer = Forgetful()
    layer(x)
    with pytest.raises(RuntimeError, match="Forgetful's forward did not call Linear"):
        layer.backward(on(backend, rng.normal(size=(4, 3))))


def test_a_failed_backward_can_be_called_again(backend, rng):
    """A gradient of the wrong shape is refused before anything changed; the forward stays pending."""
    lin = nu_xp.Linear(3, 2, seed=0, backend=backend, dtype="float64")
    x = on(backend, rng.normal(size=(4, 3)))
    lin(x)
    with pytest.raises(ValueError, match="shape"):
        lin.backward(on(backend, np.ones((5, 2))))
    assert lin.pending_backwards() == 1 and lin.weight.grad is None
    lin.backward(on(backend, np.ones((4, 2))))
    assert_close(lin.weight.grad, np.ones((4, 2)).T @ host(x), **TOL)


def test_memory_stays_bounded_without_backward(backend, rng):
    """2000 forwards outside no_grad and no backward: at most MAX_PENDING calls are kept."""
    model = nu_xp.Sequential(
        nu_xp.Linear(64, 64, seed=0, backend=backend), nu_xp.ReLU(), nu_xp.Linear(64, 64, seed=1, backend=backend)
    )
    x = nu_xp.asarray(rng.normal(size=(32, 64)), like=model, dtype=model.dtype)
    tracing = backend == "numpy"  # numpy reports its allocations to tracemalloc; the others keep their own pools
    if tracing:
        gc.collect()
        tracemalloc.start()
    try:
        for i in range(2000):
            model(x)
            if i == 99 and tracing:
                gc.collect()
                after_100 = tracemalloc.get_traced_memory()[0]
        assert model.pending_backwards() == nu_xp.grad_mode.MAX_PENDING
        if tracing:
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - after_100
            one_call = 3 * 32 * 64 * 4  # the arrays one call keeps, in bytes
            assert growth < 4 * one_call, f"memory grew by {growth} bytes after the first 100 forwards"
    finally:
        if tracing:
            tracemalloc.stop()


def test_the_nodes_are_per_thread(backend, rng):
    """Two threads run the same model forward and backward at once: each backward reads its own thread's call."""
    model = nu_xp.Sequential(nu_xp.Linear(3, 2, seed=0, backend=backend, dtype="float64"), nu_xp.Tanh())
    xs = [rng.normal(size=(4, 3)) for _ in range(2)]
    expected = []
    for x in xs:
        model(on(backend, x))
        expected.append(host(model.backward(on(backend, np.ones((4, 2))))))
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(2)

    def run(i):
        inner = nu_xp.Sequential(model[0], nu_xp.Tanh())  # shares the Linear: its calls live in each thread's node
        inner(on(backend, xs[i]))
        barrier.wait()
        results[i] = host(inner.backward(on(backend, np.ones((4, 2)))))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        np.testing.assert_array_equal(results[i], expected[i])


def test_a_step_traces_under_jax_jit(rng):
    """Forward, loss and backward inside ``jax.jit``: nothing reads an array's value, nothing keeps a tracer."""
    jax = pytest.importorskip("jax")
    model = nu_xp.Sequential(nu_xp.Linear(3, 4, seed=0, backend="jax"), nu_xp.Tanh(),
                             nu_xp.Linear(4, 1, seed=1, backend="jax"))  # fmt: skip
    loss = nu_xp.MSELoss()
    params = model.parameters()

    def step(weights, x, y):
        for p, w in zip(params, weights):
            p.data = w
        model.zero_grad()
        value = loss(model(x), y)
        model.backward(loss.backward(), input_grad=False)
        return value, [p.grad for p in params]

    x = nu_xp.asarray(rng.normal(size=(5, 3)), like=model)
    y = nu_xp.asarray(rng.normal(size=(5, 1)), like=model)
    weights = [p.data for p in params]
    eager_value, eager_grads = step(weights, x, y)
    compiled = jax.jit(step)
    for _ in range(2):  # a second call reuses the compilation and finds no leaked tracer
        value, grads = compiled(weights, x, y)
        assert_close(value, eager_value, ulps=64)
        for a, b in zip(grads, eager_grads):
            assert_close(a, b, ulps=64)
    for p, w in zip(params, weights):
        p.data = w
    assert model.pending_backwards() == 0 and loss.pending_backwards() == 0
