"""The state-threading plumbing every transform is built on, written once.

A transformed call goes through four steps:

1. ``split_tree`` and ``Bridge(roots)``: find the graph nodes (Modules,
   Variables, containers) in the call's arguments and flatten them *together* (so
   references shared between arguments stay shared) into a GraphDef and an ordered
   list of leaves.
2. ``Bridge.enter`` (inside the JAX transform): rebuild fresh objects from the
   GraphDef and the traced leaf values, and put them back into the arguments.
3. ``Bridge.exit`` (inside): flatten the objects again, together with any graph
   nodes in the output, and report what changed: only new leaf values when the
   structure is unchanged, otherwise the new structure as well.
4. ``Bridge.apply_*`` (outside): write the new values into the caller's Variables,
   or, after a structural change, update the caller's objects in place.

The caller's objects are touched only in step 4, after the transform returned, so
an exception inside leaves them exactly as they were.
"""

from __future__ import annotations

import inspect
import threading
import typing as tp

import jax

from nnx_graph._errors import TraceLeakError, format_path
from nnx_graph._graphdef import CONTAINER, LEAF, NODE, VAR, GraphDef, build, flatten_graph
from nnx_graph._pytree import Dict, List, Pytree
from nnx_graph._variables import Variable, _leaked_tracer

__all__ = [
    "Bridge",
    "Exit",
    "arg_names",
    "fill_tree",
    "is_hole",
    "is_node",
    "split_tree",
    "tree_names",
]

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


# Holes are pytree nodes with no children so they survive jax.tree round trips
# as static structure.
jax.tree_util.register_pytree_node(_NodeHole, lambda h: ((), h.k), lambda k, _: _NodeHole(k))


def is_hole(x: object) -> bool:
    return isinstance(x, _NodeHole)


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
    """Put ``nodes`` back into the holes of ``tree``."""
    if isinstance(tree, _NodeHole):
        return nodes[tree.k]
    if not nodes:
        return tree
    return jax.tree.map(
        lambda x: nodes[x.k] if isinstance(x, _NodeHole) else x, tree, is_leaf=is_hole
    )


def holes_of(tree: tp.Any) -> list[int]:
    """The node indices of the holes in ``tree``, in flattening order."""
    return [h.k for h in jax.tree.leaves(tree, is_leaf=is_hole) if isinstance(h, _NodeHole)]


# ------------------------------------------------------------------ names for errors
def arg_names(fun: tp.Any) -> list[str]:
    """Names of ``fun``'s positional parameters (for error messages); ``[]`` when
    there is no signature."""
    try:
        parameters = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def tree_names(args_kwargs_tree: tp.Any, names: tp.Sequence[str]) -> tuple[list[str], list[str]]:
    """Readable names for the holes and for the other leaves of an
    ``(args, kwargs)`` tree: ``(hole_names, leaf_names)``, e.g. ``model`` or
    ``batch['x']``."""
    flat, _ = jax.tree_util.tree_flatten_with_path(args_kwargs_tree, is_leaf=is_hole)
    hole_names: dict[int, str] = {}
    leaf_names: list[str] = []
    for path, leaf in flat:
        which, key, *rest = path
        if getattr(which, "idx", 0) == 0:  # positional argument
            i = key.idx
            root = names[i] if i < len(names) else f"args[{i}]"
        else:
            root = str(key.key)
        name = root + jax.tree_util.keystr(tuple(rest))
        if isinstance(leaf, _NodeHole):
            hole_names[leaf.k] = name
        else:
            leaf_names.append(name)
    return [hole_names.get(k, f"node{k}") for k in range(len(hole_names))], leaf_names


def leak_error(where: str, description: str, leaf: tp.Any) -> TraceLeakError:
    kind = type(leaf).__name__ if isinstance(leaf, Variable) else "array attribute"
    return TraceLeakError(
        f"{where}: {description} ({kind}) holds a JAX tracer from a transform that has "
        "finished: a traced value was stored on an object that was not passed into that "
        "transform (for example a global Module assigned to inside a jitted function)."
        "\nExpected: a concrete array.\nFix: pass the object as an argument of the "
        "transformed function so its updates are carried out, or return the value and "
        "assign it outside."
    )


