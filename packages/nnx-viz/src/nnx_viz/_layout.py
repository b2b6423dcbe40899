"""How far a rendered tree starts unfolded (a treescope "expansion strategy").

Text and HTML start from the same layout, so a notebook first shows what a terminal
prints: every node that holds state unfolded down to its Variables, each Variable on
one line with its array folded to a summary. In HTML any node can then be folded or
unfolded with a click.
"""

from __future__ import annotations

import typing as tp

from nnx_viz._handlers import COMMENT_MARK

if tp.TYPE_CHECKING:
    from treescope import rendering_parts

__all__ = ["LINE_WIDTH", "expand_state_holders"]

LINE_WIDTH = 100


def expand_state_holders(tree: rendering_parts.RenderableTreePart) -> None:
    """Unfold every node needed to show the size and shared-reference comments (a
    folded node hides them), then whatever is wider than a line. Arrays stay folded:
    their nodes are marked folded for good when they are built."""
    from treescope import layout_algorithms

    layout_algorithms.expand_to_layout_marks(tree, [COMMENT_MARK], collapse_weak_others=False)
    layout_algorithms.expand_for_balanced_layout(tree, max_height=None, target_width=LINE_WIDTH)
