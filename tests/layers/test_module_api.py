"""PyTorch's module API on nu_xp layers: the tree walks, frozen parameters, LayerList/LayerDict, dim=, Backend."""

from __future__ import annotations

import numpy as np
import pytest

import nu_xp
from tests.helpers import host, on


class Tower(nu_xp.Layer):
    """A composite of every kind of holding: an attribute, a LayerList, a LayerDict, a parameter after them."""

    def __init__(self, backend=None):
        super().__init__(backend=backend)
        self.stem = nu_xp.Linear(3, 4, seed=0, backend=backend)
        self.blocks = nu_xp.LayerList([nu_xp.Linear(4, 4, seed=i, backend=backend) for i in (1, 2)])
        self.norms = nu_xp.LayerDict({"first": nu_xp.BatchNorm1d(4, backend=backend), "act": nu_xp.ReLU()})
        self.scale = nu_xp.Parameter(nu_xp.asarray(np.ones(4, dtype="float32"), like=self.stem))


def _torch_tower(torch):
    nn = torch.nn

    class TorchTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Linear(3, 4)
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
            self.norms = nn.ModuleDict({"first": nn.BatchNorm1d(4), "act": nn.ReLU()})
            self.scale = nn.Parameter(torch.ones(4))

    return TorchTower()


def test_tree_walks_are_pytorchs(backend, torch):
    ours, theirs = Tower(backend), _torch_tower(torch)
    for method in ("named_parameters", "named_buffers", "named_children", "named_modules"):
        assert [name for name, _ in getattr(ours, method)()] == [name for name, _ in getattr(theirs, method)()], method
    torch_names = {"LayerList": "ModuleList", "LayerDict": "ModuleDict"}

    def kinds(modules):
        return [torch_names.get(type(m).__name__, type(m).__name__) for m in modules]

    assert kinds(ours.modules())[1:] == kinds(theirs.modules())[1:]
    assert kinds(ours.children()) == kinds(theirs.children())
    assert len(list(ours.buffers())) == len(list(theirs.buffers())) == 3
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    name, p = next(iter(ours.named_parameters()))  # pairs, as PyTorch: unpacking works
    assert name == "scale" and isinstance(p, nu_xp.Parameter)
    assert [n for n, _ in ours.named_parameters(prefix="tower", recurse=False)] == ["tower.scale"]
    seen_ours, seen_theirs = [], []
    assert ours.apply(lambda m: seen_ours.append(type(m).__name__)) is ours
    theirs.apply(lambda m: seen_theirs.append(type(m).__name__))
    assert [torch_names.get(n, n) for n in seen_ours[:-1]] == seen_theirs[:-1] and seen_ours[-1] == "Tower"
    # a state_dict moves between the two unchanged
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})


def test_reused_layers_and_ties_walk_as_pytorch(torch):
    lin, act = nu_xp.Linear(2, 2, seed=0), nu_xp.Tanh()
    ours = nu_xp.Sequential(lin, act, lin)
    tl, ta = torch.nn.Linear(2, 2), torch.nn.Tanh()
    theirs = torch.nn.Sequential(tl, ta, tl)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_modules(remove_duplicate=False)] == [
        n for n, _ in theirs.named_modules(remove_duplicate=False)
    ]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_parameters(remove_duplicate=False)] == [
        n for n, _ in theirs.named_parameters(remove_duplicate=False)
    ]
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())


def test_a_plain_container_of_layers_is_refused():
    class Bad(nu_xp.Layer):
        def __init__(self, holder):
            super().__init__()
            self.blocks = holder

    for holder in ([nu_xp.Linear(2, 2)], (nu_xp.ReLU(),), {"a": nu_xp.Linear(2, 2)}):
        with pytest.raises(TypeError, match="LayerDict" if isinstance(holder, dict) else "LayerList"):
            Bad(holder)
    late = Bad([])  # an empty list is fine until it holds a layer
    assert late.parameters() == []
    late.blocks.append(nu_xp.Linear(2, 2))
    with pytest.raises(TypeError, match=r"plain list holding layers.*LayerList"):
        late.parameters()
    Bad([1, 2, 3])  # a list of numbers is a plain attribute


def test_layerlist_and_layerdict_behave_as_pytorchs(backend, torch, tmp_path):
    blocks = nu_xp.LayerList([nu_xp.Linear(2, 2, seed=0, backend=backend)])
    blocks.append(nu_xp.ReLU()).extend([nu_xp.Linear(2, 3, seed=1, backend=backend)])
    blocks.insert(1, nu_xp.Tanh())
    assert [type(b).__name__ for b in blocks] == ["Linear", "Tanh", "ReLU", "Linear"] and len(blocks) == 4
    assert [n for n, _ in blocks.named_parameters()] == ["0.weight", "0.bias", "3.weight", "3.bias"]
    del blocks[1]
    assert isinstance(blocks[1:], nu_xp.LayerList) and len(blocks[1:]) == 2
    heads = nu_xp.LayerDict([("a", nu_xp.Linear(2, 1, seed=0, backend=backend))])
    heads["b"] = nu_xp.Linear(2, 1, seed=1, backend=backend)
    assert list(heads) == ["a", "b"] and "a" in heads and len(heads) == 2
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert heads.pop("a") is not None and list(heads.keys()) == ["b"]
    with pytest.raises(TypeError, match="takes layers"):
        blocks.append(nu_xp.MSELoss())
    with pytest.raises(KeyError):
        heads["a.b"] = nu_xp.ReLU()
    other = "torch" if backend != "torch" else "numpy"
    with pytest.raises(ValueError, match="move it first"):
        heads["c"] = nu_xp.Linear(2, 1, backend=other)
    # a user's layer holding them: its weights go to a file and back under PyTorch's names
    model = Tower(backend)
    model.to(dtype="float64")
    path = tmp_path / "tower.npz"
    np.savez(path, **model.state_dict())
    again = Tower(backend).to(dtype="float64")
    again.load_weights(path)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), again.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(host(p1.data), host(p2.data))