# ------------------------------------------------------------------ the bridge
class Exit(tp.NamedTuple):
    """What ``Bridge.exit`` learned at trace time (static, Python-side)."""

    same_structure: bool
    graphdef: GraphDef  # structure of (input nodes, output nodes) after the call
    existing: dict[int, int]  # node index in ``graphdef`` -> input node index
    out_tree: tp.Any  # the output with graph nodes replaced by holes
    num_out_nodes: int
    # after a structural change: for every leaf of ``graphdef``, the input leaf it
    # continues (same Variable, or same attribute slot), -1 for new leaves
    origins: tuple[int, ...] | None


class Bridge:
    """Carries the graph nodes of one call across a JAX transform boundary.

    ``Bridge(roots)`` flattens the caller's objects. ``Bridge.detached(graphdef)``
    knows only the structure (all a compiled trace needs), so a cache holding it
    keeps no caller object alive.
    """

    __slots__ = (
        "graphdef",
        "leaves",
        "nodes",
        "roots",
        "paths_cache",
        "_inner_index",
        "_inner_keepalive",
        "_inner_leaves",
        "_leaf_keys",
        "last_leaves",
        "lock",
    )

    def __init__(
        self,
        roots: tp.Sequence[tp.Any],
        *,
        where: str = "nnx transform",
        root_names: tp.Callable[[], tp.Sequence[str]] | None = None,
    ) -> None:
        self.roots = tuple(roots)
        flat = flatten_graph((self.roots, ()), check_leaks=False)
        self._setup(flat.graphdef, flat.leaves, flat.nodes)
        self.check_leaks(where, root_names)

    @classmethod
    def detached(cls, graphdef: GraphDef, leaves: tp.Sequence[tp.Any] = ()) -> Bridge:
        """A bridge for ``graphdef`` holding no caller objects (optionally their
        leaves, to read values and name them in errors)."""
        bridge = cls.__new__(cls)
        bridge.roots = ()
        bridge._setup(graphdef, list(leaves), [])
        return bridge

    def _setup(self, graphdef: GraphDef, leaves: list[tp.Any], nodes: list[tp.Any]) -> None:
        self.graphdef = graphdef
        self.leaves = leaves
        self.nodes = nodes
        self.paths_cache: tuple[tuple[tp.Any, ...], ...] | None = None
        self._inner_index: dict[int, int] = {}
        self._inner_leaves: list[tp.Any] = []
        self._inner_keepalive: list[tp.Any] = []
        self._leaf_keys: list[tp.Any] | None = None
        self.last_leaves: list[tp.Any] = []
        self.lock = threading.Lock()

    # ------------------------------------------------------------- outside
    def values(self) -> list[tp.Any]:
        return [leaf._raw_value for leaf in self.leaves]

    @property
    def paths(self) -> tuple[tuple[tp.Any, ...], ...]:
        """Leaf paths relative to the call: ``(root_index, *path)``."""
        if self.paths_cache is None:
            self.paths_cache = tuple(p[1:] for p in self.graphdef.leaf_paths)
        return self.paths_cache

    @property
    def leaf_keys(self) -> list[tp.Any]:
        """Every leaf's identity in terms of the GraphDef's node indices:
        ``("var", node_index)`` or ``("slot", owner_index, attribute, sub_path)``."""
        if self._leaf_keys is None:
            self._leaf_keys = _graphdef_leaf_keys(self.graphdef)
        return self._leaf_keys

    def describe_leaf(self, i: int, root_names: tp.Sequence[str] | None = None) -> str:
        """``model.blocks[0].w``-style name of leaf ``i``; ``root_names`` names the
        roots (the graph nodes found in the arguments, in order)."""
        path = self.paths[i]
        k = path[0]
        root = root_names[k] if root_names and k < len(root_names) else f"arg{k}"
        return format_path(path[1:], root)

    def check_leaks(
        self, where: str, root_names: tp.Callable[[], tp.Sequence[str]] | None = None
    ) -> None:
        """Raise ``TraceLeakError`` naming the first leaf holding a finished tracer."""
        tracer = jax.core.Tracer
        for i, leaf in enumerate(self.leaves):
            value = leaf._raw_value
            if isinstance(value, tracer) and _leaked_tracer(value):
                names = root_names() if root_names is not None else None
                raise leak_error(where, self.describe_leaf(i, names), leaf)

    # ------------------------------------------------------------- inside
    def enter(self, values: tp.Sequence[tp.Any]) -> tuple[tp.Any, ...]:
        """Build fresh objects holding ``values``; return the inner roots."""
        root, inner_nodes = build(self.graphdef, list(values))
        self._inner_index = {id(obj): i for i, obj in enumerate(inner_nodes)}
        self._inner_leaves = list(values)
        self._inner_keepalive = inner_nodes
        return tp.cast(tuple[tp.Any, ...], root[0])

    def inner_variables(self) -> list[tp.Any]:
        """The objects holding each input leaf inside (Variables; None for array
        attributes), valid between ``enter`` and ``exit``."""
        nodes = self._inner_keepalive
        return [nodes[key[1]] if key[0] == "var" else None for key in self.leaf_keys]

    def exit(
        self, inner_roots: tuple[tp.Any, ...], out: tp.Any
    ) -> tuple[tp.Any, list[tp.Any], Exit]:
        """Flatten inner objects and output nodes; returns (out_tree, leaf values, info).
        The leaf objects stay readable as ``last_leaves`` until the next ``exit``."""
        out_tree, out_nodes = split_tree(out)
        flat = flatten_graph((inner_roots, tuple(out_nodes)), check_leaks=False)
        values = [leaf._raw_value for leaf in flat.leaves]
        same = not out_nodes and flat.graphdef == self.graphdef
        existing: dict[int, int] = {}
        origins = None
        if not same:
            for j, obj in enumerate(flat.nodes):
                i = self._inner_index.get(id(obj))
                if i is not None:
                    existing[j] = i
            keys = {key: i for i, key in enumerate(self.leaf_keys)}
            inner = self._inner_index
            origins = tuple(keys.get(_leaf_key(leaf, inner), -1) for leaf in flat.leaves)
        self.last_leaves = flat.leaves
        self._inner_index = {}
        self._inner_keepalive = []
        info = Exit(same, flat.graphdef, existing, out_tree, len(out_nodes), origins)
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


