"""Mixed precision: forward and backward in bfloat16 or float16, float32 master weights, loss scaling.

``fit(..., precision="bf16-mixed" | "16-mixed")`` (Lightning's names) trains
with these steps, one minibatch at a time::

    W_low = cast(W, low)                    # every parameter and buffer, for this step only
    pred  = model(cast(x, low))             # forward in low precision (the layers' own code)
    L     = loss(cast(pred, float32), y)    # the loss in float32, as autocast runs it
    g     = cast(S · dL/dpred, low)         # S: the loss scale (1 for bfloat16)
    model.backward(g)                       # backward in low precision
    W.grad = cast(W.grad, float32) / S      # back on the float32 master weights
    optimizer.step()                        # skipped when a gradient overflowed (float16)

bfloat16 keeps float32's exponent range, so its gradients do not underflow
and it needs no scale. float16 has 5 exponent bits: small gradients round to
zero unless the loss is multiplied by a large ``S`` first; ``S`` is
dynamic, as ``torch.amp.GradScaler``: it starts at 2¹⁶, halves (and the step
is skipped) whenever a gradient is infinite or NaN, and doubles after 2000
steps without overflow. The master weights, the optimizer's state and the
running statistics stay float32 between steps (the running statistics are
updated in the low precision during the step, then kept as float32).

Backends: torch (CPU and CUDA; both modes) and cupy (``"16-mixed"``: CuPy has
no bfloat16). The layers need nothing special: each computes in its
backend's dtype, and for the step the model's backend *is* the low one.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..backends import OPS_CLASSES, Backend
from ..layers import Layer
from ..losses import Loss
from ..optim import Optimizer
from .hooks import StepHooks, WrappingHooks

__all__ = [
    "PRECISIONS",
    "LossScaler",
    "MixedPrecision",
    "check_precision",
    "set_float32_matmul_precision",
    "supporting",
]

#: the accepted values of ``fit(precision=...)``
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
#: the low dtype of each mixed mode; which backends run it is each backend's ``Ops.low_precision_dtypes``
LOW_DTYPES = {"bf16-mixed": "bfloat16", "16-mixed": "float16"}


def supporting(precision: str) -> tuple[str, ...]:
    """The backends (registry order) that compute in ``precision``'s low dtype."""
    return tuple(name for name, cls in OPS_CLASSES.items() if LOW_DTYPES[precision] in cls.low_precision_dtypes)


def check_precision(precision: Any, backend: Backend) -> str:
    """``precision`` checked against the model's backend and dtype; ``ValueError`` says what runs where."""
    if precision in (32, "32", "32-true"):
        return "32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    names = supporting(precision)
    if backend.name not in names:
        without = [n for n in supporting("16-mixed") if n not in names]
        extra = f" ({', '.join(without)}: no bfloat16)" if without else ""
        widest = max(names, key=lambda n: len(OPS_CLASSES[n].low_precision_dtypes))  # runs both modes
        raise ValueError(
            f"precision={precision!r} runs on the {' and '.join(names)} backend{'s' if len(names) > 1 else ''}"
            f"{extra}, but this model is on {backend.name}; move it with model.to({widest!r}) or train with "
            "precision='32'"
        )
    if backend.dtype_name != "float32":
        raise ValueError(
            f"precision={precision!r} keeps float32 master weights, but this model is {backend.dtype_name}; "
            "use model.to(dtype='float32') first"
        )
    return precision


class LossScaler:
    """The dynamic loss scale of ``torch.amp.GradScaler``: ``×growth`` after ``interval`` clean steps, ``×backoff``
    (and the step skipped) after an overflow.

    Parameters
    ----------
    init_scale : float, default 2**16
        The first scale.
    growth : float, default 2.0
        The factor after ``interval`` steps without overflow.
    backoff : float, default 0.5
        The factor after a step whose gradients overflowed.
    interval : int, default 2000
        Clean steps between two growths.
    """

    def __init__(self, init_scale: float = 2.0**16, growth: float = 2.0, backoff: float = 0.5, interval: int = 2000):
        self.scale, self.growth, self.backoff, self.interval = float(init_scale), growth, backoff, interval
        self.clean_steps = 0
        self.skipped = 0

    def update(self, overflowed: bool) -> None:
        if overflowed:
            self.scale *= self.backoff
            self.clean_steps = 0
            self.skipped += 1
        else:
            self.clean_steps += 1
            if self.clean_steps == self.interval:
                self.scale *= self.growth
                self.clean_steps = 0


def _layers(model: Layer) -> list[Layer]:
    seen: dict[int, Layer] = {}
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) not in seen:
            seen[id(layer)] = layer
            stack.extend(layer.children())
    return list(seen.values())


