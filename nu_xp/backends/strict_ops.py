"""The ``"array_api_strict"`` backend: the array API standard and nothing else (CPU).

Code that runs here uses no function, type promotion or indexing outside the
standard, which is why the whole test suite runs on it. Every kernel is the
standard one; arrays reach the host through DLPack.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .ops import Ops

__all__ = ["StrictOps"]


class StrictOps(Ops):
    """array-api-strict: the conformance backend."""

    name: ClassVar[str] = "array_api_strict"
    modules: ClassVar[tuple[str, ...]] = ("array_api_strict",)
    namespace_module: ClassVar[str] = "array_api_strict"
    package: ClassVar[str] = "array-api-strict"
    extra: ClassVar[str] = "test"
    array_noun: ClassVar[str] = "an array_api_strict array"

    @classmethod
    def is_array(cls, x: Any) -> bool:
        return type(x).__module__.startswith("array_api_strict")

    def resolve_device(self, device: Any) -> Any:
        if device is None:
            return self.default_device()
        return self.xp.Device(device) if isinstance(device, str) else device

    def device_key(self, device: Any) -> Any:
        if device is None or isinstance(device, (str, int)):
            return device
        return str(getattr(device, "_device", device))  # array_api_strict.Device("device1")

    def device_name(self, device: Any) -> str:
        return str(getattr(device, "_device", device))

    def to_host(self, x: Any) -> np.ndarray:
        """Through DLPack (``numpy.asarray`` works only on its default CPU device)."""
        try:
            return np.from_dlpack(x)
        except Exception:
            return np.asarray(x)
