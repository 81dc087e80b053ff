"""MkDocs hooks: the benchmark plot, and MathJax served from the site itself (never a CDN).

MathJax comes from the ``django-static-mathjax`` wheel (plain static files,
no Django needed), listed in the ``docs`` extra: after the build, its
``tex-chtml.js`` and CHTML fonts are copied into ``site/assets/mathjax``.
The plot on the benchmarks page is drawn from ``benchmarks/summary.json``
before the build.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def _mathjax_root() -> Path:
    import mathjax  # the django-static-mathjax package

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Draw ``assets/benchmarks.png`` from ``benchmarks/summary.json`` (matplotlib, no display)."""
    import json

    from matplotlib.figure import Figure

    root = Path(config["config_file_path"]).parent
    summary = json.loads((root / "benchmarks" / "summary.json").read_text())
    workloads = summary["workloads"]
    references = sorted({ref for refs in workloads.values() for ref in refs})
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(references)
    for i, ref in enumerate(references):
        xs = [k + i * width for k, refs in enumerate(workloads.values()) if ref in refs]
        ys = [refs[ref] for refs in workloads.values() if ref in refs]
        ax.bar(xs, ys, width, label=f"nu_xp / {ref}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(workloads))], list(workloads), fontsize=8)
    ax.set_ylabel("time ratio (below 1: nu_xp faster)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(summary["note"], fontsize=7)
    target = Path(config["docs_dir"]) / "assets" / "benchmarks.png"
    fig.savefig(target, dpi=100)


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Copy MathJax's TeX-to-CHTML bundle and its fonts next to the pages."""
    source = _mathjax_root()
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "tex-chtml.js", target / "tex-chtml.js")
    fonts = target / "output" / "chtml" / "fonts"
    shutil.copytree(source / "output" / "chtml" / "fonts", fonts, dirs_exist_ok=True)