def _graphdef_leaf_keys(graphdef: GraphDef) -> list[tp.Any]:
    """The ``_leaf_key`` of every leaf of ``graphdef``, read from the GraphDef alone."""
    keys: list[tp.Any] = []

    def visit(
        record: tuple[tp.Any, ...], owner: int, attribute: tp.Any, sub: tuple[tp.Any, ...]
    ) -> None:
        tag = record[0]
        if tag == VAR:
            keys.append(("var", record[2]))
        elif tag == LEAF:
            keys.append(("slot", owner, attribute, sub))
        elif tag == NODE:
            for key, child in record[4]:
                visit(child, record[2], key, ())
        elif tag == CONTAINER:
            for key, child in zip(record[2], record[3]):
                visit(child, owner, attribute, (*sub, key))

    visit(graphdef._record, -1, None, ())
    return keys


def _leaf_key(leaf: tp.Any, index_of: tp.Mapping[int, int]) -> tp.Any:
    """Identity of an inner leaf relative to the input node indices: the Variable's
    own index, or the (owner index, attribute, sub-path) of an array attribute."""
    if isinstance(leaf, Variable):
        return ("var", index_of.get(id(leaf), -1 - id(leaf)))
    owner = index_of.get(id(leaf.owner))
    if owner is None:
        return ("new", id(leaf))
    return ("slot", owner, leaf.key, leaf.subpath)
