"""Compare a nu_xp layer with the ``torch.nn`` module of the same name: values, every gradient, buffers."""

from __future__ import annotations

from typing import Any

import numpy as np

import nu_xp
from tests.helpers import host, on


def compare_with_torch(
    torch: Any,
    backend: str,
    layer: nu_xp.Layer,
    module: Any,
    x: np.ndarray,
    *,
    steps: int = 1,
    tol: float = 1e-10,
    seed: int = 0,
) -> None:
    """Run ``steps`` forward/backward passes through both (float64) and assert they agree.

    The module gets the layer's ``state_dict`` (so the keys must be PyTorch's);
    every step compares the output, dL/dx, every parameter gradient and every
    buffer (running statistics), for a random upstream gradient.
    """
    module = module.double()
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
    module.train(layer.training)
    rng = np.random.default_rng(seed)
    integer = x.dtype.kind in "iu"
    for _ in range(steps):
        xt = torch.tensor(x) if integer else torch.tensor(x, dtype=torch.float64, requires_grad=True)
        yt = module(xt)
        g = rng.normal(size=tuple(yt.shape))
        module.zero_grad()
        yt.backward(torch.tensor(g))
        layer.zero_grad()
        y = layer(on(backend, x, dtype=None if integer else "float64"))
        dx = layer.backward(on(backend, g))
        np.testing.assert_allclose(host(y), yt.detach().numpy(), rtol=tol, atol=tol, err_msg="forward")
        if integer:
            assert dx is None
        else:
            np.testing.assert_allclose(host(dx), xt.grad.numpy(), rtol=tol, atol=tol, err_msg="dL/dx")
        theirs = dict(module.named_parameters())
        for name, p in layer.named_parameters():
            np.testing.assert_allclose(host(p.grad), theirs[name].grad.numpy(), rtol=tol, atol=tol, err_msg=name)
        buffers = dict(module.named_buffers())
        for name, b in layer.named_buffers():
            np.testing.assert_allclose(host(b), buffers[name].numpy(), rtol=tol, atol=tol, err_msg=name)
