"""The documentation site: built strictly, served on loopback, and checked in a real headless Chromium.

Needs the ``docs`` extra (``pip install -e ".[docs]"``: MkDocs, Material,
mkdocstrings, MathJax's files, Playwright) and a Chromium: ``.ci/setup-browser``
installs Debian's ``chromium-headless-shell``, or set ``NU_XP_CHROMIUM`` to any
Chromium binary. Playwright drives it directly (``executable_path``); it never
downloads a browser. Screenshots of two pages are kept in
``build/docs-screenshots/``.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def chromium() -> str | None:
    if os.environ.get("NU_XP_CHROMIUM"):
        return os.environ["NU_XP_CHROMIUM"]
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    fixed = Path("/usr/lib/chromium/chromium-headless-shell")
    return str(fixed) if fixed.exists() else None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason='the docs need their extra: pip install -e ".[docs]"')
    pytest.importorskip("mkdocstrings", reason='the docs need their extra: pip install -e ".[docs]"')
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason='pip install -e ".[docs]" for Playwright')
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium: run .ci/setup-browser (Debian's chromium-headless-shell) or set NU_XP_CHROMIUM")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.console_errors = errors  # type: ignore[attr-defined]
    yield page
    page.close()


def shot(page, name: str) -> None:
    folder = ROOT / "build" / "docs-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=False)


def test_home_renders_without_console_errors(page, server):
    page.goto(server)
    assert "nu_xp" in page.title()
    assert page.locator("h1").first.inner_text().strip().rstrip("¶") == "nu_xp"
    assert page.locator("text=Twenty lines").count() >= 1
    shot(page, "home")
    assert page.console_errors == []


def test_navigation_reaches_the_api_page_of_linear(page, server):
    page.goto(urljoin(server, "api/"))  # the API overview, then the layers' index, then a family page
    page.locator("article").get_by_role("link", name="layers").first.click()
    page.wait_for_load_state("load")
    page.locator("article").get_by_role("link", name="Dense, embedding, dropout").first.click()
    page.wait_for_load_state("load")
    assert "/api/layers/dense/" in page.url
    heading = page.locator('[id="nu_xp.layers.linear.Linear"]')
    assert heading.count() == 1
    assert "x @ W.T + b" in page.content()
    assert page.console_errors == []


def test_search_finds_conv1d(page, server):
    page.goto(server)
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator("input.md-search__input").fill("Conv1d")
    results = page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=15000)
    hrefs = [results.nth(i).get_attribute("href") or "" for i in range(min(results.count(), 10))]
    assert any("api/layers" in h and "Conv1d" in h for h in hrefs), hrefs
    assert page.console_errors == []


def test_formulas_are_rendered_not_raw_tex(page, server):
    page.goto(urljoin(server, "backprop/"))
    page.wait_for_selector("mjx-container", timeout=20000)
    assert page.locator("mjx-container").count() > 20
    visible = page.locator("article").inner_text()
    assert "\\frac" not in visible and "\\partial" not in visible
    shot(page, "backprop")
    assert page.console_errors == []


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for key in ("href", "src"):
            if values.get(key) and tag in ("a", "img", "script", "link"):
                self.links.append(values[key])


def test_no_broken_internal_links(site):
    pages = {p: _parse(p) for p in site.rglob("*.html")}
    broken = []
    for path, parsed in pages.items():
        for link in parsed.links:
            url = urlparse(link)
            if url.scheme or link.startswith(("//", "mailto:", "javascript:")) or not (url.path or url.fragment):
                continue
            if not url.path:
                target = path
            elif url.path.startswith("/"):  # root-relative (the 404 page): from the site's root
                target = (site / unquote(url.path).lstrip("/")).resolve()
            else:
                target = (path.parent / unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)} → {link}")
            elif url.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(url.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)} → {link} (no such anchor)")
    assert not broken, "\n".join(broken[:20])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_no_raw_include_markers(site):
    """Every ``--8<--`` include was replaced by the file it names (a formatter once broke them silently)."""
    raw = [
        str(path.relative_to(site))
        for path in site.rglob("*.html")
        if any(marker in path.read_text(encoding="utf-8") for marker in ("--8&lt;--", "--8 &lt; --", "--8<--"))
    ]
    assert not raw, f"pages showing a raw include marker: {raw}"


#: a Sphinx role left in a docstring shows literally (``:class:`Layer```); mkdocstrings wants ``[`Layer`][]``
RAW_ROLE = re.compile(r":(?:class|mod|meth|func|attr|data|exc|obj|ref|term):(?:`|<code>|&#96;)")


#: a private class named as a base ("Bases: _ConvNd"): nothing a reader can look up
PRIVATE_BASE = re.compile(r'Bases:[^\n]*?title="[\w.]*\._\w+"')


def test_no_raw_sphinx_roles_and_no_private_bases(site):
    raw, private = {}, []
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        found = RAW_ROLE.findall(text)
        if found:
            raw[str(path.relative_to(site))] = len(found)
        if PRIVATE_BASE.search(text):
            private.append(str(path.relative_to(site)))
    assert not raw, f"pages showing raw Sphinx roles (count per page): {raw}"
    assert not private, f"pages naming a private base class: {private}"


def _pages_with_math(site: Path) -> list[str]:
    return sorted(
        str(p.parent.relative_to(site)) + "/"
        for p in site.rglob("index.html")
        if "arithmatex" in p.read_text(encoding="utf-8")
    )


def test_formulas_fit_their_column_and_show_no_stray_backslash(browser, server, site):
    """Each display formula is at most as wide as the text column (desktop width), and no formula draws
    a backslash glyph (``\\text{running\\_var}`` shows ``running\\_var``: the ``\\_`` is not TeX in text mode)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    try:
        pages = _pages_with_math(site)
        assert pages, "no page has formulas"
        for rel in pages:
            page.goto(urljoin(server, rel.lstrip("./")))
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20000)
            page.evaluate("() => MathJax.startup.promise")
            report = page.evaluate(
                """() => {
                const column = document.querySelector('article').getBoundingClientRect().width;
                const wide = [];
                document.querySelectorAll('mjx-container[display="true"]').forEach(m => {
                    const w = m.firstElementChild ? m.firstElementChild.getBoundingClientRect().width : 0;
                    if (w > column + 1) wide.push(Math.round(w) + ' px in ' + Math.round(column) + ' px');
                });
                const backslashes = document.querySelectorAll('mjx-container mjx-c.mjx-c5C').length;
                return {wide, backslashes, count: document.querySelectorAll('mjx-container').length};
            }"""
            )
            assert report["count"] > 0, f"{rel}: MathJax rendered nothing"
            if report["wide"]:
                problems.append(f"{rel}: formulas wider than the column: {report['wide']}")
            if report["backslashes"]:
                problems.append(f"{rel}: {report['backslashes']} backslash glyph(s) drawn in formulas")
    finally:
        page.close()
    assert not problems, "\n".join(problems)


