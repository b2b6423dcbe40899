"""Interactive HTML rendering and standalone HTML pages."""

from __future__ import annotations

import html
import os
import pathlib
import typing as tp

from nnx_viz._handlers import ArrayMode, rendering_scope
from nnx_viz._layout import expand_state_holders

__all__ = ["render_html", "save_html"]

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nnx_viz">
<title>{title}</title>
<style>
  body {{ margin: 1.5em; background: #ffffff; color: #1f1f1f;
          font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }}
  h1 {{ font-size: 1.1em; font-weight: 600; margin: 0 0 0.8em 0; }}
</style>
</head>
<body>
<h1>{title}</h1>
<main class="nnx-viz-display">
{body}
</main>
</body>
</html>
"""


def render_html(obj: tp.Any, *, arrays: ArrayMode = "summary", compressed: bool = False) -> str:
    """Render ``obj`` as an interactive treescope HTML fragment (HTML plus the
    JavaScript that draws it; it needs a browser with JavaScript).

    Args:
        obj: a Module, Variable, State, GraphDef, Rngs, Optimizer or any pytree
            holding them.
        arrays: ``"summary"`` (default) folds arrays to a one-line summary that a
            click unfolds; ``"visualize"`` draws them as colour-mapped images.
        compressed: compress the payload (smaller, but decompressed asynchronously
            by the browser; keep False for files and headless browsers).

    Returns:
        The HTML fragment, ready to embed in a page or a notebook output.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> fragment = render_html(nnx.Param(jnp.ones(3)))
        >>> "treescope" in fragment and "Param" in fragment
        True
    """
    import treescope

    with (
        rendering_scope(arrays),
        treescope.active_expansion_strategy.set_scoped(expand_state_holders),
    ):
        return treescope.render_to_html(obj, compressed=compressed)


def save_html(
    obj: tp.Any,
    path: str | os.PathLike[str],
    *,
    arrays: ArrayMode = "summary",
    title: str | None = None,
) -> pathlib.Path:
    """Write a standalone HTML page showing ``obj`` that opens in any browser, with
    no notebook and no network access (everything is inlined, uncompressed).

    Args:
        obj: what to show (see :func:`render_html`).
        path: the file to write; its parent directory must exist.
        arrays: ``"summary"`` or ``"visualize"`` (see :func:`render_html`).
        title: page title; defaults to the object's type name.

    Returns:
        The path written, as a ``pathlib.Path``.

    Example::

        >>> import tempfile, pathlib, jax.numpy as jnp, nnx_graph as nnx
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "param.html"
        >>> save_html(nnx.Param(jnp.ones(3)), target).read_text().startswith("<!DOCTYPE html>")
        True
    """
    target = pathlib.Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"nnx_viz.save_html: cannot write {str(target)!r}: the directory "
            f"{str(target.parent)!r} does not exist. Fix: create it first "
            "(pathlib.Path(...).mkdir(parents=True)) or choose another path."
        )
    page = _PAGE.format(
        title=html.escape(title if title is not None else type(obj).__name__),
        body=render_html(obj, arrays=arrays, compressed=False),
    )
    target.write_text(page, encoding="utf-8")
    return target
