"""The ``"cupy"`` backend: CuPy arrays on an NVIDIA GPU.

The namespace is ``array_api_compat.cupy``; every kernel is the standard one.
CuPy refuses ``numpy.asarray`` on its arrays on purpose (an implicit device
to host copy), so ``to_host`` uses ``.get()``. Installing needs the wheel for
the user's CUDA major version (``cupy-cuda12x``, ``cupy-cuda13x``).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import array_api_compat

from .ops import Ops

__all__ = ["CupyOps"]


class CupyOps(Ops):
    """CuPy on a CUDA device."""

    name: ClassVar[str] = "cupy"
    modules: ClassVar[tuple[str, ...]] = ("cupy", "array_api_compat.cupy")
    namespace_module: ClassVar[str] = "array_api_compat.cupy"
    package: ClassVar[str] = "cupy"
    extra: ClassVar[str] = "cupy"
    array_noun: ClassVar[str] = "a cupy array"

    #: mixed precision: float16 only (CuPy has no bfloat16)
    low_precision_dtypes = ("float16",)

    @classmethod
    def is_array(cls, x: Any) -> bool:
        return array_api_compat.is_cupy_array(x)

    @classmethod
    def set_float32_matmul_precision(cls, precision: str) -> None:
        """``CUPY_TF32=1`` (or 0), which CuPy reads when it starts: call before the first CuPy array."""
        os.environ["CUPY_TF32"] = "0" if precision == "highest" else "1"

    def check_available(self) -> None:
        """A CUDA device must be visible, else ``RuntimeError`` saying so."""
        try:
            count = self.library.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError, missing driver, ...
            raise RuntimeError(
                f"the 'cupy' backend needs a working CUDA device, but CUDA reports: {exc}. "
                "Use backend='numpy' (CPU) or 'torch' instead."
            ) from exc
        if count < 1:
            raise RuntimeError(
                "the 'cupy' backend needs a CUDA device, and none was found; "
                "use backend='numpy' (CPU) or 'torch' instead."
            )

    def default_device(self) -> Any:
        return self.library.cuda.Device()

    def resolve_device(self, device: Any) -> Any:
        cuda = self.library.cuda
        if device is None or isinstance(device, cuda.Device):
            return cuda.Device() if device is None else device
        if isinstance(device, str):
            text = device.lower()
            if text in ("cuda", "gpu"):
                return cuda.Device()
            if text.startswith(("cuda:", "gpu:")):
                return cuda.Device(int(text.split(":", 1)[1]))
        return cuda.Device(int(device))

    def device_key(self, device: Any) -> Any:
        if device is None or isinstance(device, (str, int)):
            return device
        return int(getattr(device, "id", device))

    def device_name(self, device: Any) -> str:
        return f"cuda:{device.id}"

    def is_host(self, device: Any) -> bool:
        return False

    def synchronize(self, device: Any) -> None:
        device.synchronize()

    def to_host(self, x: Any) -> Any:
        """``x.get()``: the one explicit device-to-host copy."""
        return x.get()

    def erf(self, x: Any) -> Any:
        """``cupyx.scipy.special.erf`` (one native kernel)."""
        import cupyx.scipy.special

        return cupyx.scipy.special.erf(x)

    def index_add(self, table: Any, indices: Any, values: Any) -> Any:
        """``cupy.add.at`` (atomic adds on the GPU), on a copy of ``table``."""
        out = table.copy()
        self.library.add.at(out, indices, values)
        return out

    # im2col and col2im as one gather and one scatter-add: on a GPU each of the K slice copies would be a launch
    pad = Ops.pad_by_writing  # one allocation and one copy instead of a concat per axis
    stack_taps = Ops.stack_taps_by_gather
    add_taps = Ops.add_taps_by_scatter
