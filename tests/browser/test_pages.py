"""The built book as a reader sees it: every page in headless Chromium.

``make browser`` builds the book, then runs this file. It serves ``_build/html`` on a
free localhost port and drives Debian's Chromium (``/usr/bin/chromium``) with
Playwright's Python client, never a downloaded browser. For every page of the table of
contents (and ``index.html``) it checks that

- the page loads with no console error and no uncaught JavaScript exception;
- the page needs nothing from the network: every request to a host other than the local
  server is blocked (the course is read offline too, and the build machines have no
  network), and none is made at all (MathJax, fonts and icons are served from the book);
- math is typeset by MathJax (``mjx-container`` elements, no TeX errors), with MathJax
  loaded from the book's own ``_static/mathjax``;
- every ``<img>`` has loaded (``naturalWidth > 0``);

and, for every chapter page, that

- the Colab launch button links to that chapter's notebook in the repository named in
  ``_config.yml`` and appears when the launch menu is opened;
- exercise solutions are hidden until their toggle is clicked, then shown;
- moving any slider of the precomputed explorers changes the figure;
- a full-page screenshot is saved (the folder is printed at the end of the run; set
  ``COMPANION_SCREENSHOTS`` to choose it, default ``_build/screenshots``).

Environment: ``COMPANION_BUILT_BOOK`` (default ``<repo>/_build/html``) is the built book;
its table of contents and configuration are read from the source folder two levels up
(``<source>/_build/html``) when it has a ``_toc.yml``, else from the repository.
``COMPANION_CHROMIUM`` overrides the browser path. Without a build, Chromium or
Playwright the tests are skipped with the reason, unless ``COMPANION_BROWSER_REQUIRED=1``
(set by ``make browser``), which turns the skip into a failure.

Console messages tolerated: none from the pages themselves. The only messages ignored are
Chromium's own "Failed to load resource" reports for requests the test blocked (requests
to non-localhost URLs); a blocked request fails ``test_page_needs_no_network`` anyway,
so ignoring its console echo hides nothing.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("COMPANION_BUILT_BOOK", REPO / "_build" / "html")).resolve()
SOURCE = BUILD.parents[1] if (BUILD.parents[1] / "_toc.yml").exists() else REPO
SCREENSHOTS = Path(os.environ.get("COMPANION_SCREENSHOTS", BUILD.parent / "screenshots")).resolve()
CHROMIUM = os.environ.get("COMPANION_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("COMPANION_BROWSER_REQUIRED", "").lower() in {"1", "true", "yes"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 60_000


def _unavailable() -> str | None:
    if not (BUILD / "index.html").exists():
        return (f"no built book at {BUILD} (run `make book` first, or set COMPANION_BUILT_BOOK)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set COMPANION_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install -e '.[browser]')"
    return None


_reason = _unavailable()
if _reason:
    if REQUIRED:
        pytest.fail(f"browser test required but {_reason}", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)


# -- what the book contains ---------------------------------------------------------------
def _toc_files(node) -> list[str]:
    """Every ``file:`` entry of a Jupyter Book table of contents, in reading order."""
    files = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                files.append(node[key])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                files += _toc_files(child)
    return files


TOC = yaml.safe_load((SOURCE / "_toc.yml").read_text())
CONFIG = yaml.safe_load((SOURCE / "_config.yml").read_text())
TOC_FILES = [re.sub(r"\.(md|ipynb)$", "", f) for f in _toc_files(TOC)]
PAGES = ["index.html"] + [f"{f}.html" for f in TOC_FILES]
CHAPTERS = [f for f in TOC_FILES if re.match(r"\d\d_", Path(f).name)]


def colab_url(chapter: str) -> str:
    """The notebook URL the launch button must open, built from ``_config.yml``."""
    repo = CONFIG["repository"]
    org_and_name = urlparse(repo["url"]).path.strip("/")
    path_to_book = (repo.get("path_to_book") or "").strip("/")
    notebook = f"{path_to_book}/{chapter}.ipynb" if path_to_book else f"{chapter}.ipynb"
    base = CONFIG["launch_buttons"]["colab_url"].rstrip("/")
    return f"{base}/github/{org_and_name}/blob/{repo.get('branch', 'main')}/{notebook}"


# -- serving and browsing -----------------------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    timeout = 30  # seconds a connection may idle: the server never waits unboundedly

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def base_url():
    handler = functools.partial(_QuietHandler, directory=str(BUILD))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """One page opened in its own browser context, with what it logged and requested."""

    page: object
    url: str
    console_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    blocked: list = field(default_factory=list)


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in {"data", "blob", "about"} or parsed.hostname in LOCAL_HOSTS


def _wait_for_mathjax(page) -> None:
    page.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            await MathJax.startup.promise;
        }
    }""")


