"""The state-threading plumbing every transform is built on, written once.

A transformed call goes through four steps:

1. ``split_tree`` and ``Bridge(roots)``: find the graph nodes (Modules,
   Variables, containers) in the call's arguments and flatten them *together* (so
   references shared between arguments stay shared) into a GraphDef and an ordered
   list of leaves.
2. ``Bridge.enter(values) -> Trace`` (inside the JAX transform): rebuild fresh
   objects from the GraphDef and the traced leaf values. The :class:`Trace` holds
   everything about this one call; the bridge itself is never modified, so one
   (cached) bridge serves concurrent traces without a lock.
3. ``Bridge.exit(trace, out) -> Exit`` (inside): flatten the objects again,
   together with any graph nodes in the output, and report what changed as an
   :class:`Outcome` (static): only new leaf values when the structure is
   unchanged, otherwise the new structure as well. ``Exit.updates()`` packs the
   values and the outcome into one pytree (:class:`Updates`) that the transform
   returns, so the outcome reaches the outside as output structure.
4. ``Bridge.write_back(updates, out_tree)`` (outside): write the new values into
   the caller's Variables, or, after a structural change, update the caller's
   objects in place.

The caller's objects are touched only in step 4, after the transform returned, so
an exception inside leaves them exactly as they were.
"""

from __future__ import annotations

import inspect
import typing as tp

import jax

from nnx_graph._errors import TraceLeakError, format_path
from nnx_graph._graphdef import LEAF, GraphDef, VariableDef, build, flatten_graph, walk
from nnx_graph._hijax import lower_boxes
from nnx_graph._pytree import Dict, List, Pytree
from nnx_graph._variables import Variable, _leaked_tracer
from nnx_graph.transforms._modes import Mode, check_inputs, check_outputs

