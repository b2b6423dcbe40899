"""nnx-viz: see nnx objects. ``display`` shows Modules, Variables, States, GraphDefs,
Rngs and Optimizers as interactive treescope HTML in a notebook and as text in a
terminal; ``save_html`` writes a standalone page; ``tabulate``/``summary`` list the
submodules a call runs with their shapes and sizes.

treescope is imported lazily, on the first rendering.

Example::

    >>> import jax.numpy as jnp, nnx_graph as nnx, nnx_viz
    >>> class Block(nnx.Module):
    ...     def __init__(self):
    ...         self.kernel = nnx.Param(jnp.zeros((256, 4)))
    >>> nnx_viz.display(Block())
    Block(  # Param: 1,024 (4.1 KB)
      kernel=Param(value=<jax.Array float32(256, 4) ≈0.0 ±0.0 [≥0.0, ≤0.0] zero:1_024>),
    )
"""

from nnx_viz.__about__ import __version__
from nnx_viz._display import display
from nnx_viz._handlers import register_treescope_handlers
from nnx_viz._html import render_html, save_html
from nnx_viz._tabulate import CallInfo, filter_rng_streams, summary, tabulate
from nnx_viz._text import render_text

__all__ = [
    "__version__",
    # showing objects
    "display",
    "render_text",
    "render_html",
    "save_html",
    "register_treescope_handlers",
    # tables
    "tabulate",
    "summary",
    "CallInfo",
    "filter_rng_streams",
]
