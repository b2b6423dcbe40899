"""Treescope handlers for nnx objects, added to treescope's renderer at render time.

* one handler draws Modules/Pytrees, Variables, ``List``/``Dict``, ``State`` and
  ``GraphDef`` as constructor-style trees with stable per-type colours and, on every
  graph node and State, a size comment (``# Param: 1,234 (4.9 KB)``);
* a wrapper hook replaces the second and later occurrences of a shared Variable or
  graph node with a one-line reference to the path of the first (this also stops
  cycles);
* a wrapper hook keeps arrays folded to their one-line summary unless an array
  autovisualizer is active (``arrays="visualize"``).

treescope is imported inside functions only: importing nnx_viz stays cheap.
"""

from __future__ import annotations

import contextlib
import contextvars
import typing as tp
from collections.abc import Iterator, Mapping

import jax
import numpy as np

import nnx_graph
from nnx_graph.internal import shown_metadata
from nnx_viz._colors import type_color
from nnx_viz._sizes import format_sizes, variable_sizes
from nnx_viz._structure import Leaf, graphdef_structure

if tp.TYPE_CHECKING:
    from treescope import renderers, rendering_parts

__all__ = [
    "ArrayMode",
    "COMMENT_MARK",
    "check_array_mode",
    "nnx_renderer",
    "register_treescope_handlers",
    "rendering_scope",
]

ArrayMode = tp.Literal["summary", "visualize"]
_ARRAY_MODES: tuple[str, ...] = tp.get_args(ArrayMode)

COMMENT_MARK = "nnx_viz.comment"
"""Layout mark on size and shared-reference comments: text rendering unfolds every
node needed to show them (a folded node hides its children's comments)."""

_SHARED_COMMENT_COLOR = "#b35c00"

# id(object) -> (path of its first occurrence, the object). Holding the object keeps
# its id from being reused by a temporary during the render.
_first_paths: contextvars.ContextVar[dict[int, tuple[str | None, tp.Any]] | None] = (
    contextvars.ContextVar("nnx_viz_first_paths", default=None)
)

_GRAPH_NODE_TYPES = (nnx_graph.Pytree, nnx_graph.List, nnx_graph.Dict)


def check_array_mode(arrays: str) -> None:
    """Raise a ValueError naming the accepted values when ``arrays`` is not one."""
    if arrays not in _ARRAY_MODES:
        raise ValueError(
            f"nnx_viz: arrays={arrays!r} is not a known array mode. Expected one of "
            f"{', '.join(repr(m) for m in _ARRAY_MODES)}: 'summary' folds every array "
            "to a one-line summary, 'visualize' draws arrays as images (HTML only)."
        )


# ------------------------------------------------------------------ hooks
@contextlib.contextmanager
def _fresh_first_paths() -> Iterator[None]:
    token = _first_paths.set({})
    try:
        yield
    finally:
        _first_paths.reset(token)


def _describe_path(path: str | None) -> str:
    if path is None:
        return "an earlier occurrence"
    return path or "the root"


def _mark_shared_references(
    node: tp.Any, path: str | None, node_renderer: renderers.TreescopeSubtreeRenderer
) -> tp.Any:
    """Wrapper hook: the first occurrence of a Variable/graph node renders normally,
    later ones as ``Type(...)  # shared: same object as .first.path``."""
    if not isinstance(node, (nnx_graph.Variable, *_GRAPH_NODE_TYPES)):
        return NotImplemented
    seen = _first_paths.get()
    if seen is None:
        return NotImplemented
    first = seen.get(id(node))
    if first is None:
        seen[id(node)] = (path, node)
        return NotImplemented
    from treescope import rendering_parts as parts

    line = parts.build_one_line_tree_node(
        parts.siblings(parts.maybe_qualified_type_name(type(node)), "(...)"),
        path=path,
        background_color=type_color(type(node).__name__),
    )
    comment = parts.with_layout_mark(
        parts.custom_text_color(
            parts.text(f"  # shared: same object as {_describe_path(first[0])}"),
            _SHARED_COMMENT_COLOR,
        ),
        COMMENT_MARK,
    )
    return parts.RenderableAndLineAnnotations(
        renderable=line.renderable, annotations=parts.siblings(line.annotations, comment)
    )


