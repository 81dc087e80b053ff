"""The backend matrix: ``nox -s tests-numpy tests-array_api_strict tests-torch tests-jax tests-cupy tests-mpi lint``.

Each ``tests-<backend>`` session (one per backend of nu_xp's registry,
``nu_xp/backends/registry.py``) installs only what that backend needs (its
pip extra) and runs the whole suite with ``NU_XP_TEST_BACKENDS=<backend>``,
so every backend-parametrized test runs on exactly that backend.
``tests-cupy`` skips with a message where no CUDA device is present; where
one is, ``tests-torch`` and ``tests-jax`` also run their GPU variants. ``tests-mpi`` installs mpi4py
and the MPICH wheel (``mpiexec`` in the session's venv) and runs the
data-parallel tests, which launch ``mpiexec -n 2`` and ``-n 3``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True


def _registry_extras() -> dict[str, str]:
    """``{backend: pip extras}`` read from the backend modules' ``name``/``extra`` class attributes (no import).

    nox may run where nu_xp's dependencies are not installed, so the
    backend modules are parsed, not imported.
    """
    here = Path(__file__).parent / "nu_xp" / "backends"
    found: dict[str, str] = {}
    for module in sorted(here.glob("*_ops.py")):
        attrs = {}
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                if node.target.id in ("name", "extra") and isinstance(node.value, ast.Constant):
                    attrs[node.target.id] = node.value.value
        if "name" in attrs:
            found[attrs["name"]] = ",".join(dict.fromkeys(["test", *filter(None, [attrs.get("extra", "")])]))
    return found


EXTRAS = _registry_extras()
#: the versions CI pins (torch): the extras accept a range for users
PINNED = ("-c", ".ci/constraints.txt")
#: what a plain ``nox`` runs (cupy needs a GPU: run it by name, as .ci/run does)
nox.options.sessions = [*(f"tests-{b}" for b in EXTRAS if b != "cupy"), "tests-mpi", "docs", "lint"]


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
    session.install("-e", f".[{EXTRAS[backend]}]", *PINNED)
    backends = [backend]
    if backend in ("torch", "jax") and _cuda_device() is not None:
        backends.append({"torch": "torch-cuda", "jax": "jax-gpu"}[backend])
    session.run("python", "-m", "pytest", "-q", *session.posargs, env={"NU_XP_TEST_BACKENDS": ",".join(backends)})


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
    session.install("-e", ".[test,torch,mpi]", *PINNED)
    session.run("python", "-m", "pytest", "-q", "tests/distributed", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly, run its tutorials, and check it in a real headless Chromium.

    The browser is Debian's chromium-headless-shell (``.ci/setup-browser`` installs it) or
    whatever ``NU_XP_CHROMIUM`` names; the browser test skips with that hint where neither exists.
    """
    session.install("-e", ".[docs,test,torch]", *PINNED)
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("python", "-m", "pytest", "-q", "-rs", "tests/docs", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format) and mypy."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