def _open(browser, url: str) -> Visit:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    visit = Visit(page=page, url=url)

    def route(route):
        request = route.request
        if _is_local(request.url):
            route.continue_()
        else:
            visit.blocked.append(f"{request.resource_type} {request.url}")
            route.abort()

    def on_console(message):
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        if message.text.startswith("Failed to load resource") and (not source or not _is_local(source)):
            return  # Chromium's echo of a request we blocked; test_page_needs_no_network reports it
        visit.console_errors.append(f"{message.text} ({source})")

    page.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.page_errors.append(str(error)))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    _wait_for_mathjax(page)
    return visit


@pytest.fixture(scope="module")
def visits(browser, base_url):
    """Each page is loaded once; the tests below read and then interact with it."""
    opened: dict[str, Visit] = {}

    def visit(path: str) -> Visit:
        if path not in opened:
            opened[path] = _open(browser, f"{base_url}/{path}")
            if path == "index.html":  # a redirect to the root page
                opened[path].page.wait_for_url(f"**/{TOC_FILES[0]}.html")
                opened[path].page.wait_for_load_state("load")
                _wait_for_mathjax(opened[path].page)
        return opened[path]

    yield visit
    for v in opened.values():
        v.page.context.close()


# -- every page ---------------------------------------------------------------------------
def test_the_book_has_pages_and_chapters():
    assert TOC_FILES, f"no pages in {SOURCE / '_toc.yml'}"
    for f in TOC_FILES:
        assert (BUILD / f"{f}.html").exists(), f"_toc.yml lists {f} but the build has no {f}.html"


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_without_console_errors(visits, path):
    visit = visits(path)
    assert not visit.page_errors, f"{path}: uncaught JavaScript errors: {visit.page_errors}"
    assert not visit.console_errors, f"{path}: console errors: {visit.console_errors}"
    assert visit.page.title(), f"{path} has no title"
    assert visit.page.locator("main, article").count() > 0, f"{path} has no main content"


@pytest.mark.parametrize("path", PAGES)
def test_page_needs_no_network(visits, path):
    visit = visits(path)
    assert not visit.blocked, (f"{path} requested resources outside the book, which an offline reader "
                               f"cannot load: {visit.blocked}")


MATH_STATE = """() => {
    const maths = Array.from(document.querySelectorAll('span.math, div.math'));
    const script = Array.from(document.scripts).find(s => /mathjax/i.test(s.src));
    return {
        count: maths.length,
        unrendered: maths.filter(m => !m.querySelector('mjx-container'))
                         .map(m => m.textContent.slice(0, 80)),
        empty: maths.filter(m => { const c = m.querySelector('mjx-container');
                                   return c && c.getBoundingClientRect().width <= 0; }).length,
        errors: Array.from(document.querySelectorAll('mjx-merror, [data-mjx-error]'))
                     .map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
        undefined: Array.from(document.querySelectorAll('mjx-container mtext[mathcolor="red"]'))
                        .map(e => e.textContent).filter(s => s.startsWith('\\\\')).slice(0, 5),
        version: window.MathJax && window.MathJax.version || null,
        script: script ? script.src : null,
    };
}"""


