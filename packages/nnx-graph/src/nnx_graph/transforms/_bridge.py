"""The state-threading plumbing every transform is built on, written once.

A transformed call goes through four steps:

1. ``extract``: find the graph nodes (Modules, Variables, containers) in the call's
   arguments and flatten them *together* (so references shared between arguments
   stay shared) into a GraphDef and an ordered list of leaves.
2. ``Bridge.enter`` (inside the JAX transform): rebuild fresh objects from the
   GraphDef and the traced leaf values, and put them back into the arguments.
3. ``Bridge.exit`` (inside): flatten the objects again, together with any graph
   nodes in the output, and report what changed: only new leaf values when the
   structure is unchanged, otherwise the new structure as well.
4. ``Bridge.apply`` (outside): write the new values into the caller's Variables,
   or, after a structural change, update the caller's objects in place.

The caller's objects are touched only in step 4, after the transform returned, so
an exception inside leaves them exactly as they were.
"""

from __future__ import annotations

import itertools
import threading
import typing as tp

import jax

from nnx_graph._errors import format_path
from nnx_graph._graphdef import GraphDef, Slot, build, flatten_graph
from nnx_graph._pytree import Dict, List, Pytree
from nnx_graph._variables import Variable

__all__ = ["Bridge", "Exit", "extract", "is_node"]

NODE_TYPES = (Pytree, List, Dict, Variable)


def is_node(x: object) -> bool:
    return isinstance(x, NODE_TYPES)


class _NodeHole:
    """Placeholder for the k-th graph node inside an argument/output tree."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k

    def __repr__(self) -> str:
        return f"<node {self.k}>"


# Holes are pytree leaves with no children so they survive jax.tree round trips
# as static structure.
jax.tree_util.register_pytree_node(_NodeHole, lambda h: ((), h.k), lambda k, _: _NodeHole(k))


def split_tree(tree: tp.Any) -> tuple[tp.Any, list[tp.Any]]:
    """Replace graph nodes in ``tree`` by holes; return (tree_with_holes, nodes)."""
    if is_node(tree):
        return _NodeHole(0), [tree]
    leaves, treedef = jax.tree.flatten(tree, is_leaf=is_node)
    nodes: list[tp.Any] = []
    out = []
    for leaf in leaves:
        if is_node(leaf):
            out.append(_NodeHole(len(nodes)))
            nodes.append(leaf)
        else:
            out.append(leaf)
    if not nodes:
        return tree, nodes
    return jax.tree.unflatten(treedef, out), nodes


def fill_tree(tree: tp.Any, nodes: tp.Sequence[tp.Any]) -> tp.Any:
    if isinstance(tree, _NodeHole):
        return nodes[tree.k]
    if not nodes:
        return tree
    return jax.tree.map(lambda x: nodes[x.k] if isinstance(x, _NodeHole) else x, tree,
                        is_leaf=lambda x: isinstance(x, _NodeHole))


class Exit(tp.NamedTuple):
    """What ``Bridge.exit`` learned at trace time (static, Python-side)."""

    same_structure: bool
    graphdef: GraphDef  # structure of (input nodes, output nodes) after the call
    existing: dict[int, int]  # node index in ``graphdef`` -> input node index
    out_tree: tp.Any  # the output with graph nodes replaced by holes
    num_out_nodes: int


_TOKENS = itertools.count()


class Bridge:
    """Carries the graph nodes of one call across a JAX transform boundary."""

    __slots__ = ("graphdef", "leaves", "nodes", "roots", "paths_cache", "_inner_index",
                 "_inner_keepalive",
                 "_inner_leaves", "exit_info", "lock")

    def __init__(self, roots: tp.Sequence[tp.Any]) -> None:
        self.roots = tuple(roots)
        flat = flatten_graph((self.roots, ()))
        self.graphdef = flat.graphdef
        self.leaves = flat.leaves
        self.nodes = flat.nodes
        self.paths_cache: tuple[tuple[tp.Any, ...], ...] | None = None
        self._inner_index: dict[int, int] = {}
        self._inner_leaves: list[tp.Any] = []
        self._inner_keepalive: list[tp.Any] = []
        self.exit_info: Exit | None = None
        self.lock = threading.Lock()

    # ------------------------------------------------------------- outside
    def values(self) -> list[tp.Any]:
        return [leaf._raw_value for leaf in self.leaves]

    @property
    def paths(self) -> tuple[tuple[tp.Any, ...], ...]:
        """Leaf paths relative to the call: ``(argument_index, *path)``."""
        if self.paths_cache is None:
            self.paths_cache = tuple(p[1:] for p in self.graphdef.leaf_paths)
        return self.paths_cache

    def describe_leaf(self, i: int, names: tp.Sequence[str] | None = None) -> str:
        path = self.paths[i]
        root = names[path[0]] if names and path[0] < len(names) else f"arg{path[0]}"
        return format_path(path[1:], root)

    # ------------------------------------------------------------- inside
    def enter(self, values: tp.Sequence[tp.Any]) -> tuple[tp.Any, ...]:
        """Build fresh objects holding ``values``; return the inner roots."""
        root, inner_nodes = build(self.graphdef, list(values))
        self._inner_index = {id(obj): i for i, obj in enumerate(inner_nodes)}
        self._inner_leaves = list(values)
        self._inner_keepalive = inner_nodes
        return tp.cast(tuple[tp.Any, ...], root[0])

    def exit(self, inner_roots: tuple[tp.Any, ...], out: tp.Any) -> tuple[tp.Any, list[tp.Any], Exit]:
        """Flatten inner objects and output nodes; returns (out_tree, leaf values, info)."""
        out_tree, out_nodes = split_tree(out)
        flat = flatten_graph((inner_roots, tuple(out_nodes)), check_leaks=False)
        values = [leaf._raw_value for leaf in flat.leaves]
        same = not out_nodes and flat.graphdef == self.graphdef
        existing: dict[int, int] = {}
        if not same:
            for j, obj in enumerate(flat.nodes):
                i = self._inner_index.get(id(obj))
                if i is not None:
                    existing[j] = i
        info = Exit(same, flat.graphdef, existing, out_tree, len(out_nodes))
        return out_tree, values, info

    def changed(self, values: tp.Sequence[tp.Any]) -> dict[int, tp.Any]:
        """Leaf values that differ (by identity) from the ones given to ``enter``."""
        return {i: v for i, (v, old) in enumerate(zip(values, self._inner_leaves)) if v is not old}

    # ------------------------------------------------------------- outside again
    def apply_changes(self, changes: tp.Mapping[int, tp.Any]) -> None:
        leaves = self.leaves
        for i, value in changes.items():
            leaves[i]._raw_value = value

    def apply_structure(self, info: Exit, values: tp.Sequence[tp.Any], out_tree: tp.Any) -> tp.Any:
        """Carry a structural change (or output nodes) back; returns the output."""
        existing = {j: self.nodes[i] for j, i in info.existing.items()}
        root, _ = build(info.graphdef, list(values), existing=existing)
        out_nodes = root[1]
        return fill_tree(out_tree, out_nodes)


def extract(args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
            ) -> tuple[tp.Any, tp.Any, list[tp.Any]]:
    """Split call arguments into (args_tree, kwargs_tree) with holes, and the nodes."""
    tree, nodes = split_tree((args, kwargs))
    args_tree, kwargs_tree = tree
    return args_tree, kwargs_tree, nodes


def leaf_variable(leaf: tp.Any) -> Variable[tp.Any] | None:
    return leaf if isinstance(leaf, Variable) else None


def is_slot(leaf: tp.Any) -> bool:
    return isinstance(leaf, Slot)
