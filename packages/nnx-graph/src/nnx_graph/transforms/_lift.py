"""Run a function that takes graph nodes under an arbitrary JAX transform.

``Lifted`` finds the graph nodes in a call's arguments, builds the ``Bridge`` for
them, and offers the pure function ``(values, dynamic_leaves) -> outputs`` that JAX
transforms see.  Transforms differ only in how they call that pure function and
which JAX transform wraps it; reading, writing back and structural updates are
the bridge's job.
"""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph._errors import GraphStructureError
from nnx_graph.transforms._bridge import Bridge, Exit, fill_tree, is_node, split_tree

__all__ = ["Lifted", "positions_of_nodes"]


class Lifted:
    """The graph nodes of one call plus the rest of its arguments as JAX leaves."""

    def __init__(self, name: str, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]) -> None:
        self.name = name
        tree, nodes = split_tree((args, kwargs))
        self.dyn, self.treedef = jax.tree.flatten(tree)
        self.nodes = nodes
        self.bridge = Bridge(nodes)
        self.exits: list[Exit] = []
        self.changed_indices: list[tuple[int, ...]] = []

    def values(self) -> list[tp.Any]:
        return self.bridge.values()

    def call(self, f: tp.Callable[..., tp.Any], values: tp.Sequence[tp.Any],
             dyn: tp.Sequence[tp.Any]) -> tuple[tp.Any, tuple[tp.Any, ...], tuple[tp.Any, ...]]:
        """Inside the transform: run ``f``; return ``(out, inner_roots, out_nodes)``."""
        roots = self.bridge.enter(list(values))
        args, kwargs = fill_tree(jax.tree.unflatten(self.treedef, list(dyn)), roots)
        out = f(*args, **kwargs)
        return out, roots, ()

    def finish(self, roots: tuple[tp.Any, ...], out: tp.Any, *, allow_structure: bool,
               full: bool = False) -> tuple[tp.Any, tp.Any]:
        """Inside: flatten after the call. Returns ``(out_tree, updates)`` where updates
        is ``{leaf_index: value}`` (or the full value list when ``full`` or the
        structure changed)."""
        out_tree, new_values, info = self.bridge.exit(roots, out)
        if not info.same_structure and not allow_structure:
            raise GraphStructureError(
                f"nnx.{self.name}: the function changed the structure of its graph-node "
                "arguments or returned new Modules/Variables, which this transform cannot "
                "carry out (its outputs must have a fixed structure).\nExpected: only "
                "Variable values to change.\nFix: create or restructure objects outside "
                f"nnx.{self.name} (or inside nnx.jit), e.g. initialise attributes in "
                "__init__ instead of on first call."
            )
        self.exits.append(info)
        if full or not info.same_structure:
            return out_tree, list(new_values)
        changed = self.bridge.changed(new_values)
        self.changed_indices.append(tuple(changed))
        return out_tree, changed

    def apply(self, out_tree: tp.Any, updates: tp.Any) -> tp.Any:
        """Outside: write updates back to the caller's objects; return the output."""
        info = self.exits[-1]
        if info.same_structure:
            if isinstance(updates, dict):
                self.bridge.apply_changes(updates)
            else:
                self.bridge.apply_changes(dict(enumerate(updates)))
            return out_tree
        return self.bridge.apply_structure(info, updates, out_tree)


def positions_of_nodes(args: tp.Sequence[tp.Any]) -> list[int]:
    """For each graph node found (in ``split_tree`` order) in ``args``, the index of
    the argument holding it."""
    positions: list[int] = []
    for i, a in enumerate(args):
        _, nodes = split_tree(a)
        positions.extend([i] * len(nodes))
    return positions


def leaf_arg_positions(lifted: Lifted, args: tp.Sequence[tp.Any]) -> list[int]:
    """For every graph leaf, the argument position its node came from."""
    node_pos = positions_of_nodes(args)
    return [node_pos[p[0]] if p[0] < len(node_pos) else -1 for p in lifted.bridge.paths]


def is_graph_arg(x: tp.Any) -> bool:
    return is_node(x)
