"""The backend matrix: ``nox -s tests-numpy tests-array_api_strict tests-torch tests-cupy tests-mpi lint``.

Each ``tests-<backend>`` session installs only what that backend needs and
runs the whole suite with ``NU_XP_TEST_BACKENDS=<backend>``, so every
backend-parametrized test runs on exactly that backend. ``tests-cupy`` skips
with a message where no CUDA device is present. ``tests-mpi`` installs mpi4py
and the MPICH wheel (``mpiexec`` in the session's venv) and runs the
data-parallel tests, which launch ``mpiexec -n 2`` and ``-n 3``.
"""

from __future__ import annotations

import shutil
import subprocess

import nox

nox.options.sessions = ["tests-numpy", "tests-array_api_strict", "tests-torch", "tests-mpi", "docs", "lint"]
nox.options.reuse_existing_virtualenvs = True

EXTRAS = {"numpy": "test", "array_api_strict": "test", "torch": "test,torch", "cupy": "test,cupy"}


def _cuda_device() -> str | None:
    """Name of the first NVIDIA GPU, or None."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    result = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    names = result.stdout.strip().splitlines()
    return names[0] if result.returncode == 0 and names else None


def _run_tests(session: nox.Session, backend: str) -> None:
    """Run the whole test suite with its backend fixture set to ``backend`` only."""
    if backend == "cupy":
        gpu = _cuda_device()
        if gpu is None:
            session.skip("tests-cupy skipped: no CUDA device on this machine (nvidia-smi finds no GPU)")
        session.log(f"CUDA device: {gpu}")
    session.install("-e", f".[{EXTRAS[backend]}]")
    session.run("python", "-m", "pytest", "-q", *session.posargs, env={"NU_XP_TEST_BACKENDS": backend})


def _register(backend: str) -> None:
    @nox.session(name=f"tests-{backend}")
    def run(session: nox.Session) -> None:
        _run_tests(session, backend)

    run.__doc__ = f"Run the test suite on the {backend} backend."


for _backend in EXTRAS:
    _register(_backend)


@nox.session(name="tests-mpi")
def tests_mpi(session: nox.Session) -> None:
    """The data-parallel tests under a real MPI runtime (mpi4py + the mpich wheel)."""
    session.install("-e", ".[test,torch,mpi]")
    session.run("python", "-m", "pytest", "-q", "tests/distributed", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly, run its tutorials, and check it in a real headless Chromium.

    The browser is Debian's chromium-headless-shell (``.ci/setup-browser`` installs it) or
    whatever ``NU_XP_CHROMIUM`` names; the browser test skips with that hint where neither exists.
    """
    session.install("-e", ".[docs,test,torch]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("python", "-m", "pytest", "-q", "-rs", "tests/docs", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