def _summarise_arrays(
    node: tp.Any, path: str | None, node_renderer: renderers.TreescopeSubtreeRenderer
) -> tp.Any:
    """Wrapper hook: fold arrays to their summary (shape, dtype, statistics) so that
    no layout ever prints their values; a click in HTML still unfolds them."""
    if not isinstance(node, (jax.Array, np.ndarray)):
        return NotImplemented
    import treescope
    from treescope import rendering_parts as parts

    if treescope.active_autovisualizer.get() is not None:
        return NotImplemented
    rendering = node_renderer(node, path)
    for foldable in rendering.renderable.foldables_in_this_part():
        foldable.set_expand_state(parts.ExpandState.COLLAPSED)
    return rendering


# ------------------------------------------------------------------ handler
def _tree_node(
    *,
    type_: type,
    opening: str,
    closing: str,
    entries: list[tuple[str, tp.Any, str | None]],
    path: str | None,
    subtree_renderer: renderers.TreescopeSubtreeRenderer,
    color: str | None,
    comment: str,
) -> rendering_parts.Rendering:
    """``Type(<entries>)`` with one ``label + value`` per line when expanded."""
    from treescope import rendering_parts as parts

    children = []
    for i, (label, value, child_path) in enumerate(entries):
        if i < len(entries) - 1:
            comma = parts.siblings(",", parts.fold_condition(collapsed=parts.text(" ")))
        else:
            comma = parts.fold_condition(expanded=parts.text(","))
        children.append(
            parts.build_full_line_with_annotations(
                parts.siblings_with_annotations(label, subtree_renderer(value, path=child_path)),
                comma,
            )
        )
    annotation = None
    if comment:
        annotation = parts.with_layout_mark(
            parts.comment_color(parts.text(f"  # {comment}")), COMMENT_MARK
        )
    return parts.build_foldable_tree_node_from_children(
        prefix=parts.siblings(parts.maybe_qualified_type_name(type_), opening),
        children=children,
        suffix=closing,
        path=path,
        background_color=color,
        first_line_annotation=annotation,
    )


def _child_path(path: str | None, part: str) -> str | None:
    return None if path is None else path + part


def _shown_attribute(name: str, value: tp.Any) -> bool:
    """Every attribute in graph order, except bookkeeping: nnx's own ``_nnx_*`` and
    private (``_name``) attributes without state. Private attributes holding
    Variables or arrays stay visible, so that the size comments add up."""
    if name.startswith("_nnx_"):
        return False
    return not name.startswith("_") or nnx_graph.has_data(value)


def _attribute_entries(node: tp.Any, path: str | None) -> list[tuple[str, tp.Any, str | None]]:
    attributes = vars(node)
    return [
        (f"{name}=", attributes[name], _child_path(path, f".{name}"))
        for name in sorted(attributes)
        if _shown_attribute(name, attributes[name])
    ]


def _item_entries(
    mapping: Mapping[tp.Any, tp.Any], path: str | None
) -> list[tuple[str, tp.Any, str | None]]:
    return [
        (f"{key!r}: ", value, _child_path(path, f"[{key!r}]")) for key, value in mapping.items()
    ]


