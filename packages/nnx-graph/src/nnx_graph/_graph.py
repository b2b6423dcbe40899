"""The graph API: split/merge/state/update/clone/pop and friends.

Everything here is built on the two primitives in ``_graphdef.py``: one traversal
(``flatten_graph``) and one builder (``build``).  States returned by ``split`` and
``state`` hold the object's own Variables (not copies), as in Flax NNX 0.12; use
``clone`` for an independent copy.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax

from nnx_graph import _epoch
from nnx_graph._errors import GraphStructureError
from nnx_graph._filters import Filter
from nnx_graph._filters import split_pairs as _split_pairs
from nnx_graph._graph_iter import (
    find_duplicates,
    iter_graph,
    pop,
    recursive_map,
    set_metadata,
)
from nnx_graph._graph_match import (
    alias,
    flat_lookup,
    match_leaves,
    mismatch_error,
    shape_error,
    static_overwrites,
)
from nnx_graph._graph_modes import check_tree, is_tree_mode
from nnx_graph._graph_registry import GRAPH_REGISTRY, PYTREE_REGISTRY
from nnx_graph._graph_state import GraphState
from nnx_graph._graphdef import (
    GraphDef,
    NodeDef,
    Slot,
    VariableDef,
    build,
    flatten_graph,
    walk,
)
from nnx_graph._jax_pytrees import register_jax_pytree
from nnx_graph._pytree import List, Pytree, is_graph_node
from nnx_graph._records import ARRAY_DEF
from nnx_graph._state import (
    FlatState,
    State,
    from_flat_state,
    map_state,
)
from nnx_graph._variable_meta import update_hijax
from nnx_graph._variables import Variable

__all__ = [
    "GraphState",
    "PureState",
    "clone",
    "find_duplicates",
    "flatten",
    "graphdef",
    "iter_graph",
    "map",
    "merge",
    "pop",
    "recursive_map",
    "set_metadata",
    "split",
    "state",
    "unflatten",
    "update",
    "variables",
]

A = tp.TypeVar("A")
Path = tuple[tp.Any, ...]
_MISSING = object()
PureState = State


def _pairs(node: tp.Any) -> tuple[GraphDef[tp.Any], list[tuple[Path, tp.Any]]]:
    flat = flatten_graph(node)
    paths = flat.graphdef.leaf_paths
    return flat.graphdef, [
        (p, v._raw_value if v.__class__ is Slot else v) for p, v in zip(paths, flat.leaves)
    ]


def _is_leaf_root(node: tp.Any) -> bool:
    """A plain leaf (array, scalar, string, ...) passed where a graph is expected:
    as in Flax, ``split``/``graphdef``/``merge``/``clone`` treat it as a one-leaf
    graph whose state is the leaf itself."""
    return not (
        is_graph_node(node)
        or isinstance(node, (tuple, list, dict, Variable))
        or node is None
        or type(node) in PYTREE_REGISTRY
        or register_jax_pytree(node)  # a JAX-only pytree: traversed, as in Flax
    )


_LEAF_GRAPHDEF: GraphDef[tp.Any] = GraphDef._create(ARRAY_DEF, 1, 0, ((),))


def _check_node(node: tp.Any, fn: str) -> None:
    if node is None and fn != "state":
        return
    if not (
        is_graph_node(node)
        or isinstance(node, (tuple, list, dict, Variable))
        or type(node) in PYTREE_REGISTRY
        or register_jax_pytree(node)
    ):
        raise TypeError(
            f"nnx.{fn} expected a graph node (a Module, Pytree, nnx.List/Dict, a Variable, "
            f"or a tuple/list/dict of them), found {type(node).__name__}: {node!r:.80}. "
            f"Fix: pass the Module itself."
        )


@tp.overload
def split(node: A, *, graph: bool | None = None) -> tuple[GraphDef[A], State]: ...
@tp.overload
def split(
    node: A, *filters: Filter, graph: bool | None = None
) -> tuple[GraphDef[A], *tuple[State, ...]]: ...
def split(node: tp.Any, *filters: Filter, graph: bool | None = None) -> tuple[tp.Any, ...]:
    """Split an object graph into its static :class:`GraphDef` and one
    :class:`State` per filter (default: one State with everything).

    Shared Variables and Modules appear once, at their first path. The first
    matching filter wins; every leaf must match some filter (end with ``...``).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2)); self.s = nnx.BatchStat(jnp.zeros(2))
        >>> graphdef, params, rest = nnx.split(M(), nnx.Param, ...)
        >>> list(params), list(rest)
        (['w'], ['s'])
    """
    if _is_leaf_root(node):
        if not filters:
            return _LEAF_GRAPHDEF, node
        groups = _split_pairs([((), node)], filters, exhaustive=False)
        return (_LEAF_GRAPHDEF, *(node if g else State() for g in groups))
    _check_node(node, "split")
    gdef, pairs = _pairs(node)
    if graph is not True and is_tree_mode(graph):
        check_tree(gdef, "split")
    if isinstance(node, Variable):  # a bare Variable is its own state, as in Flax
        if not filters:
            return gdef, node
        groups = _split_pairs(pairs, filters, exhaustive=False)
        return (gdef, *(node if g else State() for g in groups))
    if not filters:
        return gdef, from_flat_state(pairs)
    groups = _split_pairs(pairs, filters) if pairs else [[] for _ in filters]
    return (gdef, *(from_flat_state(g) for g in groups))


def merge(
    graphdef_or_graphstate: GraphDef[A] | GraphState[A],
    /,
    *states: tp.Any,
    copy: bool = False,
    recreate_variables: bool = True,
) -> A:
    """Rebuild an object graph from a GraphDef and States (the inverse of ``split``),
    or from the :class:`GraphState` values of :func:`unpack` alone.

    The States' Variables become the new object's Variables (``copy=True`` copies
    them). Every leaf the GraphDef needs must be present and no others. A list of
    leaves in leaf order (``nnx.flatten(..., with_paths=False)``) is accepted too.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> graphdef, state = nnx.split(M())
        >>> nnx.merge(graphdef, state).w.shape
        (2,)
        >>> nnx.merge(nnx.unpack(M())).w.shape
        (2,)
    """
    if isinstance(graphdef_or_graphstate, GraphState):
        graphdef = graphdef_or_graphstate._graphdef
        all_states: tuple[tp.Any, ...] = (graphdef_or_graphstate, *states)
        for i, gs in enumerate(all_states):
            if not isinstance(gs, GraphState):
                raise ValueError(
                    f"nnx.merge: Expected GraphState object for state {i} (the first argument "
                    f"is a GraphState), found {type(gs).__name__}. Fix: pass all the "
                    "GraphStates of one nnx.unpack call, or `nnx.merge(graphdef, *states)`."
                )
            if gs._graphdef != graphdef:
                raise ValueError(
                    f"nnx.merge: GraphDef must be the same for all GraphState objects; state "
                    f"{i} belongs to another GraphDef. Fix: pass GraphStates from one "
                    "nnx.unpack call."
                )
    elif isinstance(graphdef_or_graphstate, GraphDef):
        graphdef, all_states = graphdef_or_graphstate, states
    else:
        raise TypeError(
            "nnx.merge expected a GraphDef or GraphState as first argument, found "
            f"{type(graphdef_or_graphstate).__name__}."
            " Fix: `graphdef, state = nnx.split(model); nnx.merge(graphdef, state)`."
        )
    if not all_states:
        raise TypeError(
            "merge() missing 1 required positional argument: 'state'. Fix: pass the "
            "State(s) of nnx.split: `nnx.merge(graphdef, state)`."
        )
    state = all_states[0]
    if graphdef._record is ARRAY_DEF:  # a plain leaf's graph: the one non-empty state
        found = [s for s in all_states if not (isinstance(s, (Mapping, FlatState)) and not s)]
        if len(found) == 1:
            if isinstance(found[0], (Mapping, FlatState)):
                entries = flat_lookup(found)
                if list(entries) == [()]:
                    return tp.cast(A, entries[()])
            return tp.cast(A, found[0])
    if type(state) is list:
        if len(all_states) != 1:
            raise ValueError(
                "nnx.merge: Only one state can be passed as a list (of leaves); found "
                f"{len(all_states)} states. Fix: pass one list, or States."
            )
        return tp.cast(A, unflatten(graphdef, state, copy_variables=copy))
    if isinstance(state, Variable) and isinstance(graphdef.record, VariableDef):
        leaves: list[tp.Any] = [state.copy() if copy else state]
        return tp.cast(A, build(graphdef, leaves, reuse_variables=True)[0])
    flat = flat_lookup(all_states)
    leaves, missing, extra = match_leaves(graphdef.leaf_paths, flat)
    if missing or extra:
        raise mismatch_error("nnx.merge", missing, extra, expected=len(graphdef.leaf_paths))
    if copy:
        leaves = [v.copy() if isinstance(v, Variable) else v for v in leaves]
    root, _ = build(graphdef, leaves, reuse_variables=True)
    return tp.cast(A, root)


@tp.overload
def state(node: tp.Any, *, graph: bool | None = None) -> State: ...
@tp.overload
def state(node: tp.Any, first: Filter, /, *, graph: bool | None = None) -> State: ...
@tp.overload
def state(
    node: tp.Any, first: Filter, second: Filter, /, *filters: Filter, graph: bool | None = None
) -> tuple[State, ...]: ...
def state(node: tp.Any, *filters: Filter, graph: bool | None = None) -> tp.Any:
    """The State of an object graph (one State per filter when filters are given).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2)); self.s = nnx.BatchStat(jnp.zeros(2))
        >>> list(nnx.state(M(), nnx.BatchStat))
        ['s']
    """
    _check_node(node, "state")
    if isinstance(node, Variable) and not filters:
        return node
    gdef, pairs = _pairs(node)
    if graph is not True and is_tree_mode(graph):
        check_tree(gdef, "state")
    if not filters:
        return from_flat_state(pairs)
    states = tuple(from_flat_state(g) for g in _split_pairs(pairs, filters, exhaustive=False))
    return states[0] if len(states) == 1 else states


variables = state


def graphdef(node: A, /, *, graph: bool | None = None) -> GraphDef[A]:
    """The GraphDef of an object graph.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> nnx.graphdef(M()).type.__name__
        'M'
    """
    if _is_leaf_root(node):
        return tp.cast("GraphDef[A]", _LEAF_GRAPHDEF)
    _check_node(node, "graphdef")
    gdef = flatten_graph(node).graphdef
    if graph is not True and is_tree_mode(graph):
        check_tree(gdef, "graphdef")
    return tp.cast("GraphDef[A]", gdef)


def update(node: tp.Any, state: tp.Any, /, *states: tp.Any) -> None:
    """Write the values (and metadata) of ``states`` into ``node``'s Variables.

    States may cover part of the graph; a plain value for a static entry (a Module's
    static attribute, a non-data item) replaces it. A path the object lacks is added when its
    parent exists (a new attribute of a Module, a new key of an ``nnx.Dict``, the
    next index of an ``nnx.List``) with a copy of the State's Variable (or the raw
    value); a value must have the shape of the one it replaces (when both have a
    shape). Nothing is modified when a path cannot be placed or a shape differs.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m = M(); nnx.update(m, {"w": jnp.ones(2), "b": nnx.Param(jnp.zeros(3))})
        >>> m.w.value.tolist(), m.b.shape
        ([1.0, 1.0], (3,))
    """
    _check_node(node, "update")
    flat_node = flatten_graph(node)
    targets = dict(zip(flat_node.graphdef.leaf_paths, flat_node.leaves))
    incoming = flat_lookup((state, *states))
    writes: list[tuple[tp.Any, tp.Any]] = []
    extra: list[tuple[Path, tp.Any]] = []
    wrong_shape: list[tuple[Path, tp.Any, tp.Any]] = []
    for path, value in incoming.items():
        target = targets.get(path)
        if target is None:
            key = alias(path, targets)
            if key is None:
                extra.append((path, value))
                continue
            target = targets[key]
        new = value._raw_value if isinstance(value, Variable) else value
        old_shape = getattr(target._raw_value, "shape", None)
        new_shape = getattr(new, "shape", None)
        if old_shape is not None and new_shape is not None and old_shape != new_shape:
            wrong_shape.append((path, old_shape, new_shape))
        writes.append((target, value))
    if wrong_shape:
        raise shape_error("nnx.update", wrong_shape)
    overwrites, extra = static_overwrites(node, extra) if extra else ([], extra)
    additions, unplaced = _plan_additions(flat_node, extra) if extra else ([], [])
    if unplaced:
        raise mismatch_error(
            "nnx.update",
            [],
            unplaced,
            fix="Fix: pass a State taken from this object (nnx.state(model), possibly "
            "filtered) or drop the extra entries; a new entry is added only where its "
            "parent exists (a Module attribute not yet set, a new nnx.Dict key, the next "
            "nnx.List index). Nothing was updated.",
        )
    for target, value in writes:
        if getattr(target, "_nnx_special", False) and target.hijax:
            update_hijax(target, value)  # into its box; it stays a hijax Variable
        elif isinstance(value, Variable):
            target._raw_value = value._raw_value
            if isinstance(target, Variable) and value._var_metadata != target._var_metadata:
                target.set_metadata(dict(value._var_metadata))
        else:
            target._raw_value = value
    for parent, key, value in additions:
        _add_entry(parent, key, value.copy() if isinstance(value, Variable) else value)
    for parent, key, value in overwrites:  # static entries (plain values), as Flax
        if isinstance(parent, (list, dict)):
            parent[key] = value
        else:
            setattr(parent, key, value)
    if overwrites:
        _epoch.bump()


def _plan_additions(
    flat: tp.Any, extra: list[tuple[Path, tp.Any]]
) -> tuple[list[tuple[tp.Any, tp.Any, tp.Any]], list[Path]]:
    """For paths the object lacks: ``(parent, key, value)`` to add where the parent
    node exists and can take the key, else the path in the second list."""
    parents: dict[Path, tp.Any] = {}
    for visit in walk(flat.graphdef):
        if isinstance(visit.record, NodeDef):
            parents[visit.path] = flat.nodes[visit.record.node_index]
    additions: list[tuple[tp.Any, tp.Any, tp.Any]] = []
    unplaced: list[Path] = []
    list_sizes: dict[int, int] = {}
    for path, value in sorted(extra, key=_path_order):
        head = path[:-1]
        parent = parents.get(head)
        if parent is None and head:
            found = alias(head, parents)
            parent = parents[found] if found is not None else None
        key = path[-1] if path else None
        if parent is None or key is None:
            unplaced.append(path)
            continue
        if isinstance(parent, List):  # (List/Dict are Pytrees holding items)
            size = list_sizes.get(id(parent), len(parent))
            ok = str(key) == str(size)
            if ok:
                key, list_sizes[id(parent)] = size, size + 1
        elif isinstance(parent, Pytree) and not isinstance(parent, dict):
            ok = isinstance(key, str) and key not in vars(parent)
        elif type(parent) in GRAPH_REGISTRY:
            ok = key not in dict(GRAPH_REGISTRY[type(parent)].items(parent))
        else:
            ok = key not in parent
        if ok:
            additions.append((parent, key, value))
        else:
            unplaced.append(path)
    return additions, unplaced


def _path_order(item: tuple[Path, tp.Any]) -> tuple[tuple[int, tp.Any], ...]:
    return tuple((0, k) if type(k) is int else (1, str(k)) for k in item[0])


def _add_entry(parent: tp.Any, key: tp.Any, value: tp.Any) -> None:
    if isinstance(parent, List):  # (List/Dict are Pytrees holding items)
        parent.append(value)
    elif isinstance(parent, Pytree) and not isinstance(parent, dict):
        setattr(parent, key, value)
    elif type(parent) in GRAPH_REGISTRY:
        GRAPH_REGISTRY[type(parent)].set_key(parent, key, value)
    else:
        parent[key] = value


def clone(node: A, variables: bool = True, *, arrays: bool = False, graph: bool | None = None) -> A:
    """A deep copy of the object graph (new Variables; sharing within it preserved).

    ``variables=False`` shares the Variables with ``node`` (only the Modules and
    containers are new); ``arrays=True`` also copies the array buffers (e.g. so the
    clone can be donated to ``jit`` next to the original).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m = M(); c = nnx.clone(m)
        >>> c.w is m.w
        False
    """
    if isinstance(node, (tuple, list)) and node and all(isinstance(s, State) for s in node):
        # e.g. the States of `nnx.state(model, filter, ...)`
        return tp.cast(A, type(node)(clone(s, variables, arrays=arrays) for s in node))
    if isinstance(node, State):  # a State's Variables are copied, not shared
        return tp.cast(
            A,
            jax.tree.map(
                lambda v: clone(v, variables, arrays=arrays),
                node,
                is_leaf=lambda x: isinstance(x, Variable),
            ),
        )
    if _is_leaf_root(node):
        return tp.cast(A, jax.numpy.array(node, copy=True) if arrays else node)
    _check_node(node, "clone")
    if arrays and not variables:
        raise ValueError(
            "nnx.clone(arrays=True, variables=False): expected variables=True when copying "
            "the arrays (shared Variables cannot hold new buffers). Fix: drop one of them."
        )
    flat = flatten_graph(node)
    if graph is not True and is_tree_mode(graph):
        check_tree(flat.graphdef, "clone")
    copy_array: tp.Callable[[tp.Any], tp.Any] = (
        (lambda x: jax.numpy.array(x, copy=True) if isinstance(x, jax.Array) else x)
        if arrays
        else (lambda x: x)
    )
    leaves = [
        (v.replace(copy_array(v._raw_value)) if variables else v)
        if isinstance(v, Variable)
        else copy_array(v._raw_value)
        for v in flat.leaves
    ]
    root, _ = build(flat.graphdef, leaves, reuse_variables=True)
    return tp.cast(A, root)


def map(
    f: tp.Callable[[Path, tp.Any], tp.Any],
    node: A,
    /,
    *,
    graph: bool | None = None,
    recreate_variables: bool = True,
) -> A:
    """A new graph whose leaves are ``f(path, leaf)`` (leaves are Variables): each
    result is wrapped back into its Variable's type, or, with
    ``recreate_variables=False``, stored as it is (no Variable).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m2 = nnx.map(lambda path, v: v.value + 1, M())
        >>> m2.w.value.tolist()
        [1.0, 1.0]
    """
    if not recreate_variables:
        return tp.cast(A, recursive_map(lambda p, x: x if is_graph_node(x) else f(p, x), node))
    gdef, st = split(node, graph=graph)
    return merge(gdef, map_state(f, st))


def flatten(
    node: tp.Any,
    /,
    *,
    with_paths: bool = True,
    ref_index: tp.Any = None,
    ref_outer_index: tp.Any = None,
    graph: bool | None = None,
) -> tuple[GraphDef[tp.Any], tp.Any]:
    """``(graphdef, leaves)``: a :class:`FlatState` of ``(path, leaf)`` pairs, or a
    plain list of leaves with ``with_paths=False``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> gdef, flat = nnx.flatten(nnx.Dict(w=nnx.Param(jnp.zeros(2))))
        >>> flat.paths
        (('w',),)
    """
    _no_ref_maps("flatten", ref_index, ref_outer_index)
    gdef, pairs = _pairs(node)
    if graph is not True and is_tree_mode(graph):
        check_tree(gdef, "flatten")
    if with_paths:
        return gdef, FlatState(pairs, sort=False)
    return gdef, [v for _, v in pairs]


def _no_ref_maps(fn: str, *maps: tp.Any) -> None:
    if any(m is not None for m in maps):
        raise ValueError(
            f"nnx.{fn}: Flax's reference maps (ref_index/index_ref, ...) are not used "
            "here: expected None, found a map. Fix: drop the argument; sharing is kept "
            "within one flatten/unflatten call."
        )


def unflatten(
    graphdef: GraphDef[tp.Any],
    state: tp.Any,
    /,
    *,
    index_ref: tp.Any = None,
    outer_index_outer_ref: tp.Any = None,
    copy_variables: bool = False,
    recreate_variables: bool = True,
) -> tp.Any:
    """Inverse of :func:`flatten`: accepts a FlatState, a State, or a list of leaves
    in leaf order.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> gdef, flat = nnx.flatten(nnx.Dict(w=nnx.Param(jnp.zeros(2))))
        >>> nnx.unflatten(gdef, flat)["w"].shape
        (2,)
    """
    _no_ref_maps("unflatten", index_ref, outer_index_outer_ref)
    if isinstance(state, (FlatState, Mapping)):
        return merge(graphdef, state, copy=copy_variables)
    leaves = list(state)
    if copy_variables:
        leaves = [v.copy() if isinstance(v, Variable) else v for v in leaves]
    if len(leaves) != graphdef.num_leaves:
        raise GraphStructureError(
            f"nnx.unflatten expected {graphdef.num_leaves} leaves for this GraphDef, found "
            f"{len(leaves)}. Fix: pass the leaves produced by nnx.flatten on the same structure."
        )
    root, _ = build(graphdef, leaves, reuse_variables=True)
    return root