def _public_classes_without_parameters(page) -> list[str]:
    return page.evaluate(
        """() => {
        const missing = [];
        document.querySelectorAll('div.doc-class').forEach(div => {
            const heading = div.querySelector(':scope > .doc-heading');
            const signature = div.querySelector(':scope > .doc-signature, :scope > .doc-contents > .doc-signature');
            if (!heading || !heading.id) return;
            const name = heading.id.split('.').pop();
            if (name.startsWith('_')) return;
            const text = signature ? signature.textContent.replace(/\\s+/g, '') : '';
            const args = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
            if (!args || args === '*args,**kwargs') return;  // nothing to describe
            const contents = div.querySelector(':scope > .doc-contents');
            if (!contents) { missing.push(heading.id); return; }
            const own = contents.cloneNode(true);
            own.querySelectorAll('.doc-children').forEach(e => e.remove());
            if (!/Parameters:/.test(own.textContent)) missing.push(heading.id);
        });
        return missing;
    }"""
    )


def test_api_pages_describe_every_public_class_parameters(page, server, site):
    """A public class whose constructor takes arguments has a Parameters section on its API page."""
    missing = []
    for path in sorted((site / "api").rglob("index.html")):
        page.goto(urljoin(server, str(path.parent.relative_to(site)) + "/"))
        missing += _public_classes_without_parameters(page)
    assert not missing, f"public classes without a Parameters section: {missing}"


# ---------------------------------------------------------------------------- what a newcomer meets (round three)

#: pages a reader opens first, and pages with long lines or signatures
WIDE_PAGES = ["", "tutorials/onnx/", "tutorials/realrun/", "api/layers/recurrent/", "api/training/", "benchmarks/"]


def _api_pages(site: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(site)) + "/" for p in (site / "api").rglob("index.html"))