def test_frozen_parameters_get_no_gradient_and_stay_unchanged(backend, torch, rng):
    """A pretrained body under a new head: the body is bit-identical after fit; the head trains as in PyTorch."""
    body = nu_xp.Sequential(
        nu_xp.Linear(4, 8, seed=0, backend=backend), nu_xp.BatchNorm1d(8, backend=backend), nu_xp.ReLU()
    )
    model = nu_xp.Sequential(body, nu_xp.Linear(8, 3, seed=1, backend=backend))
    assert body.requires_grad_(False) is body
    assert all(not p.requires_grad for p in body.parameters()) and model[1].weight.requires_grad
    before = {n: host(p.data).copy() for n, p in body.named_parameters()}
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.integers(0, 3, 40)
    opt = nu_xp.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.1)
    nu_xp.fit(model, nu_xp.CrossEntropyLoss(), opt, x, y, epochs=3, batch_size=8, seed=0, progress=False)
    for n, p in body.named_parameters():
        np.testing.assert_array_equal(host(p.data), before[n], err_msg=n)
        assert p.grad is None
    # the gradients that do flow equal PyTorch's with the same parameters frozen
    model.zero_grad()
    nn = torch.nn
    ref = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8, 3))
    ref.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    ref[0].requires_grad_(False)
    xb = x[:8].astype("float64")
    model.to(dtype="float64")
    loss = nu_xp.CrossEntropyLoss()
    loss(model(on(backend, xb)), on(backend, y[:8], dtype=None))
    assert model.backward(loss.backward(), input_grad=False) is None
    ref.double()
    nn.CrossEntropyLoss()(ref(torch.tensor(xb)), torch.tensor(y[:8])).backward()
    np.testing.assert_allclose(host(model[1].weight.grad), ref[1].weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in body.parameters())
    body.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_a_frozen_body_is_not_differentiated(backend, rng):
    """With input_grad=False, Sequential stops below the lowest layer that trains: the body's backward never runs."""
    calls = []

    class Probe(nu_xp.Layer):
        def forward(self, x):
            return x

        def backward(self, grad):
            calls.append(1)
            return grad

    body = nu_xp.Sequential(nu_xp.Linear(3, 3, seed=0, backend=backend), Probe())
    model = nu_xp.Sequential(body, nu_xp.Linear(3, 1, seed=1, backend=backend))
    x = nu_xp.asarray(rng.normal(size=(2, 3)), like=model, dtype=model.dtype)
    g = nu_xp.asarray(np.ones((2, 1)), like=model, dtype=model.dtype)
    model(x)
    model.backward(g, input_grad=False)
    assert calls == [1]
    body.requires_grad_(False)
    model(x)
    model.backward(g, input_grad=False)
    assert calls == [1] and body[0].weight.grad is not None  # unchanged from the first backward
    model(x)
    assert model.backward(g) is not None and calls == [1, 1]  # dL/dx asked for: the whole chain runs
    frozen = nu_xp.Linear(3, 2, seed=0, backend=backend).requires_grad_(False)
    frozen(x)
    assert frozen.backward(nu_xp.asarray(np.ones((2, 2)), like=model, dtype=model.dtype)).shape == (2, 3)
    assert frozen.weight.grad is None and frozen.bias.grad is None


def test_softmax_takes_pytorchs_dim(backend, torch, rng):
    x = rng.normal(size=(3, 4, 5))
    for cls, ref in ((nu_xp.Softmax, torch.softmax), (nu_xp.LogSoftmax, torch.log_softmax)):
        for dim in (0, 1, -1):
            ours = cls(dim=dim)
            assert ours.dim == ours.axis == dim and cls(axis=dim).dim == dim and cls(dim).get_config() == {"dim": dim}
            np.testing.assert_allclose(host(ours(on(backend, x))), ref(torch.tensor(x), dim).numpy(), rtol=1e-12)
        with pytest.raises(TypeError, match="dim"):
            cls(dim="1")
        with pytest.raises(TypeError, match="not both"):
            cls(dim=0, axis=1)


def test_backend_equality_and_hash_agree():
    be = nu_xp.get_backend("numpy")
    assert be == "numpy" and be in {"numpy"} and {be: 1}["numpy"] == 1 and hash(be) == hash("numpy")
    assert be != "torch" and be not in {"torch"}
    assert nu_xp.get_backend("numpy", dtype="float64") != be