class MixedPrecision(WrappingHooks):
    """The step hooks of mixed precision, around ``inner`` (the plain or the data-parallel hooks).

    Parameters
    ----------
    model : Layer
        The model (float32, on torch or cupy), whose parameters are the master weights.
    precision : {"bf16-mixed", "16-mixed"}
        The low precision of the forward and backward passes.
    inner : StepHooks
        What the loop would do otherwise (sharding, the allreduce); it sees float32 gradients.
    """

    def __init__(self, model: Layer, precision: str, inner: StepHooks) -> None:
        super().__init__(inner)
        be = model.backend
        self.precision = precision
        low = be.ops.low_dtype(LOW_DTYPES[precision])
        self.high = be
        self.low = Backend(be.ops, be.device, low, array_type=be.array_type)
        self.layers = _layers(model)
        self.params = model.parameters()
        self.scaler = LossScaler() if precision == "16-mixed" else None
        if precision == "16-mixed" and be.ops.is_host(be.device):
            warnings.warn(
                "precision='16-mixed' on the CPU: float16 matrix products are slow on CPUs (33x float32 with "
                "PyTorch on an AMD EPYC); use precision='bf16-mixed' there, '16-mixed' is for GPUs",
                UserWarning,
                stacklevel=2,
            )

    # ------------------------------------------------------------------ the step in low precision
    def forward_backward(self, model: Layer, loss: Loss, xs: Any, ys: Any) -> tuple[Any, Any]:
        ops = self.high.ops
        masters = self._to(self.low)
        try:
            pred = ops.astype(model(xs), self.high.dtype)
            batch_loss = loss.forward(pred, ys) * xs.shape[0]
            grad = loss.backward()
            if self.scaler is not None:
                grad = grad * self.scaler.scale
            model.backward_into(ops.astype(grad, self.low.dtype), input_grad=False)
        finally:
            self._back(masters)
        return batch_loss, pred

    def step(self, optimizer: Optimizer) -> None:
        if self.scaler is None:
            super().step(optimizer)
            return
        ops, xp = self.high.ops, self.high.xp
        # one count of non-finite entries over every gradient, read once (one device sync per step)
        bad = sum(ops.sum(ops.astype(~xp.isfinite(p.grad), xp.int32)) for p in self.params if p.grad is not None)
        finite = not int(bad)
        self.scaler.update(not finite)
        if finite:
            super().step(optimizer)

    def _to(self, target: Backend) -> list[Any]:
        """Every layer on ``target``; parameters and floating buffers cast. Returns the float32 originals."""
        ops = self.high.ops
        masters = [p.data for p in self.params]
        for p in self.params:
            p.data = ops.astype(p.data, target.dtype)
        self._layers_on(target, self.high)
        return masters

    def _back(self, masters: list[Any]) -> None:
        """Master weights back; gradients and buffers to float32, gradients divided by the loss scale."""
        ops, high = self.high.ops, self.high.dtype
        scale = 1.0 / self.scaler.scale if self.scaler is not None else None
        for p, master in zip(self.params, masters):
            p.data = master
            if p.grad is not None:
                grad = ops.astype(p.grad, high)
                p.grad = grad * scale if scale is not None else grad
        self._layers_on(self.high, self.low)

    def _layers_on(self, target: Backend, source: Backend) -> None:
        """Every layer computes on ``target``; its floating buffers of ``source``'s dtype are cast to ``target``'s."""
        for layer in self.layers:
            layer._backend = target
            for name in list(getattr(layer, "_buffers", {})):
                value = getattr(layer, name)
                if value.dtype == source.dtype:
                    layer.register_buffer(name, self.high.ops.astype(value, target.dtype))


def with_precision(model: Layer, precision: str, hooks: StepHooks) -> StepHooks:
    """``hooks`` wrapped for ``precision`` (unchanged for ``"32"``)."""
    return hooks if precision == "32" else MixedPrecision(model, precision, hooks)


def set_float32_matmul_precision(precision: str) -> None:
    """TF32 for float32 matrix products on NVIDIA GPUs: ``"highest"`` (off, the default), ``"high"`` or ``"medium"``.

    TF32 rounds the inputs of float32 products to 10 mantissa bits on the
    GPU's tensor cores (about 8× the float32 throughput on an H100). torch:
    ``torch.set_float32_matmul_precision`` (CPU and GPU). cupy: sets
    ``CUPY_TF32=1``, which CuPy reads when it starts, so call this before the
    first CuPy array is made. numpy, array_api_strict and jax: nothing to switch.
    """
    if precision not in ("highest", "high", "medium"):
        raise ValueError(f"precision must be 'highest', 'high' or 'medium', got {precision!r}")
    for cls in OPS_CLASSES.values():
        cls.set_float32_matmul_precision(precision)