def test_no_code_line_is_cut_off_and_signatures_are_formatted(browser, server, site):
    """At 1280×900 no code block or signature is wider than its visible box (long lines wrap); a long
    signature is laid out over several lines (formatted), never one line running off the edge."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    try:
        for rel in WIDE_PAGES + _api_pages(site):
            page.goto(urljoin(server, rel))
            report = page.evaluate(
                """() => {
                const cut = [];
                document.querySelectorAll('article pre > code, article .doc-signature code').forEach(c => {
                    if (c.scrollWidth > c.clientWidth + 1) cut.push(c.innerText.split('\\n')[0].slice(0, 60));
                });
                const signatures = [...document.querySelectorAll('.doc-signature')];
                const lstm = signatures.find(s => s.innerText.startsWith('LSTM('));
                return {cut, lstm: lstm ? lstm.innerText : null};
            }"""
            )
            if report["cut"]:
                problems.append(f"{rel or 'home'}: code wider than its box: {report['cut'][:3]}")
            if report["lstm"] is not None and report["lstm"].count("\n") < 3:
                problems.append(f"{rel}: LSTM's signature is not formatted: {report['lstm'][:80]}")
        page.goto(urljoin(server, "api/layers/recurrent/"))
        assert page.locator(".doc-signature").filter(has_text="LSTM(").count() == 1, "no LSTM signature found"
        shot(page, "api-recurrent")
    finally:
        page.close()
    assert not problems, "\n".join(problems)


def test_no_literal_rest_markers_and_no_raw_tex_in_the_search_index(site):
    import json

    literal = [str(p.relative_to(site)) for p in site.rglob("*.html") if "::</p>" in p.read_text(encoding="utf-8")]
    assert not literal, f"pages showing reST's '::' marker: {literal}"
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    raw = [
        f"{doc['location']}: {m.group(0)[:40]}"
        for doc in index["docs"]
        for m in re.finditer(r"\\\(|\\\[|\\frac|\\partial|\\in\b", doc.get("text", ""))
    ]
    assert not raw, f"{len(raw)} raw TeX fragments in the search index, e.g. {raw[:5]}"


#: helpers an outside review found among the layers; they belong to "Internals", not to the API reference
INTERNAL_NAMES = {"as_tuple", "resolve_padding", "accumulate", "set_weights_reader", "tap_slices", "unpad",
                  "probe_input", "dropout_mask", "restore_rng"}  # fmt: skip


def test_api_pages_list_public_names_only_and_stay_readable(browser, server, site):
    """No API page documents a private name or an internal helper, and none is a wall (at 1280×900, at most
    30 screens: the layers are one page per family)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    try:
        for rel in _api_pages(site):
            ids = _parse(site / rel / "index.html").ids
            names = {i.rsplit(".", 1)[-1] for i in ids if i.startswith("nu_xp.")}
            bad = sorted(n for n in names if (n.startswith("_") and not n.startswith("__")) or n in INTERNAL_NAMES)
            if bad:
                problems.append(f"{rel}: documents {bad}")
            page.goto(urljoin(server, rel))
            height = page.evaluate("() => document.documentElement.scrollHeight")
            if height > 30 * 900:
                problems.append(f"{rel}: {height} px tall")
    finally:
        page.close()
    assert not problems, "\n".join(problems)


def test_the_benchmark_plot_is_drawn_from_the_newest_results(page, server):
    """The plot is drawn at build time from RESULTS.md's newest ratio table, which must belong to its newest
    session (a session that measured speed records the ratios the page plots)."""
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    newest_session = re.search(r"^## (Session of .*)$", results, re.M).group(1)
    page.goto(urljoin(server, "benchmarks/"))
    caption = page.locator("article em").filter(has_text="Session of").first.inner_text()
    assert newest_session in caption, f"the plot shows {caption!r}; the newest results are {newest_session!r}"
    image = page.locator("img.benchmark-plot")
    assert image.count() == 1 and image.evaluate("img => img.naturalWidth") > 500
    assert page.locator("article h1").count() == 1, "the page has more than one title"
    assert page.console_errors == []


def test_the_site_names_jax_and_its_toc_follows_the_reader(page, server):
    page.goto(server)
    assert "JAX" in page.locator("article").inner_text()
    assert "JAX" in (page.locator('meta[name="description"]').get_attribute("content") or "")
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!relative $config_dir", "."))
    assert "toc.follow" in config["theme"]["features"]
