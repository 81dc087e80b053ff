"""MkDocs hooks: the benchmark plot, MathJax served from the site itself (never a CDN), and a
temporary working folder for the pages whose code runs at build time.

MathJax comes from the ``django-static-mathjax`` wheel (plain static files,
no Django needed), listed in the ``docs`` extra: after the build, its
``tex-chtml.js`` and CHTML fonts are copied into ``site/assets/mathjax``.
The plot on the benchmarks page is drawn from ``benchmarks/summary.json``
before the build.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: the folder a page's executed code runs in (``exec="on"`` blocks, through markdown-exec), and where we were
_page_folder: tempfile.TemporaryDirectory | None = None
_previous_cwd: str | None = None


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


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """A page whose code runs at build time runs it in a fresh temporary folder: the files its code
    writes (models, plots) never land in the checkout. Paths in ``mkdocs.yml`` are absolute
    (``!relative $config_dir``), so the includes do not depend on the current folder."""
    global _page_folder, _previous_cwd
    if 'exec="on"' in markdown:
        _page_folder = tempfile.TemporaryDirectory(prefix="nu_xp_docs_")
        _previous_cwd = os.getcwd()
        os.chdir(_page_folder.name)
    return markdown


#: one base class in a "Bases:" line of the API reference, and the whole line
_BASE = re.compile(r'<code><span title="[\w.]*\._\w*">_\w*</span></code>(, )?')
_EMPTY_BASES = re.compile(r'<p class="doc doc-class-bases">\s*Bases:\s*</p>')


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    """Back to the previous folder once the page's code has run; its temporary folder is removed."""
    global _page_folder, _previous_cwd
    if _previous_cwd is not None:
        os.chdir(_previous_cwd)
        _previous_cwd = None
    if _page_folder is not None:
        _page_folder.cleanup()
        _page_folder = None
    return html


def on_post_page(output: str, page: Any, **kwargs: Any) -> str:
    """Drop private base classes (``_ConvNd``) from the API reference's "Bases:" lines: a reader
    cannot look them up, and the public class documents everything it inherits."""
    return _EMPTY_BASES.sub("", _BASE.sub("", output)).replace(", </p>", "</p>")


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Copy MathJax's TeX-to-CHTML bundle and its fonts next to the pages."""
    source = _mathjax_root()
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "tex-chtml.js", target / "tex-chtml.js")
    fonts = target / "output" / "chtml" / "fonts"
    shutil.copytree(source / "output" / "chtml" / "fonts", fonts, dirs_exist_ok=True)
