"""Every Python block of the documentation runs, page by page, as a reader would run it."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted([DOCS / "index.md", *DOCS.glob("tutorials/*.md")])


def blocks(page: Path) -> list[str]:
    return re.findall(r"```python[^\n]*\n(.*?)```", page.read_text(), re.S)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_page_runs(page, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    if "torch" in page.read_text():
        pytest.importorskip("torch")
    if page.stem == "mnist1d":
        pytest.importorskip("mnist1d")
    monkeypatch.chdir(tmp_path)
    code = blocks(page)
    assert code, f"{page.name} has no Python block"
    scope: dict = {"__name__": f"docs_{page.stem}"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes of short runs
            for i, block in enumerate(code):
                exec(compile(block, f"{page.name} block {i + 1}", "exec"), scope)
    finally:
        import nu_xp

        for name in ("Swish", "WrongSwish"):
            nu_xp.LAYER_REGISTRY.pop(name, None)
    assert capsys.readouterr().out  # every page prints what it shows
