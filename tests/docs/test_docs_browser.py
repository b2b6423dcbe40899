"""The built documentation site renders in a real browser (headless Chromium).

Opens three pages of ``docs/_build/html`` (the site ``nox -s docs`` builds): the
index, the ``nnx_graph`` API page and the executed getting-started guide, whose
``nnx.display`` outputs must draw their treescope trees. Screenshots go to
``out/docs/``.

Skips when the site is not built, except with ``NNX_REQUIRE_DOCS=1`` (set by
``nox -s docs``, which runs this test right after building), where it fails. The
browser conventions (Debian ``chromium`` or ``$NNX_CHROMIUM``, skip without it, fail
in CI) are those of ``tests/viz/test_browser.py``.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import pytest
from viz.test_browser import _chromium_page

ROOT = pathlib.Path(__file__).resolve().parents[2]
SITE = pathlib.Path(os.environ.get("NNX_DOCS_HTML", ROOT / "docs" / "_build" / "html"))
SCREENSHOTS = ROOT / "out" / "docs"

pytestmark = pytest.mark.browser


def _page_path(relative: str) -> pathlib.Path:
    path = SITE / relative
    if not path.exists():
        reason = f"{path} does not exist: build the site with `nox -s docs`"
        if os.environ.get("NNX_REQUIRE_DOCS") == "1":
            pytest.fail(f"NNX_REQUIRE_DOCS=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def _screenshot(page: Any, name: str, *, full_page: bool = True) -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path


def test_index_page() -> None:
    path = _page_path("index.html")
    with _chromium_page() as page:
        page.goto(path.as_uri())
        assert page.title().startswith("nnx")
        body = page.locator("article").inner_text()
        assert "Flax NNX programming model" in body
        # The guides and the API reference are reachable from the navigation.
        links = page.locator("nav a").evaluate_all("links => links.map(a => a.textContent)")
        joined = " ".join(links)
        for title in ("Getting started", "Checkpointing", "API reference"):
            assert title in joined, f"{title!r} missing from the navigation: {links}"
        _screenshot(page, "index.png")


def test_api_page_documents_the_package() -> None:
    path = _page_path("api/nnx_graph.html")
    with _chromium_page() as page:
        page.goto(path.as_uri())
        # autodoc entries: one <dt id="nnx_graph.X"> per documented name.
        for name in ("nnx_graph.Module", "nnx_graph.Variable", "nnx_graph.jit", "nnx_graph.split"):
            entry = page.locator(f"dt[id='{name}']")
            assert entry.count() == 1, f"no API entry for {name}"
        module = page.locator("dt[id='nnx_graph.Module']").locator("xpath=..")
        assert "Example" in module.inner_text()
        entries = page.locator("dl.py > dt[id^='nnx_graph.']").count()
        assert entries > 50, f"only {entries} entries on the nnx_graph page"
        # The page is very tall: capture the first screen.
        _screenshot(page, "api_nnx_graph.png", full_page=False)


def test_getting_started_shows_live_treescope_output() -> None:
    path = _page_path("guides/getting_started.html")
    with _chromium_page() as page:
        page.goto(path.as_uri())
        containers = page.locator("treescope-container")
        count = containers.count()
        assert count >= 3, f"expected the three nnx.display outputs, found {count}"
        texts = []
        for i in range(count):
            container = containers.nth(i)
            # treescope draws a tree (with JavaScript, into a shadow root) once it is
            # scrolled into view; until then it shows "(Loading...)".
            container.scroll_into_view_if_needed()
            page.wait_for_function(
                "c => c.shadowRoot && c.shadowRoot.querySelector('.treescope_root')"
                " && !c.shadowRoot.textContent.includes('(Loading...)')",
                arg=container.element_handle(),
            )
            root = container.locator(".treescope_root")
            assert root.count() == 1
            text = root.inner_text()
            assert text.strip(), f"treescope output {i} rendered empty"
            assert root.bounding_box()["height"] > 20  # type: ignore[index]
            texts.append(text)
        # The first display: the hand-written Linear, with its size comment.
        assert texts[0].startswith("Linear("), texts[0][:200]
        assert "# Param: 15 (60 B)" in texts[0], texts[0][:400]
        # The surgically modified model, with its LoRA Variables.
        assert any(t.startswith("MLP(") and "LoraParam" in t for t in texts), texts
        # Cell outputs of the executed notebook are in the page too.
        assert "counter.count.value" in page.locator("article").inner_text()
        # Viewport screenshots: a full-page capture resizes the viewport, and treescope
        # then redraws lazily, so the trees would be missing from the picture.
        first = containers.first
        first.scroll_into_view_if_needed()
        page.evaluate("c => c.scrollIntoView({block: 'center'})", first.element_handle())
        _screenshot(page, "getting_started.png", full_page=False)
        model = next(i for i, t in enumerate(texts) if t.startswith("MLP("))
        page.evaluate(
            "c => { c.scrollIntoView({block: 'start'}); window.scrollBy(0, -120); }",
            containers.nth(model).element_handle(),
        )
        _screenshot(page, "getting_started_model_tree.png", full_page=False)
