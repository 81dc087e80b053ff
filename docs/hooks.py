"""MkDocs hooks: the benchmark plot, MathJax served from the site itself (never a CDN), and a
temporary working folder for the pages whose code runs at build time.

MathJax comes from the ``django-static-mathjax`` wheel (plain static files,
no Django needed), listed in the ``docs`` extra: after the build, its
``tex-chtml.js`` and CHTML fonts are copied into ``site/assets/mathjax``.
The plot on the benchmarks page is drawn before the build from the newest
``<!-- plot: ... -->`` table of ``benchmarks/RESULTS.md``, so it always shows
the newest results.
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


#: a table of ratios that the benchmarks page plots: ``<!-- plot: what the ratios are -->``, a Markdown table
#: (first column the workload, then one column per reference), ``<!-- /plot -->``
_PLOT_BLOCK = re.compile(r"<!-- plot: (.*?) -->\s*\n(.*?)<!-- /plot -->", re.S)
_SESSION = re.compile(r"^## (Session of .*|GPU: .*)$", re.M)


def benchmark_tables(results: str) -> list[dict[str, Any]]:
    """Every plot block of ``benchmarks/RESULTS.md``, newest first: its note, the session heading above it, and
    ``{workload: {reference: ratio}}`` (cells that are not numbers are left out)."""
    tables = []
    for match in _PLOT_BLOCK.finditer(results):
        sessions = list(_SESSION.finditer(results, 0, match.start()))
        rows = [
            [cell.strip().strip("*") for cell in line.strip().strip("|").split("|")]
            for line in match.group(2).strip().splitlines()
        ]
        header, body = rows[0], [r for r in rows[2:] if r and r[0]]
        data: dict[str, dict[str, float]] = {}
        for row in body:
            for ref, cell in zip(header[1:], row[1:]):
                try:
                    data.setdefault(row[0], {})[ref] = float(cell)
                except ValueError:
                    pass
        tables.append({"note": match.group(1), "session": sessions[-1].group(1) if sessions else "", "data": data})
    return tables


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Draw ``assets/benchmarks.png`` from the newest plot block of ``benchmarks/RESULTS.md`` (matplotlib, no
    display): the plot can never be older than the results it summarizes."""
    from matplotlib.figure import Figure

    root = Path(config["config_file_path"]).parent
    tables = benchmark_tables((root / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8"))
    if not tables:
        raise RuntimeError("benchmarks/RESULTS.md has no <!-- plot: ... --> table for the benchmarks page")
    newest = tables[0]
    workloads = newest["data"]
    references = list(dict.fromkeys(ref for refs in workloads.values() for ref in refs))
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(references)
    for i, ref in enumerate(references):
        xs = [k + i * width for k, refs in enumerate(workloads.values()) if ref in refs]
        ys = [refs[ref] for refs in workloads.values() if ref in refs]
        bars = ax.bar(xs, ys, width, label=f"nu_xp / {ref}")
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=7, padding=2)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(workloads))], list(workloads), fontsize=9)
    ax.set_ylabel("time ratio (below 1: nu_xp faster)", fontsize=10)
    ax.set_yscale("log")
    ax.legend(fontsize=9)
    ax.set_title(f"{newest['note']}\n{newest['session']}", fontsize=11)
    target = Path(config["docs_dir"]) / "assets" / "benchmarks.png"
    fig.savefig(target, dpi=110)
    config["extra"]["benchmark_caption"] = f"{newest['note']} ({newest['session']})"


def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    """A page whose code runs at build time runs it in a fresh temporary folder: the files its code
    writes (models, plots) never land in the checkout. Paths in ``mkdocs.yml`` are absolute
    (``!relative $config_dir``), so the includes do not depend on the current folder."""
    global _page_folder, _previous_cwd
    if "<!-- benchmark-plot -->" in markdown:
        caption = config["extra"].get("benchmark_caption", "")
        markdown = markdown.replace(
            "<!-- benchmark-plot -->",
            f"![{caption}](assets/benchmarks.png){{ .benchmark-plot }}\n\n*{caption}*",
        )
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


#: a paragraph that ends in reST's literal-block marker ``::`` (numpydoc docstrings use it before a formula)
_LITERAL_MARKER = re.compile(r"(\S?)(\s*)::</p>")


