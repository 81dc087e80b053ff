"""scikit-learn's own MLP test file, with only its import line pointed at ``nu_xp.sklearn``.

The copy is generated at test time from the installed scikit-learn
(``sklearn/neural_network/tests/test_mlp.py``), so it follows the version,
and run in a separate pytest process. Every test must pass except those that
depend on scikit-learn's internals (:data:`INTERNALS`).
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed: its own MLP tests cannot run")

IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"
#: tests that check scikit-learn's internals rather than the estimators' behaviour
INTERNALS = {
    # expects the message of scikit-learn's stratified split to show its internal binarized label ('True')
    "test_early_stopping_stratified",
}
CONFTEST = '''
import pytest


@pytest.fixture
def global_random_seed():
    """scikit-learn's conftest fixture, at its default seed (42)."""
    return 42
'''


def test_scikit_learns_mlp_tests_pass_against_nu_xp(tmp_path: Path) -> None:
    source = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
    if not source.is_file():
        pytest.skip(f"this scikit-learn ships no {source.name} (its tests are not installed)")
    text = source.read_text()
    assert text.count(IMPORT) == 1, "scikit-learn's import line changed: update IMPORT"
    (tmp_path / "test_mlp_nu_xp.py").write_text(
        text.replace(IMPORT, "from nu_xp.sklearn import MLPClassifier, MLPRegressor")
    )
    (tmp_path / "conftest.py").write_text(CONFTEST)
    report = tmp_path / "report.xml"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1200,
    )
    cases = ET.parse(report).getroot().iter("testcase")
    failed, passed = set(), 0
    for case in cases:
        name = case.get("name", "").split("[")[0]
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(name)
        elif case.find("skipped") is None:
            passed += 1
    assert failed <= INTERNALS, (
        f"failing beyond the internals tests: {sorted(failed - INTERNALS)}\n{out.stdout[-3000:]}"
    )
    assert passed >= 50, out.stdout[-3000:]
