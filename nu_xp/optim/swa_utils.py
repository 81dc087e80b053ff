"""Weight averaging (``torch.optim.swa_utils``): ``AveragedModel`` and its averaging functions.

An ``AveragedModel`` holds a copy of a model whose parameters are a running
average of the model's, updated by ``update_parameters(model)`` (after each
step, or each epoch)::

    SWA (default):  θ̄ ← θ̄ + (θ - θ̄) / (n + 1)             (the mean of every update)
    EMA:            θ̄ ← θ̄ + (1 - decay) · (θ - θ̄)          (get_ema_multi_avg_fn(decay))

The first update copies the model's parameters (``n = 0``). Buffers (BatchNorm's
running statistics) are copied from the model at every update, or averaged too
with ``use_buffers=True``. The averaged model is a ``Layer``: it predicts,
evaluates and saves like any model (``nu_xp.save``, ``model.predict``), and
``fit`` updates it through the ``WeightAveraging`` callback.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from ..backends import dtype_kind, ops_of, to_host
from ..layers import Layer, register_layer

__all__ = [
    "AveragedModel",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
]


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable[[list[Any], list[Any], Any], list[Any]]:
    """The exponential moving average of lists: ``averaged ← averaged + (1 - decay) · (current - averaged)``.

    Parameters
    ----------
    decay : float, default 0.999
        How much of the average each update keeps.
    """

    def ema_update(averaged: list[Any], current: list[Any], num_averaged: Any) -> list[Any]:
        return [a + (1.0 - decay) * (c - a) for a, c in zip(averaged, current)]

    return ema_update


def get_swa_multi_avg_fn() -> Callable[[list[Any], list[Any], Any], list[Any]]:
    """The running mean of lists: ``averaged ← averaged + (current - averaged) / (num_averaged + 1)``."""

    def swa_update(averaged: list[Any], current: list[Any], num_averaged: Any) -> list[Any]:
        return [a + (c - a) / (float(num_averaged) + 1.0) for a, c in zip(averaged, current)]

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable[[Any, Any, Any], Any]:
    """One array's exponential moving average: ``decay · averaged + (1 - decay) · current``.

    Parameters
    ----------
    decay : float, default 0.999
        How much of the average each update keeps.
    """

    def ema_update(averaged: Any, current: Any, num_averaged: Any) -> Any:
        return decay * averaged + (1.0 - decay) * current

    return ema_update


def get_swa_avg_fn() -> Callable[[Any, Any, Any], Any]:
    """One array's running mean: ``averaged + (current - averaged) / (num_averaged + 1)``."""

    def swa_update(averaged: Any, current: Any, num_averaged: Any) -> Any:
        return averaged + (current - averaged) / (float(num_averaged) + 1.0)

    return swa_update


@register_layer
class AveragedModel(Layer):
    """A copy of ``model`` whose parameters average the model's over ``update_parameters`` calls.

    As ``torch.optim.swa_utils.AveragedModel``: ``module`` is the copy,
    ``n_averaged`` (a buffer) the number of updates; names in the
    ``state_dict`` are ``"module.0.weight"``… and ``"n_averaged"``, as
    PyTorch's. ``avg_fn(averaged, current, n)`` averages one array at a time,
    ``multi_avg_fn(averaged_list, current_list, n)`` all at once (returning the
    new arrays); neither given: the running mean (SWA).

    Parameters
    ----------
    model : Layer
        The model to average (copied; the copy is ``module``).
    avg_fn, multi_avg_fn : callable, optional
        The averaging rule (see [`get_ema_multi_avg_fn`][]); at most one.
    use_buffers : bool, default False
        Average the buffers too (else copy them from the model at each update).

    Examples
    --------
    >>> import nu_xp
    >>> from nu_xp.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    >>> model = nu_xp.Sequential(nu_xp.Linear(2, 1, seed=0))
    >>> ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    >>> ema.update_parameters(model)
    >>> int(nu_xp.to_host(ema.n_averaged))
    1
    """

    holds_layers: ClassVar[bool] = True
    n_averaged: Any  # a buffer: the number of updates

    def __init__(self, model: Layer, avg_fn: Any = None, multi_avg_fn: Any = None, use_buffers: bool = False) -> None:
        if not isinstance(model, Layer) or model.is_loss:
            raise TypeError(f"AveragedModel averages a nu_xp model, got {type(model).__name__}")
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("give AveragedModel avg_fn or multi_avg_fn, not both")
        for name, fn in (("avg_fn", avg_fn), ("multi_avg_fn", multi_avg_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"AveragedModel {name} must be callable (see get_ema_multi_avg_fn), got {fn!r}")
        if not isinstance(use_buffers, (bool, np.bool_)):
            raise TypeError(f"use_buffers must be True or False, got {use_buffers!r}")
        be = model.backend
        super().__init__(backend=be.name, device=be.device, dtype=be.dtype_name)
        self.module = copy.deepcopy(model)
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, bool(use_buffers)
        self.register_buffer("n_averaged", be.from_host(np.array(0, dtype=np.int64)))

    def get_config(self) -> dict[str, Any]:
        return {"use_buffers": self.use_buffers}

    def forward(self, x: Any) -> Any:
        """The averaged model's output."""
        return self.module(x)

    def backward(self, grad: Any) -> Any:
        """Through the averaged model (it is not trained: its gradients are not used)."""
        return self.module.backward(grad)

    def _arrays(self, model: Layer) -> tuple[list[Any], list[Any]]:
        mine = [p.data for p in self.module.parameters()]
        theirs = [p.data for p in model.parameters()]
        if self.use_buffers:
            mine += [b for _, b in self.module.named_buffers()]
            theirs += [b for _, b in model.named_buffers()]
        if len(mine) != len(theirs):
            raise ValueError(
                f"AveragedModel.update_parameters: the model has {len(theirs)} parameters, the average "
                f"{len(mine)}; pass the model it was made from"
            )
        return mine, theirs

    def update_parameters(self, model: Layer) -> None:
        """One update of the average with ``model``'s current parameters (the first one copies them)."""
        mine, theirs = self._arrays(model)
        count = int(to_host(self.n_averaged))
        floating = [dtype_kind(ops_of(a).xp, a.dtype) == "f" for a in theirs]
        if count == 0:
            new = [ops_of(c).xp.asarray(c, copy=True) for c in theirs]  # a copy: optimizers update in place
        elif self.multi_avg_fn is not None:
            moved = [c for c, f in zip(theirs, floating) if f]
            averaged = self.multi_avg_fn([a for a, f in zip(mine, floating) if f], moved, count)
            it = iter(averaged)
            new = [next(it) if f else ops_of(c).xp.asarray(c, copy=True) for c, f in zip(theirs, floating)]
        else:
            rule = self.avg_fn if self.avg_fn is not None else get_swa_avg_fn()
            new = [
                rule(a, c, count) if f else ops_of(c).xp.asarray(c, copy=True)
                for a, c, f in zip(mine, theirs, floating)
            ]
        params = self.module.parameters()
        for p, value in zip(params, new[: len(params)]):
            p.data = value
        if self.use_buffers:
            self._set_buffers(new[len(params) :])
        else:
            self._set_buffers([ops_of(b).xp.asarray(b, copy=True) for _, b in model.named_buffers()])
        self.register_buffer("n_averaged", self.n_averaged + 1)

    def _set_buffers(self, values: list[Any]) -> None:
        for (name, _), value in zip(self.module.named_buffers(), values):
            owner, _, attr = name.rpartition(".")
            self.module.layer_at(owner).register_buffer(attr, value)