def _render_nnx_object(
    node: tp.Any, path: str | None, subtree_renderer: renderers.TreescopeSubtreeRenderer
) -> tp.Any:
    """Handler for every nnx_graph type; NotImplemented for anything else and for
    classes that define their own ``__treescope_repr__``."""
    if hasattr(type(node), "__treescope_repr__"):
        return NotImplemented

    def tree(
        opening: str,
        closing: str,
        entries: list[tuple[str, tp.Any, str | None]],
        *,
        colored: bool = True,
        sized: bool = True,
    ) -> rendering_parts.Rendering:
        return _tree_node(
            type_=type(node),
            opening=opening,
            closing=closing,
            entries=entries,
            path=path,
            subtree_renderer=subtree_renderer,
            color=type_color(type(node).__name__) if colored else None,
            comment=format_sizes(variable_sizes(node)) if sized else "",
        )

    if isinstance(node, nnx_graph.Variable):
        entries = (
            []
            if isinstance(node.raw_value, Leaf)
            else [("value=", node.raw_value, _child_path(path, ".value"))]
        )
        # hijax/ref/eager_sharding only when not at their defaults (as Flax shows them)
        metadata = shown_metadata(node)
        entries += [
            (f"{name}=", metadata[name], _child_path(path, f".{name}")) for name in sorted(metadata)
        ]
        return tree("(", ")", entries, sized=False)
    if isinstance(node, nnx_graph.List):  # (List/Dict are Pytrees holding items)
        entries = [("", item, _child_path(path, f"[{i}]")) for i, item in enumerate(node)]
        return tree("([", "])", entries)
    if isinstance(node, (nnx_graph.Dict, nnx_graph.State)):
        return tree("({", "})", _item_entries(node, path), colored=False)
    if isinstance(node, nnx_graph.Pytree):
        return tree("(", ")", _attribute_entries(node, path))
    if isinstance(node, nnx_graph.GraphDef):
        return tree("(", ")", [("", graphdef_structure(node), path)], colored=False, sized=False)
    if isinstance(node, Leaf):
        from treescope import rendering_parts as parts

        return parts.abbreviation_color(parts.text(repr(node)))
    return NotImplemented


# ------------------------------------------------------------------ renderers
def _has_nnx_handlers(renderer: renderers.TreescopeRenderer) -> bool:
    return _render_nnx_object in renderer.handlers


def nnx_renderer(base: renderers.TreescopeRenderer) -> renderers.TreescopeRenderer:
    """``base`` extended with the nnx handler and hooks (unchanged if it has them)."""
    if _has_nnx_handlers(base):
        return base
    return base.extended_with(
        handlers=[_render_nnx_object],
        wrapper_hooks=[_mark_shared_references, _summarise_arrays],
        context_builders=[_fresh_first_paths],
    )


@contextlib.contextmanager
def rendering_scope(arrays: ArrayMode = "summary") -> Iterator[None]:
    """Within the block, treescope renders nnx objects with the nnx handlers, and
    arrays as summaries (``"summary"``) or images (``"visualize"``)."""
    check_array_mode(arrays)
    import treescope

    autovisualizer = treescope.ArrayAutovisualizer() if arrays == "visualize" else None
    with (
        treescope.active_renderer.set_scoped(nnx_renderer(treescope.active_renderer.get())),
        treescope.active_autovisualizer.set_scoped(autovisualizer),
    ):
        yield


def register_treescope_handlers() -> None:
    """Make treescope itself draw nnx objects as :func:`nnx_viz.display` does (size
    comments, shared references, colours, folded arrays), e.g. after
    ``treescope.basic_interactive_setup()`` in a notebook; treescope's own layout and
    autovisualizer settings stay in charge. Idempotent.

    ``display``, ``render_text``, ``render_html`` and ``save_html`` do not need this:
    they add the handlers for the duration of each call.

    Example::

        >>> import treescope, jax.numpy as jnp, nnx_graph as nnx
        >>> register_treescope_handlers()
        >>> print(treescope.render_to_text(nnx.Param(jnp.zeros(2))))
        Param(value=<jax.Array([0., 0.], dtype=float32)>)
    """
    import treescope

    treescope.active_renderer.set_globally(nnx_renderer(treescope.active_renderer.get()))
