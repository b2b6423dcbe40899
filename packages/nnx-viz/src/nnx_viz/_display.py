"""``display``: interactive HTML inside a notebook kernel, text everywhere else."""

from __future__ import annotations

import importlib
import sys
import typing as tp

from nnx_viz._handlers import ArrayMode, check_array_mode
from nnx_viz._html import render_html
from nnx_viz._text import render_text

__all__ = ["display", "in_notebook"]


def in_notebook() -> bool:
    """True inside a running IPython kernel (Jupyter, Colab, VS Code notebooks), which
    can show HTML; False in a terminal IPython, a script or a test.

    IPython is only consulted when something already imported it.

    Example::

        >>> in_notebook()
        False
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def display(*objects: tp.Any, arrays: ArrayMode = "summary") -> None:
    """Show each object: interactive treescope HTML in a notebook, readable text on
    stdout otherwise.

    Works for Modules, Variables, States, GraphDefs, Rngs, Optimizers (any
    ``nnx.Pytree``) and plain pytrees (lists, dicts, tuples) holding them. Each graph
    node carries a size comment per Variable type (``# Param: 1,234 (4.9 KB)``); a
    shared Variable or Module is drawn once and its later occurrences point at the
    first one's path; arrays are summarised.

    Args:
        *objects: what to show, one rendering each.
        arrays: ``"summary"`` (default) or ``"visualize"`` (draw arrays as images;
            notebooks only, text falls back to summaries).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.count = nnx.BatchStat(jnp.array(0, dtype=jnp.int32))
        >>> display(Counter())
        Counter(  # BatchStat: 1 (4 B)
          count=BatchStat(value=<jax.Array(0, dtype=int32)>),
        )
    """
    check_array_mode(arrays)
    if in_notebook():
        ipython_display = importlib.import_module("IPython.display")
        for obj in objects:
            html = render_html(obj, arrays=arrays, compressed=True)
            shown = ipython_display.HTML(html)
            # The text rendering rides along as the text/plain fallback (consoles,
            # notebook-to-text conversion) instead of "<...HTML object>".
            bundle = {"text/html": html, "text/plain": render_text(obj)}
            shown._repr_mimebundle_ = lambda include=None, exclude=None, b=bundle: b
            ipython_display.display(shown)
        return
    for obj in objects:
        print(render_text(obj, arrays=arrays))