def _literal_marker(match: re.Match) -> str:
    """reST's rule: ``text::`` shows ``text:``; a ``::`` standing alone (after a space) shows nothing."""
    before, space = match.group(1), match.group(2)
    return f"{before}:</p>" if before and not space else f"{before}</p>"


def on_post_page(output: str, page: Any, **kwargs: Any) -> str:
    """Drop private base classes (``_ConvNd``) from the API reference's "Bases:" lines: a reader
    cannot look them up, and the public class documents everything it inherits. A docstring's
    ``formula::`` before an indented block shows as ``formula:`` (as Sphinx shows it)."""
    output = _LITERAL_MARKER.sub(_literal_marker, output)
    return _EMPTY_BASES.sub("", _BASE.sub("", output)).replace(", </p>", "</p>")


#: TeX commands shown as the characters they stand for in the search index's previews
_TEX_SYMBOLS = {
    "partial": "∂", "in": "∈", "cdot": "·", "odot": "⊙", "times": "×", "sum": "Σ", "prod": "Π", "sqrt": "√",
    "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "infty": "∞",
    "leftarrow": "←", "rightarrow": "→", "to": "→", "gets": "←", "mapsto": "↦", "top": "ᵀ", "dots": "…",
    "ldots": "…", "cdots": "⋯", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε",
    "varepsilon": "ε", "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "sigma": "σ", "tau": "τ", "phi": "φ",
    "Sigma": "Σ", "Delta": "Δ", "nabla": "∇", "pm": "±", "circ": "∘", "ell": "ℓ", "max": "max", "min": "min",
    "exp": "exp", "log": "log", "tanh": "tanh", "mathbb": "", "mathrm": "", "text": "", "operatorname": "",
    "left": "", "right": "", "quad": " ", "qquad": " ", "big": "", "Big": "", "displaystyle": "",
}  # fmt: skip
_TEX_SPAN = re.compile(r"\\\((.*?)\\\)|\\\[(.*?)\\\]", re.S)
_TEX_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEX_COMMAND = re.compile(r"\\([A-Za-z]+)")


def tex_to_text(tex: str) -> str:
    """A formula as a reader of plain text would write it: ``\\frac{a}{b}`` → ``a/b``, ``\\partial`` → ``∂``,
    braces and spacing commands gone (for the search previews, which cannot typeset)."""
    for _ in range(3):  # nested fractions, innermost first
        tex = _TEX_FRAC.sub(r"(\1)/(\2)", tex)
    tex = _TEX_COMMAND.sub(lambda m: _TEX_SYMBOLS.get(m.group(1), m.group(1)), tex)
    tex = tex.replace("\\{", "\0(").replace("\\}", "\0)")  # escaped braces are shown: keep them aside
    tex = tex.replace("\\,", " ").replace("\\;", " ").replace("\\!", "").replace("\\\\", " ")
    tex = re.sub(r"[{}]", "", tex).replace("\\", "").replace("\0(", "{").replace("\0)", "}").replace("^ᵀ", "ᵀ")
    return re.sub(r"\s+", " ", tex).strip()


def _plain_search_index(site: Path) -> None:
    """Formulas in the search index as plain text (its previews show raw text: ``\\(m_i \\in \\{0, 1\\}\\)``
    would show as written)."""
    import json

    path = site / "search" / "search_index.json"
    if not path.exists():
        return
    index = json.loads(path.read_text(encoding="utf-8"))
    for doc in index.get("docs", []):
        for key in ("text", "title"):
            if key in doc:
                doc[key] = _TEX_SPAN.sub(lambda m: tex_to_text(m.group(1) or m.group(2) or ""), doc[key])
    path.write_text(json.dumps(index, ensure_ascii=False), encoding="utf-8")


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Copy MathJax's TeX-to-CHTML bundle and its fonts next to the pages; formulas in the search index as text."""
    _plain_search_index(Path(config["site_dir"]))
    source = _mathjax_root()
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "tex-chtml.js", target / "tex-chtml.js")
    fonts = target / "output" / "chtml" / "fonts"
    shutil.copytree(source / "output" / "chtml" / "fonts", fonts, dirs_exist_ok=True)
