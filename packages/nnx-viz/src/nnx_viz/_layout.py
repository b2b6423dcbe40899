"""How far rendered trees start unfolded (treescope "expansion strategies")."""

from __future__ import annotations

import typing as tp

from nnx_viz._handlers import COMMENT_MARK

if tp.TYPE_CHECKING:
    from treescope import rendering_parts

__all__ = ["TEXT_WIDTH", "expand_for_html", "expand_for_text"]

TEXT_WIDTH = 80


def expand_for_text(tree: rendering_parts.RenderableTreePart) -> None:
    """Text cannot be clicked open: unfold every node needed to show the size and
    shared-reference comments, then anything wider than the line. Arrays stay folded
    to their summaries."""
    from treescope import layout_algorithms

    layout_algorithms.expand_to_layout_marks(tree, [COMMENT_MARK], collapse_weak_others=False)
    layout_algorithms.expand_for_balanced_layout(tree, max_height=None, target_width=TEXT_WIDTH)


def expand_for_html(tree: rendering_parts.RenderableTreePart) -> None:
    """Interactive HTML: unfold enough to show the structure; the rest opens on click."""
    from treescope import layout_algorithms

    layout_algorithms.expand_for_balanced_layout(tree, max_height=60, target_width=TEXT_WIDTH)
