"""A saved page renders in a real browser (headless Chromium driven by Playwright).

Needs Debian's ``chromium`` (or the browser named by ``$NNX_CHROMIUM``) and the
``playwright`` Python package (no browser download). Without them the test skips with
the reason, except in CI (``CI=true``), where it fails: CI is expected to install
Chromium (see ``.ci/run``).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

import nnx_viz

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


def _chromium() -> str | None:
    """The Chromium to drive: $NNX_CHROMIUM if set, else Debian's, else one on PATH."""
    configured = os.environ.get("NNX_CHROMIUM")
    if configured:
        return configured if os.path.exists(configured) else None
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (pip install playwright)"
    if _chromium() is None:
        where = os.environ.get("NNX_CHROMIUM") or CHROMIUM
        return f"{where} is missing (install Debian's chromium: apt-get install chromium)"
    return None


@contextlib.contextmanager
def _chromium_page() -> Iterator[Any]:
    """A page in headless Chromium; skips (fails in CI) when there is none."""
    missing = _missing_browser()
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run in CI: {missing}", pytrace=False)
        pytest.skip(f"browser test needs headless Chromium: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


@pytest.mark.browser
def test_saved_page_renders_and_unfolds_in_chromium(mlp, tmp_path: pathlib.Path) -> None:
    mlp.tied = mlp.linear1.w
    path = nnx_viz.save_html(mlp, tmp_path / "mlp.html")
    with _chromium_page() as page:
        _check_page(page, path, tmp_path / "mlp.png")


def _check_page(page: Any, path: pathlib.Path, screenshot: pathlib.Path) -> None:
    page.goto(path.as_uri())

    # treescope draws the tree with JavaScript into a shadow root (Playwright's CSS
    # selectors pierce it); wait until the tree itself is there.
    root = page.locator(".treescope_root")
    root.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('treescope-container').shadowRoot"
        ".textContent.includes('MLP(')"
    )
    text = root.inner_text()
    assert "(Loading...)" not in text
    for expected in (
        "MLP(  # Param: 325 (1.3 KB), BatchStat: 64 (256 B), RngState: 2 (12 B)",
        "linear1=Linear(  # Param: 96 (384 B)",
        "bn=BatchNorm(  # Param: 64 (256 B), BatchStat: 64 (256 B)",
        "dropout=Dropout(  # RngState: 2 (12 B)",
        "mean=BatchStat(",
        "w=Param(",
        "# shared: same object as .linear1.w",
    ):
        assert expected in text, f"{expected!r} not shown in the browser:\n{text}"

    # Variables and arrays start folded (to a one-line summary); clicking unfolds the
    # node with that path: first the Param, then its array value, whose numbers appear.
    toggles = page.locator("input.foldable_node_toggle")

    def expanded_count() -> int:
        return sum(toggles.nth(i).is_checked() for i in range(toggles.count()))

    def unfold(node):  # type: ignore[no-untyped-def]
        toggle = node.locator("> label > input")
        assert not toggle.is_checked()
        node.locator("> label").click()
        assert toggle.is_checked()

    expanded_before = expanded_count()
    assert "Array([[" not in text
    param = page.locator("span.foldable_node:has(> span.copybutton[data-copy='.linear1.w'])")
    unfold(param)
    unfold(param.locator("span.foldable_node", has_text="float32(2, 32)"))
    text_after = root.inner_text()
    assert expanded_count() == expanded_before + 2
    assert "Array([[" in text_after
    assert len(text_after.splitlines()) > len(text.splitlines())

    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
