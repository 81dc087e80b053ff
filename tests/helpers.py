"""Small helpers shared by the tests."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

import nu_xp


def on(backend: str, a: Any, dtype: str | None = "float64") -> Any:
    """``a`` as an array of ``backend`` (float64 by default; dtype=None keeps it)."""
    return nu_xp.asarray(np.asarray(a), like=backend, dtype=dtype)


def host(a: Any) -> np.ndarray:
    return nu_xp.to_host(a)


def small_mlp(backend: str) -> nu_xp.Sequential:
    """Linear(3, 5) → BatchNorm1d → Tanh → Dropout(0) → Linear(5, 2), seeded, float64: state of every kind."""
    return nu_xp.Sequential(
        nu_xp.Linear(3, 5, seed=0, backend=backend, dtype="float64"),
        nu_xp.BatchNorm1d(5, backend=backend, dtype="float64"),
        nu_xp.Tanh(),
        nu_xp.Dropout(0.0),
        nu_xp.Linear(5, 2, seed=1, backend=backend, dtype="float64"),
    )


def torch_reference_grads(torch_module: Any, fn: Any, *arrays: np.ndarray) -> tuple[Any, list[np.ndarray]]:
    """Value of ``fn(*tensors)`` and the autograd gradients w.r.t. every float input (float64, CPU)."""
    tensors = [
        torch_module.tensor(a, dtype=torch_module.float64, requires_grad=True)
        if np.asarray(a).dtype.kind == "f"
        else torch_module.tensor(a)
        for a in arrays
    ]
    out = fn(*tensors)
    return out, tensors


def assert_close(actual: Any, desired: Any, *, dtype: Any = None, ulps: float = 256.0) -> None:
    """``actual ≈ desired`` for two computations that may sum in another order (batch shapes, threads, BLAS).

    The tolerance comes from the dtype: ``ulps`` units in the last place of the
    dtype's epsilon, relative to each value, with an absolute floor of the
    same size scaled to the largest magnitude involved (values near zero come
    out of sums of larger terms). Never bit-equality.
    """
    a, d = np.asarray(host(actual), dtype=np.float64), np.asarray(host(desired), dtype=np.float64)
    name = nu_xp.backends.dtype_name(dtype if dtype is not None else host(actual).dtype)
    eps = float(np.finfo(name).eps) if name in ("float16", "float32", "float64") else float(np.finfo(np.float64).eps)
    scale = max(float(np.max(np.abs(d), initial=0.0)), float(np.max(np.abs(a), initial=0.0)), 1.0)
    np.testing.assert_allclose(a, d, rtol=ulps * eps, atol=ulps * eps * scale)


def npz_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive (stored members) holding ``members`` (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def npy_bytes(array: Any, allow_pickle: bool = False) -> bytes:
    """The bytes of a ``.npy`` file holding ``array``."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def linear_members(n_in: int = 2, n_out: int = 1, dtype: Any = np.float32) -> dict[str, bytes]:
    """The weight members of a model file for ``Sequential(Linear(n_in, n_out))``, all zeros."""
    return {
        "0.weight.npy": npy_bytes(np.zeros((n_out, n_in), dtype)),
        "0.bias.npy": npy_bytes(np.zeros(n_out, dtype)),
    }


def meta_member(layers: list[dict] | None = None, **changes: Any) -> bytes:
    """The ``__nu_xp__.npy`` member of a model file: valid metadata for ``layers``
    (default one ``Linear(2, 1)``), with the top-level keys in ``changes`` replaced."""
    meta = {
        "format": "nu_xp",
        "format_version": 1,
        "library_version": "0.1.0",
        "dtype": "float32",
        "architecture": {
            "class": "Sequential",
            "config": {},
            "layers": layers or [{"class": "Linear", "config": {"in_features": 2, "out_features": 1}}],
        },
    }
    meta.update(changes)
    return npy_bytes(np.array(json.dumps(meta)))


def rewrite_meta(src: Any, dst: Any, change: Any) -> None:
    """Copy the model file ``src`` to ``dst`` with its ``__nu_xp__`` JSON replaced by ``change(meta)``."""
    with np.load(src, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["__nu_xp__"] = np.array(json.dumps(change(json.loads(str(arrays["__nu_xp__"])))))
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
