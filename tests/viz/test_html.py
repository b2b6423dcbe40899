"""HTML rendering, standalone pages, notebook display and colours."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import types

import jax.numpy as jnp
import pytest

import nnx_graph as nnx
import nnx_viz
from nnx_viz import _colors
from nnx_viz._colors import type_color


def test_render_html_is_a_treescope_fragment_with_the_tree(mlp) -> None:
    fragment = nnx_viz.render_html(mlp)
    assert "treescope-container" in fragment and "treescope_root" in fragment
    for text in ("MLP(", "linear1=", "Linear(", "BatchNorm(", "BatchStat(", "RngStream("):
        assert text in fragment
    assert "# Param: 325 (1.3 KB), BatchStat: 64 (256 B), RngState: 2 (12 B)" in fragment


def test_colours_are_per_type_and_stable(mlp) -> None:
    fragment = nnx_viz.render_html(mlp)
    for name in ("MLP", "Linear", "BatchNorm", "Param", "BatchStat"):
        assert type_color(name) in fragment
    assert len({type_color(n) for n in ("MLP", "Linear", "BatchNorm", "Param")}) == 4
    # Independent of Python's per-process string hashing. (_colors.py is loaded on its
    # own, so the other process does not pay for importing JAX.)
    load_alone = (
        "import importlib.util as u, sys; "
        "spec = u.spec_from_file_location('colors', sys.argv[1]); "
        "colors = u.module_from_spec(spec); spec.loader.exec_module(colors); "
        "print(colors.type_color('Linear'))"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", load_alone, _colors.__file__],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert other_process.stdout.strip() == type_color("Linear")


def test_save_html_writes_a_standalone_uncompressed_page(mlp, tmp_path: pathlib.Path) -> None:
    mlp.tied = mlp.linear1.w
    path = nnx_viz.save_html(mlp, tmp_path / "model.html")
    assert path == tmp_path / "model.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in page and "<title>MLP</title>" in page
    assert "treescope-container" in page and "treescope_root" in page
    # Uncompressed: the tree's text is in the file as is (not base64 deflate).
    for text in ("linear1=", "Linear(", "# Param: 96 (384 B)", "shared: same object as .linear1.w"):
        assert text in page
    # Nothing is fetched from the network.
    assert 'src="http' not in page and 'href="http' not in page


def test_save_html_title_and_missing_directory(tmp_path: pathlib.Path) -> None:
    page = nnx_viz.save_html(nnx.Rngs(0), tmp_path / "r.html", title="<rngs>").read_text()
    assert "<title>&lt;rngs&gt;</title>" in page
    with pytest.raises(FileNotFoundError, match=r"does not exist\. Fix: create it first"):
        nnx_viz.save_html(nnx.Rngs(0), tmp_path / "missing" / "r.html")


def test_arrays_visualize_draws_arrays() -> None:
    param = nnx.Param(jnp.arange(12.0).reshape(3, 4))
    summary = nnx_viz.render_html(param)
    visual = nnx_viz.render_html(param, arrays="visualize")
    assert "arrayviz" not in summary
    assert "arrayviz" in visual and "Param(" in visual


def _fake_ipython(monkeypatch: pytest.MonkeyPatch, shell: object) -> list[object]:
    """Stand-ins for IPython and IPython.display (IPython itself is optional): the
    shell that get_ipython() returns, and a list collecting what gets displayed."""

    class HTML:
        def __init__(self, data: str) -> None:
            self.data = data

    shown: list[object] = []
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell  # type: ignore[attr-defined]
    ipython_display = types.ModuleType("IPython.display")
    ipython_display.HTML = HTML  # type: ignore[attr-defined]
    ipython_display.display = shown.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display)
    return shown


def test_display_in_a_notebook_shows_html(mlp, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = _fake_ipython(monkeypatch, types.SimpleNamespace(kernel=object()))
    assert nnx_viz._display.in_notebook()
    nnx_viz.display(mlp, nnx.Rngs(0))
    assert len(shown) == 2
    assert all(type(obj).__name__ == "HTML" for obj in shown)
    assert "treescope-container" in shown[0].data  # type: ignore[attr-defined]


def test_terminal_ipython_is_not_a_notebook(mlp, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    shown = _fake_ipython(monkeypatch, types.SimpleNamespace())  # no kernel
    assert not nnx_viz._display.in_notebook()
    nnx_viz.display(mlp)
    assert shown == [] and capsys.readouterr().out.startswith("MLP(  # Param:")
    _fake_ipython(monkeypatch, None)  # IPython imported, no shell running
    assert not nnx_viz._display.in_notebook()
    monkeypatch.delitem(sys.modules, "IPython")
    assert not nnx_viz._display.in_notebook()


def test_register_treescope_handlers_makes_treescope_render_nnx_objects(mlp) -> None:
    import treescope

    original = treescope.active_renderer.get()
    try:
        nnx_viz.register_treescope_handlers()
        nnx_viz.register_treescope_handlers()  # idempotent
        renderer = treescope.active_renderer.get()
        assert len(renderer.handlers) == len(original.handlers) + 1
        assert treescope.render_to_text(mlp).startswith("MLP(  # Param: 325 (1.3 KB)")
    finally:
        treescope.active_renderer.set_globally(original)
