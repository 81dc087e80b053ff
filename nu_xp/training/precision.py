"""Mixed precision: forward and backward in bfloat16 or float16, float32 master weights, loss scaling.

``fit(..., precision="bf16-mixed" | "16-mixed")`` (Lightning's names) trains
with these steps, one minibatch at a time::

    with compute_dtype(model, low):          # the parameters as low copies, each layer computing in low
        pred = model(cast(x, low))           #   forward in low precision (the layers' own code)
        L = loss(cast(pred, float32), y)     #   the loss in float32, as autocast runs it
        g = cast(S · dL/dpred, low)          #   S: the loss scale (float16 only)
        model.backward(g)                    #   backward in low precision
    # on exit: the float32 master weights are back, θ.grad cast to float32
    optimizer.step()                         # float16: LossScaleOptimizer.step (θ.grad / S; skip on overflow)

Three pieces, each in one place: the compute dtype is [`compute_dtype`][], the
one context in which a model computes in another dtype than its parameters'
(each layer's backend for the step is ``Backend.with_dtype(low)``); loss
scaling is [`LossScaleOptimizer`][nu_xp.optim.loss_scale.LossScaleOptimizer], a wrapper of the optimizer;
[`MixedPrecision`][] joins them as the loop's step hooks. Buffers (BatchNorm's
running statistics) and the optimizer's state stay float32 throughout.

bfloat16 keeps float32's exponent range, so its gradients do not underflow
and it needs no scale. float16 has 5 exponent bits: small gradients round to
zero unless the loss is multiplied by a large scale first (see
[`nu_xp.optim.loss_scale`][nu_xp.optim.loss_scale]).

Backends: torch (CPU and CUDA; both modes) and cupy (``"16-mixed"``: CuPy has
no bfloat16). The layers need nothing special: each computes in its
backend's dtype, and inside [`compute_dtype`][] that is the low one.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from ..backends import OPS_CLASSES, Backend
from ..layers import Layer
from ..optim import LossScaleOptimizer, Optimizer
from .hooks import StepHooks, WrappingHooks

__all__ = [
    "PRECISIONS",
    "MixedPrecision",
    "check_precision",
    "compute_dtype",
    "set_float32_matmul_precision",
    "supporting",
    "with_precision",
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


@contextlib.contextmanager
def compute_dtype(model: Layer, dtype: str) -> Iterator[Backend]:
    """Inside, ``model`` computes in ``dtype`` (``"bfloat16"``, ``"float16"``); its float32 parameters stay the masters.

    The one place where a model computes in another dtype than its
    parameters': on entry each parameter's ``data`` becomes a ``dtype`` copy
    and each layer's backend ``Backend.with_dtype(dtype)`` (so every layer's
    own code computes in it, checks and casts its inputs to it); on exit, also
    after an error, the float32 arrays are back and every gradient is cast to
    float32. Buffers are not touched (BatchNorm updates its float32 running
    statistics from low-precision batch statistics). Yields the low backend.
    """
    high = model.backend
    low = high.with_dtype(dtype)
    layers = list(model.modules())
    params = model.parameters()
    masters = [p.data for p in params]
    ops = high.ops
    try:
        for p in params:
            p.data = ops.astype(p.data, low.dtype)
        for layer in layers:
            layer._backend = low
        yield low
    finally:
        for layer in layers:
            layer._backend = high
        for p, master in zip(params, masters):
            p.data = master
            if p.grad is not None:
                p.grad = ops.astype(p.grad, high.dtype)


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
    optimizer : Optimizer
        The optimizer of the loop; for float16 it is stepped through a [`LossScaleOptimizer`][] (``scaler``).
    """

    def __init__(self, model: Layer, precision: str, inner: StepHooks, optimizer: Any) -> None:
        super().__init__(inner)
        self.precision = precision
        self.low = LOW_DTYPES[precision]
        self.scaler = LossScaleOptimizer(optimizer) if precision == "16-mixed" else None
        be = model.backend
        if precision == "16-mixed" and be.ops.is_host(be.device):
            warnings.warn(
                "precision='16-mixed' on the CPU: float16 matrix products are slow on CPUs (33x float32 with "
                "PyTorch on an AMD EPYC); use precision='bf16-mixed' there, '16-mixed' is for GPUs",
                UserWarning,
                stacklevel=2,
            )

    def forward_backward(self, model: Layer, loss: Any, xs: Any, ys: Any) -> tuple[Any, Any]:
        ops = model.backend.ops
        high = model.backend.dtype
        with compute_dtype(model, self.low) as low:
            pred = ops.astype(model(xs), high)
            batch_loss = loss.forward(pred, ys) * xs.shape[0]
            grad = loss.backward()
            if self.scaler is not None:
                grad = self.scaler.scale_grad(grad)
            model.backward_into(ops.astype(grad, low.dtype), input_grad=False)
        return batch_loss, pred

    def step(self, optimizer: Optimizer) -> None:
        if self.scaler is None:
            super().step(optimizer)
        else:
            self.scaler.step()


def with_precision(model: Layer, precision: str, hooks: StepHooks, optimizer: Any) -> StepHooks:
    """``hooks`` wrapped for ``precision`` (unchanged for ``"32"``)."""
    return hooks if precision == "32" else MixedPrecision(model, precision, hooks, optimizer)


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
