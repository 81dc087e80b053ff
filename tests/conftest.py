"""Shared fixtures: every test that takes ``backend`` runs once per installed backend.

``NU_XP_TEST_BACKENDS=numpy,torch`` restricts the matrix (the nox sessions
use it); a requested backend that cannot run here is reported as skipped with
the reason, never silently dropped. The names come from the backend registry
(``nu_xp.backends.BACKENDS``), plus two GPU variants: ``torch-cuda`` is the
torch backend with CUDA tensors (the fixture makes ``torch`` on ``cuda`` the
default for the test, so every ``backend="torch"`` in it lands on the GPU),
and ``jax-gpu`` likewise for JAX. JAX runs in its 64-bit mode here.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# scikit-learn's array API checks (and dispatch) need SciPy's array API mode, set before SciPy is imported
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# the float64 checks (gradcheck, equality with PyTorch) need JAX's 64-bit mode; users get float32 by default
os.environ.setdefault("JAX_ENABLE_X64", "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import nu_xp

settings.register_profile(
    "default",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
settings.load_profile("default")

from nu_xp.backends import BACKENDS, OPS_CLASSES  # noqa: E402 - after SCIPY_ARRAY_API

#: the registry's backends, plus the GPU variants of backends that also run on a CPU
GPU_VARIANTS = {"torch-cuda": "torch", "jax-gpu": "jax"}
ALL_BACKENDS = (*BACKENDS, *GPU_VARIANTS)
GPU_BACKENDS = ("cupy", *GPU_VARIANTS)


def _why_unavailable(name: str) -> str | None:
    """None when backend ``name`` can run here, else the reason to report as a skip."""
    base = GPU_VARIANTS.get(name, name)
    cls = OPS_CLASSES[base]
    try:
        importlib.import_module(cls.modules[0])
    except ImportError:
        return f'{name} backend skipped: {cls.package} is not installed (pip install "nu_xp[{cls.extra}]")'
    try:
        if name == "torch-cuda":
            nu_xp.get_backend("torch", device="cuda")
        elif name == "jax-gpu":
            nu_xp.get_backend("jax", device="gpu")
        else:
            nu_xp.get_backend(base)
    except (RuntimeError, ValueError, ImportError) as exc:
        return f"{name} backend skipped: it cannot run here ({exc})"
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
    if request.param == "jax-gpu":
        nu_xp.set_backend("jax", device="gpu")
        return "jax"
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


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Skips grouped by reason, one line each with a count (``-ra`` would print one line per test location)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped, by reason")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            terminalreporter.line(f"{count:5d}  {reason}")


@pytest.fixture(autouse=True)
def _fit_compiles_where_a_test_is_about_it(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """``fit(compile="auto")`` compiles on JAX: one XLA program per batch shape, seconds each, which made the
    JAX session three times longer. A test about something else runs the eager step (the compiled step equals
    it: ``tests/training/test_compiled.py``, which keeps "auto", as does any test marked ``compiles``);
    ``compile=True`` still compiles everywhere."""
    module = getattr(request.node, "module", None)
    if request.node.get_closest_marker("compiles") or getattr(module, "__name__", "").endswith("test_compiled"):
        return
    from nu_xp.training import loop

    check = loop._check_compile
    monkeypatch.setattr(
        loop, "_check_compile", lambda model, options: options.compile is True and check(model, options)
    )