@pytest.mark.parametrize("path", PAGES)
def test_math_is_rendered_by_local_mathjax(visits, path):
    visit = visits(path)
    state = visit.page.evaluate(MATH_STATE)
    if state["count"] == 0:
        assert path.removesuffix(".html") not in CHAPTERS, f"chapter {path} has no math at all"
        return
    assert state["version"], f"{path} has math but MathJax did not start (script: {state['script']})"
    assert state["script"] and _is_local(state["script"]), (
        f"{path} loads MathJax from {state['script']}, not from the book")
    assert not state["unrendered"], f"{path}: math not typeset: {state['unrendered'][:5]}"
    assert not state["empty"], f"{path}: {state['empty']} typeset formulas have zero width (fonts?)"
    assert not state["errors"], f"{path}: MathJax errors: {state['errors']}"
    assert not state["undefined"], f"{path}: undefined TeX macros: {state['undefined']}"


IMAGES_STATE = """async () => {
    const images = Array.from(document.images);
    for (const img of images) {
        img.loading = 'eager';
        if (!img.complete) {
            await new Promise(done => { img.addEventListener('load', done, {once: true});
                                        img.addEventListener('error', done, {once: true});
                                        setTimeout(done, 20000); });
        }
    }
    return images.map(img => ({src: img.currentSrc || img.src, alt: img.alt,
                               complete: img.complete, width: img.naturalWidth}));
}"""