__all__ = [
    "Bridge",
    "Exit",
    "Outcome",
    "Static",
    "Structure",
    "Trace",
    "Updates",
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


# ------------------------------------------------------------------ records
class Structure(tp.NamedTuple):
    """A structural change seen by ``Bridge.exit`` (static, hashable: it travels out
    of JAX transforms as pytree aux data)."""

    graphdef: GraphDef[tp.Any]  # structure of (input nodes, output nodes) after the call
    existing: tuple[tuple[int, int], ...]  # (node index in ``graphdef``, input node index)
    num_out_nodes: int
    # for every leaf of ``graphdef``, the input leaf it continues (same Variable, or
    # same attribute slot); -1 for new leaves
    origins: tuple[int, ...]


class Outcome(tp.NamedTuple):
    """What a traced call did to its graph nodes, in static form.

    * ``structure is None, changed is None``: same structure, values hold every leaf;
    * ``structure is None``: same structure, values hold the ``changed`` leaves;
    * otherwise the structure changed and values hold every leaf of
      ``structure.graphdef`` (inputs then output nodes)."""

    changed: tuple[int, ...] | None
    structure: Structure | None


class Updates:
    """New leaf values plus their :class:`Outcome`, as one pytree: the values are
    its children and the outcome its aux data, so the outcome leaves any JAX
    transform as part of the output structure (no side channel)."""

    __slots__ = ("outcome", "values")

    def __init__(self, outcome: Outcome, values: tp.Sequence[tp.Any]) -> None:
        self.outcome = outcome
        self.values = values

    def __repr__(self) -> str:
        return f"Updates({self.outcome}, {len(self.values)} values)"


jax.tree_util.register_pytree_node(
    Updates, lambda u: (u.values, u.outcome), lambda outcome, values: Updates(outcome, values)
)


class Static:
    """A pytree node without children carrying ``value`` as aux data: a static
    result (hashable) returned through a JAX transform next to traced values."""

    __slots__ = ("value",)

    def __init__(self, value: tp.Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Static({self.value!r})"


jax.tree_util.register_pytree_node(Static, lambda s: ((), s.value), lambda v, _: Static(v))


class Trace:
    """The scratch state of one traced call, from ``Bridge.enter`` to ``Bridge.exit``.

    It lives only as long as the call: cached objects (bridges, compiled
    functions) never hold one, so concurrent traces share nothing."""

    __slots__ = ("roots", "values", "nodes", "index")

    def __init__(self, roots: tuple[tp.Any, ...], values: list[tp.Any], nodes: list[tp.Any]):
        self.roots = roots  # the fresh objects standing for the caller's roots
        self.values = values  # the leaf values given to ``enter``
        self.nodes = nodes  # the fresh objects by GraphDef node index
        self.index = {id(obj): i for i, obj in enumerate(nodes)}


class Exit(tp.NamedTuple):
    """What ``Bridge.exit`` returns: the output with graph nodes replaced by holes,
    every leaf value and leaf object after the call (inputs, then output nodes), and
    the :class:`Outcome`."""

    out_tree: tp.Any
    values: list[tp.Any]
    leaves: list[tp.Any]
    outcome: Outcome

    @property
    def same_structure(self) -> bool:
        return self.outcome.structure is None

    def updates(self, *, changed_only: bool = True) -> Updates:
        """The values to carry out: only the changed ones (when the structure is the
        same and ``changed_only``), otherwise every leaf."""
        outcome = self.outcome
        if outcome.structure is not None:
            return Updates(outcome, self.values)
        if not changed_only:
            return Updates(Outcome(None, None), self.values)
        values = self.values
        return Updates(outcome, [values[i] for i in outcome.changed or ()])


# ------------------------------------------------------------------ the bridge
class Bridge:
    """Carries the graph nodes of one call across a JAX transform boundary.

    ``Bridge(roots)`` flattens the caller's objects. ``Bridge.detached(graphdef)``
    knows only the structure (all a compiled trace needs), so a cache holding it
    keeps no caller object alive. A bridge is never changed after construction
    (only lazily computed, deterministic views are filled in), so one bridge may
    serve any number of concurrent traces: per-call state lives in :class:`Trace`.
    """

    __slots__ = ("graphdef", "leaves", "nodes", "roots", "mode", "_paths", "_leaf_keys")

    def __init__(
        self,
        roots: tp.Sequence[tp.Any],
        *,
        where: str = "nnx transform",
        root_names: tp.Callable[[], tp.Sequence[str]] | None = None,
        mode: Mode | None = None,
        shared_inputs: bool = True,
    ) -> None:
        self.roots = tuple(roots)
        flat = flatten_graph((self.roots, ()), check_leaks=False)
        self._setup(flat.graphdef, flat.leaves, flat.nodes)
        self.mode = mode
        self.check_leaks(where, root_names)
        if mode is not None and (not mode.graph or not shared_inputs):
            # tree mode (or a transform that refuses shared inputs in its mode)
            names = root_names() if root_names is not None else ()
            check_inputs(
                mode, flat.graphdef, flat.nodes, names, shared=not mode.graph or not shared_inputs
            )

    @classmethod
    def detached(
        cls,
        graphdef: GraphDef[tp.Any],
        leaves: tp.Sequence[tp.Any] = (),
        mode: Mode | None = None,
    ) -> Bridge:
        """A bridge for ``graphdef`` holding no caller objects (optionally their
        leaves, to read values and name them in errors)."""
        bridge = cls.__new__(cls)
        bridge.roots = ()
        bridge.mode = mode
        bridge._setup(graphdef, list(leaves), [])
        return bridge

    def _setup(self, graphdef: GraphDef[tp.Any], leaves: list[tp.Any], nodes: list[tp.Any]) -> None:
        self.graphdef = graphdef
        self.leaves = leaves
        self.nodes = nodes
        self._paths: tuple[tuple[tp.Any, ...], ...] | None = None
        self._leaf_keys: dict[tp.Any, int] | None = None

    # ------------------------------------------------------------- outside
    def values(self) -> list[tp.Any]:
        return [leaf._raw_value for leaf in self.leaves]

    @property
    def paths(self) -> tuple[tuple[tp.Any, ...], ...]:
        """Leaf paths relative to the call: ``(root_index, *path)``."""
        if self._paths is None:
            self._paths = tuple(p[1:] for p in self.graphdef.leaf_paths)
        return self._paths

    @property
    def leaf_keys(self) -> dict[tp.Any, int]:
        """Every leaf's identity in terms of the GraphDef's node indices
        (``("var", node_index)`` or ``("slot", owner_index, attribute, sub_path)``),
        mapped to the leaf's index."""
        if self._leaf_keys is None:
            keys = _graphdef_leaf_keys(self.graphdef)
            self._leaf_keys = {key: i for i, key in enumerate(keys)}
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
    def enter(self, values: tp.Sequence[tp.Any]) -> Trace:
        """Build fresh objects holding ``values``; the trace's ``roots`` stand for
        the caller's roots."""
        values = list(values)
        root, inner_nodes = build(self.graphdef, values)
        return Trace(tp.cast(tuple[tp.Any, ...], root[0]), values, inner_nodes)

    def inner_variables(self, trace: Trace) -> list[tp.Any]:
        """The objects holding each input leaf inside ``trace`` (Variables; None for
        array attributes)."""
        nodes = trace.nodes
        out: list[tp.Any] = [None] * len(self.leaf_keys)
        for key, i in self.leaf_keys.items():
            if key[0] == "var":
                out[i] = nodes[key[1]]
        return out

    def exit(self, trace: Trace, out: tp.Any) -> Exit:
        """Flatten the trace's objects and the graph nodes in ``out``."""
        out_tree, out_nodes = split_tree(out)
        if self.mode is not None and out_nodes:
            self._check_outputs(trace, out_nodes)
        flat = flatten_graph((trace.roots, tuple(out_nodes)), check_leaks=False)
        values = [leaf._raw_value for leaf in flat.leaves]
        if (
            not out_nodes
            and flat.graphdef == self.graphdef
            # default mode: objects that moved (m.a, m.b = m.b, m.a on two Modules or
            # Variables of one type) keep their identity, a structural change; the
            # other modes write the values into the objects in place
            and (self.mode is not None or _same_objects(flat.nodes, trace.nodes))
        ):
            given = trace.values
            changed = tuple(i for i, v in enumerate(values) if v is not given[i])
            return Exit(out_tree, values, flat.leaves, Outcome(changed, None))
        inner = trace.index
        existing = tuple(
            (j, inner[id(obj)]) for j, obj in enumerate(flat.nodes) if id(obj) in inner
        )
        keys = self.leaf_keys
        origins = tuple(keys.get(_leaf_key(leaf, inner), -1) for leaf in flat.leaves)
        structure = Structure(flat.graphdef, existing, len(out_nodes), origins)
        values = lower_boxes(values)  # hijax Variables' boxes: their values
        return Exit(out_tree, values, flat.leaves, Outcome(None, structure))

    def _check_outputs(self, trace: Trace, out_nodes: tp.Sequence[tp.Any]) -> None:
        """Flax's output checks of a non-default mode (see ``_modes.py``)."""
        assert self.mode is not None
        keys = self.leaf_keys

        def describe(node_index: int) -> str:
            i = keys.get(("var", node_index))
            return self.describe_leaf(i) if i is not None else f"input node {node_index}"

        check_outputs(self.mode, out_nodes, trace.index, describe)

    # ------------------------------------------------------------- outside again
    def write_back(self, updates: Updates, out_tree: tp.Any = None) -> tp.Any:
        """The one write-back after a transform: put ``updates`` into the caller's
        objects (values only, or their new structure); returns the output with its
        graph nodes filled in."""
        outcome = updates.outcome
        structure = outcome.structure
        if structure is None:
            leaves = self.leaves
            indices = range(len(leaves)) if outcome.changed is None else outcome.changed
            for i, value in zip(indices, updates.values):
                leaves[i]._raw_value = value
            return out_tree
        existing = {j: self.nodes[i] for j, i in structure.existing}
        root, _ = build(structure.graphdef, list(updates.values), existing=existing)
        return fill_tree(out_tree, root[1])


def _same_objects(a: tp.Sequence[tp.Any], b: tp.Sequence[tp.Any]) -> bool:
    """Whether two node lists hold the same objects in the same order."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _graphdef_leaf_keys(graphdef: GraphDef[tp.Any]) -> list[tp.Any]:
    """The ``_leaf_key`` of every leaf of ``graphdef``, read from the GraphDef alone."""
    keys: list[tp.Any] = []
    for visit in walk(graphdef, paths=False):
        record = visit.record
        if isinstance(record, VariableDef):
            keys.append(("var", record.node_index))
        elif record.tag == LEAF:
            keys.append(("slot", visit.owner, visit.attr, visit.sub))
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
