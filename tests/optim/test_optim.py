"""Optimizers and schedules: the same updates as torch.optim, on every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nu_xp
from nu_xp import optim
from tests.helpers import host, on

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.1, "betas": (0.5, 0.9)}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.8, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": False, "weight_decay": 0.1}),
]


def _params(backend, shapes, seed=0):
    r = np.random.default_rng(seed)
    values = [r.normal(size=s) for s in shapes]
    return [nu_xp.Parameter(on(backend, v.copy())) for v in values], values


@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_updates_match_torch(backend, torch, name, kwargs):
    shapes = [(3, 4), (4,)]
    params, values = _params(backend, shapes)
    ours = getattr(optim, name)(params, **kwargs)
    ref_params = [torch.tensor(v, requires_grad=True) for v in values]
    ref = getattr(torch.optim, name)(ref_params, **kwargs)
    r = np.random.default_rng(1)
    for _ in range(6):
        grads = [r.normal(size=s) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = on(backend, g)
        for p, g in zip(ref_params, grads):
            p.grad = torch.tensor(g)
        ours.step()
        ref.step()
    for p, rp in zip(params, ref_params):
        np.testing.assert_allclose(host(p.data), rp.detach().numpy(), rtol=1e-12, atol=1e-12)


GROUPS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9}, [{"lr": 0.01}, {"weight_decay": 0.1, "nesterov": True}]),
    ("Adam", {"lr": 0.01}, [{"lr": 0.1, "betas": (0.5, 0.9)}, {"weight_decay": 0.05}]),
    ("AdamW", {"lr": 0.01}, [{}, {"lr": 0.001, "weight_decay": 0.5}]),
    ("RMSprop", {"lr": 0.01}, [{"centered": True}, {"momentum": 0.9, "lr": 0.001}]),
]


@pytest.mark.parametrize(("name", "defaults", "overrides"), GROUPS, ids=[g[0] for g in GROUPS])
def test_parameter_groups_match_torch(backend, torch, name, defaults, overrides):
    shapes = [(3, 4), (4,), (2, 2)]
    params, values = _params(backend, shapes)
    ref_params = [torch.tensor(v, requires_grad=True) for v in values]
    split = ([0], [1, 2])
    ours = getattr(optim, name)(
        [{"params": [params[i] for i in idx], **o} for idx, o in zip(split, overrides)], **defaults
    )
    ref = getattr(torch.optim, name)(
        [{"params": [ref_params[i] for i in idx], **o} for idx, o in zip(split, overrides)], **defaults
    )
    sched = optim.StepLR(ours, step_size=2, gamma=0.5)
    ref_sched = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5)
    r = np.random.default_rng(1)
    for _ in range(6):
        grads = [r.normal(size=s) for s in shapes]
        for p, rp, g in zip(params, ref_params, grads):
            p.grad, rp.grad = on(backend, g), torch.tensor(g)
        ours.step()
        ref.step()
        sched.step()
        ref_sched.step()
        assert sched.get_last_lr() == pytest.approx(ref_sched.get_last_lr())
    for p, rp in zip(params, ref_params):
        np.testing.assert_allclose(host(p.data), rp.detach().numpy(), rtol=1e-12, atol=1e-12)
    saved = ours.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1, 2]]
    again = getattr(optim, name)(
        [{"params": [params[i] for i in idx], **o} for idx, o in zip(split, overrides)], **defaults
    )
    again.load_state_dict(saved)
    assert [g["lr"] for g in again.param_groups] == [g["lr"] for g in ours.param_groups]


def test_lr_reads_the_first_group_and_sets_every_group():
    params, _ = _params("numpy", [(2,), (2,)])
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], lr=0.1)
    assert opt.lr == 0.1
    opt.lr = 0.2
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.2]
    with pytest.raises(ValueError, match="lr must be a finite number"):
        opt.lr = float("inf")
    with pytest.raises(ValueError, match="unknown keys"):
        optim.Adam([{"params": params, "momentum": 0.9}])
    with pytest.raises(ValueError, match="more than one group"):
        optim.Adam([{"params": params}, {"params": params[:1]}])


def test_parameters_without_grad_are_skipped(backend):
    params, values = _params(backend, [(2,), (2,)])
    params[0].grad = on(backend, np.ones(2))
    opt = optim.Adam(params, lr=0.1)
    opt.step()
    np.testing.assert_array_equal(host(params[1].data), values[1])
    assert not np.allclose(host(params[0].data), values[0])


def test_immutable_arrays_get_new_arrays_with_the_same_values():
    """JAX arrays cannot be written: every update rebinds ``p.data`` (and the state) to equal values."""
    pytest.importorskip("jax")
    for name, kwargs in CONFIGS:
        a, _ = _params("numpy", [(3,)])
        b, _ = _params("jax", [(3,)])
        writes, rebinds = getattr(optim, name)(a, **kwargs), getattr(optim, name)(b, **kwargs)
        for step in range(4):
            g = np.full(3, 0.5 + step)
            a[0].grad, b[0].grad = g.copy(), on("jax", g)
            kept, before = a[0].data, b[0].data
            writes.step()
            rebinds.step()
            assert a[0].data is kept and b[0].data is not before
        np.testing.assert_allclose(host(b[0].data), a[0].data, rtol=1e-12)


def test_zero_grad_and_model_as_params():
    model = nu_xp.Sequential(nu_xp.Linear(2, 2, seed=0))
    opt = optim.SGD(model, lr=0.1)
    assert len(opt.params) == 2
    model.backward(model(np.ones((1, 2), dtype=np.float32)))
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_state_dict_round_trip_resumes_exactly(backend):
    shapes = [(3,)]
    a, _ = _params(backend, shapes)
    opt = optim.Adam(a, lr=0.05)
    grads = [np.random.default_rng(i).normal(size=3) for i in range(6)]
    for g in grads[:3]:
        a[0].grad = on(backend, g)
        opt.step()
    state = opt.state_dict()
    assert isinstance(state["state"][0]["exp_avg"], np.ndarray)
    b = [nu_xp.Parameter(on(backend, host(a[0].data)))]
    resumed = optim.Adam(b, lr=999.0)
    resumed.load_state_dict(state)
    assert resumed.lr == 0.05
    for g in grads[3:]:
        a[0].grad = on(backend, g)
        b[0].grad = on(backend, g)
        opt.step()
        resumed.step()
    np.testing.assert_array_equal(host(a[0].data), host(b[0].data))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: optim.SGD(p, lr=-1), "lr must be in"),
        (lambda p: optim.SGD(p, lr="fast"), "lr must be a number"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov"),
        (lambda p: optim.Adam(p, betas=(0.9,)), "betas must be a pair"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "betas"),
        (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda p: optim.SGD([np.ones(2)], lr=0.1), "takes Parameters"),
    ],
)
def test_argument_errors(make, match):
    params, _ = _params("numpy", [(2,)])
    with pytest.raises((ValueError, TypeError), match=match):
        make(params)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda o: optim.StepLR(o, step_size=3, gamma=0.5), lambda t, o: t.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        (lambda o: optim.ExponentialLR(o, gamma=0.9), lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, 0.9)),
        (
            lambda o: optim.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
            lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, 5, 0.01),
        ),
    ],
    ids=["step", "exponential", "cosine"],
)
def test_schedules_match_torch(torch, ours, theirs):
    params, _ = _params("numpy", [(2,)])
    opt = optim.SGD(params, lr=0.1)
    sched = ours(opt)
    ref_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    ref = theirs(torch, ref_opt)
    for _ in range(8):
        ref_opt.step()
        ref.step()
        sched.step()
        np.testing.assert_allclose(sched.get_last_lr(), ref.get_last_lr(), rtol=1e-12)


def test_step_without_any_gradient_warns_once_naming_the_fix():
    """The PyTorch habit ``loss.backward(); opt.step()`` changes nothing here: say so, once."""
    model = nu_xp.Sequential(nu_xp.Linear(2, 1, seed=0))
    opt = nu_xp.optim.SGD(model.parameters(), lr=0.1)
    loss = nu_xp.MSELoss()
    loss(model(np.ones((3, 2), dtype=np.float32)), np.zeros((3, 1), dtype=np.float32))
    loss.backward()
    with pytest.warns(RuntimeWarning, match=r"model.backward\(loss.backward\(\)\)"):
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()  # once per optimizer


def test_a_parameter_listed_twice_warns_and_is_stepped_once(torch):
    """PyTorch 2.x warns (and says it will become an error) but steps such a parameter twice; nu_xp steps it once."""
    w = nu_xp.Parameter(np.array([1.0, 2.0]))
    with pytest.warns(UserWarning, match="more than once"):
        opt = nu_xp.optim.SGD([w, w], lr=0.1)
    assert len(opt.params) == 1
    w.grad = np.array([1.0, 1.0])
    opt.step()
    np.testing.assert_allclose(w.data, [0.9, 1.9])
    tw = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    with pytest.warns(UserWarning, match="duplicate"):
        torch.optim.SGD([tw, tw], lr=0.1)
