"""Shared fixtures: every test that takes ``backend`` runs once per installed backend.

``NU_XP_TEST_BACKENDS=numpy,torch`` restricts the matrix (the nox sessions
use it); a requested backend that cannot run here is reported as skipped with
the reason, never silently dropped. ``torch-cuda`` is the torch backend with
CUDA tensors: the fixture makes ``torch`` on ``cuda`` the default for the
test, so every ``backend="torch"`` in it lands on the GPU.
"""

from __future__ import annotations

import importlib
import os

# scikit-learn's array API checks (and dispatch) need SciPy's array API mode, set before SciPy is imported
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
settings.load_profile("default")

ALL_BACKENDS = ("numpy", "array_api_strict", "torch", "cupy", "torch-cuda")
GPU_BACKENDS = ("cupy", "torch-cuda")


def _why_unavailable(name: str) -> str | None:
    if name == "numpy":
        return None
    module = {"array_api_strict": "array_api_strict", "torch": "torch", "cupy": "cupy", "torch-cuda": "torch"}[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        if name == "cupy":
            return 'cupy backend skipped: cupy is not installed (needs an NVIDIA GPU; pip install "nu_xp[cupy]")'
        return f"{name} backend skipped: {module} is not installed"
    if name == "torch-cuda" and not mod.cuda.is_available():
        return "torch-cuda backend skipped: this torch build sees no CUDA device"
    if name == "cupy":
        try:
            if mod.cuda.runtime.getDeviceCount() < 1:
                return "cupy backend skipped: no CUDA device on this machine"
        except Exception as exc:
            return f"cupy backend skipped: no usable CUDA device ({exc})"
    return None


def _backend_params() -> list:
    requested = os.environ.get("NU_XP_TEST_BACKENDS", "").strip()
    names = [n.strip() for n in requested.split(",") if n.strip()] if requested else list(ALL_BACKENDS)
    params = []
    for name in names:
        if name not in ALL_BACKENDS:
            raise pytest.UsageError(f"NU_XP_TEST_BACKENDS names unknown backend {name!r}")
        why = _why_unavailable(name)
        if why is None:
            params.append(pytest.param(name, id=name))
        elif requested or name in GPU_BACKENDS:
            params.append(pytest.param(name, id=name, marks=pytest.mark.skip(reason=why)))
    return params


BACKEND_PARAMS = _backend_params()


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> str:
    """Name of a backend to run the test on (``torch-cuda`` runs as ``"torch"`` with CUDA as the default device)."""
    import nu_xp

    if request.param == "torch-cuda":
        nu_xp.set_backend("torch", device="cuda")
        return "torch"
    return request.param


@pytest.fixture
def torch():
    """The torch module, for reference results (skips where torch is not installed)."""
    return pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _default_backend_is_numpy():
    """Each test starts and ends with the default backend (numpy, float32)."""
    import nu_xp

    nu_xp.set_backend("numpy")
    yield
    nu_xp.set_backend("numpy")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
