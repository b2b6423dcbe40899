"""Plain-text rendering (for terminals, scripts, logs and tests)."""

from __future__ import annotations

import typing as tp

from nnx_viz._handlers import ArrayMode, rendering_scope
from nnx_viz._layout import expand_state_holders

__all__ = ["render_text"]


def render_text(obj: tp.Any, *, arrays: ArrayMode = "summary") -> str:
    """Render ``obj`` (a Module, Variable, State, GraphDef, Rngs, Optimizer or any
    pytree holding them) as indented text.

    Every graph node shows a size comment per Variable type; a Variable or node
    reached a second time is shown as a reference to the path of its first occurrence;
    arrays are summarised (shape, dtype, statistics). Text never visualises arrays,
    so ``arrays="visualize"`` renders like ``"summary"``.

    Args:
        obj: what to render.
        arrays: ``"summary"`` (default) or ``"visualize"``.

    Returns:
        The rendering, lines of at most about 100 characters (deeply nested or long
        values may exceed it).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Linear(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones((2, 3)))
        ...         self.b = nnx.Param(jnp.zeros(3))
        >>> print(render_text(Linear()))
        Linear(  # Param: 9 (36 B)
          b=Param(value=<jax.Array([0., 0., 0.], dtype=float32)>),
          w=Param(value=<jax.Array float32(2, 3) ≈1.0 ±0.0 [≥1.0, ≤1.0] nonzero:6>),
        )
    """
    import treescope

    # Visualisations are HTML; text always uses summaries.
    with (
        rendering_scope("summary" if arrays == "visualize" else arrays),
        treescope.active_expansion_strategy.set_scoped(expand_state_holders),
    ):
        return treescope.render_to_text(obj)