@pytest.mark.parametrize("path", PAGES)
def test_every_image_loads(visits, path):
    visit = visits(path)
    images = visit.page.evaluate(IMAGES_STATE)
    broken = [f"{i['src'][:100]} (alt={i['alt']!r})" for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"{path}: images that did not load: {broken}"


# -- every chapter ------------------------------------------------------------------------
def _chapter_param(chapters):
    return pytest.mark.parametrize("chapter", chapters or [
        pytest.param(None, marks=pytest.mark.skip(reason="the table of contents lists no chapter yet"))])


@_chapter_param(CHAPTERS)
def test_chapter_screenshot(visits, chapter):
    visit = visits(f"{chapter}.html")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{Path(chapter).name}.png"
    visit.page.evaluate("() => window.scrollTo(0, 0)")
    visit.page.screenshot(path=str(target), full_page=True)
    height = visit.page.evaluate("() => document.documentElement.scrollHeight")
    png = target.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, f"{target} is not a real screenshot"
    assert height > 900, f"{chapter}: the page is only {height}px tall; did the notebook render?"


@_chapter_param(CHAPTERS)
def test_colab_button_opens_this_chapter(visits, chapter):
    page = visits(f"{chapter}.html").page
    expected = colab_url(chapter)
    links = page.locator("a[href*='colab.research.google.com']")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert hrefs == {expected}, f"{chapter}: Colab links {hrefs}, expected {expected}"
    toggle = page.locator(".dropdown-launch-buttons button.dropdown-toggle")
    assert toggle.count() == 1, f"{chapter}: no launch menu"
    link = links.first
    assert not link.is_visible(), "the Colab link should sit in the closed launch menu"
    toggle.click()
    link.wait_for(state="visible", timeout=5_000)
    page.keyboard.press("Escape")


@_chapter_param(CHAPTERS)
def test_solutions_are_hidden_until_clicked(visits, chapter):
    page = visits(f"{chapter}.html").page
    solutions = page.locator("div.solution")
    assert solutions.count() >= 1, f"{chapter} has no exercise solutions"
    for i in range(solutions.count()):
        solution = solutions.nth(i)
        body = solution.locator(":scope > :not(.admonition-title)")
        assert body.count() > 0, f"{chapter}: solution {i + 1} is empty"
        visible = [body.nth(j).is_visible() for j in range(body.count())]
        assert not any(visible), f"{chapter}: solution {i + 1} is shown before it is clicked"
        button = solution.locator(":scope > .admonition-title button.toggle-button")
        assert button.count() == 1, f"{chapter}: solution {i + 1} has no show/hide button"
        button.click()  # the title's middle may be the link to the exercise, so click the button
        body.first.wait_for(state="visible", timeout=5_000)
        assert "toggle-hidden" not in (solution.get_attribute("class") or "")


FIGURES_STATE = """() => {
    const cells = Array.from(document.querySelectorAll('.cell_output'));
    const repeated = cells.map(c => Array.from(c.querySelectorAll('img')).map(i => i.getAttribute('src'))
                                       .filter((s, k, all) => s && all.indexOf(s) !== k))
                          .filter(r => r.length).map(r => r[0].slice(0, 80));
    return {
        images: document.querySelectorAll('.cell_output img:not(.companion-explorer-frame)').length,
        bare: cells.map(c => c.textContent.match(/<Figure size \\d+x\\d+ with \\d+ Axes>/))
                   .filter(Boolean).map(m => m[0]),
        repeated: repeated,
    };
}"""


@_chapter_param(CHAPTERS)
def test_chapter_figures_are_drawn_once(visits, chapter):
    """Figures appear as images: a kernel started with ``MPLBACKEND=Agg`` prints
    ``<Figure size ...>`` instead and ``plt.show()`` draws nothing; and no cell shows the same
    figure twice (a returned Figure plus the inline backend's automatic display)."""
    state = visits(f"{chapter}.html").page.evaluate(FIGURES_STATE)
    assert not state["bare"], (f"{chapter}: figures printed as text, not drawn: {state['bare'][:3]} "
                               "(was the book built with MPLBACKEND=Agg?)")
    assert state["images"] > 0, f"{chapter}: no figure in any cell output"
    assert not state["repeated"], f"{chapter}: cells showing the same figure twice: {state['repeated'][:3]}"


SLIDER_STATE = """(root) => ({
    src: root.querySelector('img.companion-explorer-frame').src,
    text: root.querySelector('pre.companion-explorer-text').textContent,
    loaded: root.querySelector('img.companion-explorer-frame').naturalWidth > 0,
})"""


@_chapter_param(CHAPTERS)
def test_explorer_slider_changes_the_figure(visits, chapter):
    page = visits(f"{chapter}.html").page
    explorers = page.locator("div.companion-explorer")
    assert explorers.count() >= 1, f"{chapter} has no precomputed explorer (explorer.show() at build time)"
    for e in range(explorers.count()):
        explorer = explorers.nth(e)
        sliders = explorer.locator("input[type=range]")
        assert sliders.count() >= 1, f"{chapter}: explorer {e + 1} has no slider"
        for s in range(sliders.count()):
            slider = sliders.nth(s)
            value, maximum = int(slider.input_value()), int(slider.get_attribute("max"))
            assert maximum >= 1, f"{chapter}: explorer {e + 1} slider {s + 1} has a single position"
            before = explorer.evaluate(SLIDER_STATE)
            slider.scroll_into_view_if_needed()
            slider.focus()
            page.keyboard.press("ArrowRight" if value < maximum else "ArrowLeft")
            moved = int(slider.input_value())
            assert moved != value, f"{chapter}: the slider did not move"
            after = explorer.evaluate(SLIDER_STATE)
            assert after["src"] != before["src"], (
                f"{chapter}: explorer {e + 1}, slider {s + 1}: moving {value} -> {moved} left the figure unchanged")
            page.wait_for_function(
                "(root) => root.querySelector('img.companion-explorer-frame').complete", arg=explorer.element_handle())
            assert explorer.evaluate(SLIDER_STATE)["loaded"], f"{chapter}: the new frame did not load"
            labels = json.loads(slider.get_attribute("data-labels"))
            shown = slider.locator("xpath=..").locator(".companion-explorer-value").text_content()
            assert shown == labels[moved], f"{chapter}: the slider shows {shown!r}, expected {labels[moved]!r}"
            page.keyboard.press("ArrowLeft" if value < maximum else "ArrowRight")  # back to the default
            assert explorer.evaluate(SLIDER_STATE)["src"] == before["src"]

