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

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._filters import Filter
from nnx_graph._filters import split_pairs as _split_pairs
from nnx_graph._graph_iter import (
    check_pytree,
    find_duplicates,
    iter_graph,
    pop,
    recursive_map,
    set_metadata,
)
from nnx_graph._graphdef import (
    GraphDef,
    Slot,
    VariableDef,
    build,
    flatten_graph,
)
from nnx_graph._paths import restore_int_path
from nnx_graph._pytree import is_graph_node
from nnx_graph._state import (
    FlatState,
    State,
    flat_dict,
    from_flat_state,
    map_state,
)
from nnx_graph._variables import Variable

__all__ = [
    "GraphState",
    "PureState",
    "check_pytree",
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
GraphState = State
PureState = State


def _pairs(node: tp.Any) -> tuple[GraphDef[tp.Any], list[tuple[Path, tp.Any]]]:
    flat = flatten_graph(node)
    paths = flat.graphdef.leaf_paths
    return flat.graphdef, [
        (p, v._raw_value if v.__class__ is Slot else v) for p, v in zip(paths, flat.leaves)
    ]


def _check_node(node: tp.Any, fn: str) -> None:
    if not (is_graph_node(node) or isinstance(node, (tuple, list, dict, Variable))):
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
    _check_node(node, "split")
    gdef, pairs = _pairs(node)
    if isinstance(node, Variable):  # a bare Variable is its own state, as in Flax
        if not filters:
            return gdef, node
        groups = _split_pairs(pairs, filters, exhaustive=False)
        return (gdef, *(node if g else State() for g in groups))
    if not filters:
        return gdef, from_flat_state(pairs)
    groups = _split_pairs(pairs, filters) if pairs else [[] for _ in filters]
    return (gdef, *(from_flat_state(g) for g in groups))


def _flat_lookup(states: tp.Sequence[tp.Any]) -> dict[Path, tp.Any]:
    flat: dict[Path, tp.Any] = {}
    for s in states:
        if isinstance(s, FlatState):
            items: tp.Iterable[tuple[Path, tp.Any]] = s
        elif isinstance(s, Mapping):
            items = flat_dict(s).items()
        else:
            raise TypeError(
                f"Expected a State (or a mapping / FlatState), found {type(s).__name__}. "
                "Fix: pass the states returned by nnx.split/nnx.state."
            )
        for path, value in items:
            flat[path] = value
    return flat


def _alias(path: Path, table: Mapping[Path, tp.Any]) -> Path | None:
    """The key of ``table`` that ``path`` names once integer keys are allowed to
    have become strings (``0`` -> ``"0"``, as checkpoint formats store them) or
    back; None when there is none."""
    as_strings = tuple(str(k) if type(k) is int else k for k in path)
    if as_strings in table:
        return as_strings
    as_ints = restore_int_path(path)
    if as_ints in table:
        return as_ints
    return None


def _match_leaves(
    paths: tp.Sequence[Path], flat: Mapping[Path, tp.Any]
) -> tuple[list[tp.Any], list[Path], list[Path]]:
    """``(leaves in paths order, missing paths, extra paths of flat)``."""
    leaves: list[tp.Any] = []
    missing: list[Path] = []
    aliased: list[Path] = []
    get = flat.get
    for p in paths:
        value = get(p, _MISSING)
        if value is not _MISSING:
            leaves.append(value)
            continue
        q = _alias(p, flat)
        if q is None:
            missing.append(p)
        else:
            leaves.append(flat[q])
            aliased.append(q)
    extra: list[Path] = []
    if missing or aliased or len(flat) != len(paths):
        used = {*paths, *aliased}
        extra = [p for p in flat if p not in used]
    return leaves, missing, extra


def shape_error(what: str, found: tp.Sequence[tuple[Path, tp.Any, tp.Any]]) -> GraphStructureError:
    """The error for values whose shape differs from the one the target holds."""
    lines = [
        f"  {format_path(p, 'model')}: expected shape {tuple(old)}, found shape {tuple(new)}"
        for p, old, new in found[:20]
    ]
    if len(found) > 20:
        lines.append(f"  ... and {len(found) - 20} more")
    return GraphStructureError(
        f"{what}: {len(found)} value(s) do not have the shape of the Variable or array they "
        "replace:\n" + "\n".join(lines) + "\nFix: take the State from a model built with "
        "the same sizes (or rebuild the model with the new sizes). Nothing was changed."
    )


def _mismatch_error(
    what: str,
    missing: list[Path],
    extra: list[Path],
    *,
    expected: int | None = None,
    fix: str | None = None,
) -> GraphStructureError:
    lines = []
    for p in missing[:20]:
        lines.append(
            f"  missing: {format_path(p, 'state')} (the GraphDef needs it; the State "
            "has no such path)"
        )
    for p in extra[:20]:
        lines.append(
            f"  extra:   {format_path(p, 'state')} (in the State; the object has no "
            "such Variable or array)"
        )
    more = len(missing) + len(extra) - len(lines)
    if more > 0:
        lines.append(f"  ... and {more} more")
    counts = f"{len(missing)} missing, {len(extra)} extra"
    if expected is not None:
        counts = f"expected the {expected} leaf path(s) of the GraphDef; found {counts}"
    return GraphStructureError(
        f"{what}: the State's paths do not match the object structure ({counts}):\n"
        + "\n".join(lines)
        + "\n"
        + (
            fix
            or "Fix: pass the States produced by nnx.split on the same structure (all "
            "of them, e.g. `nnx.merge(graphdef, params, rest)`)."
        )
    )


def merge(
    graphdef: GraphDef[A],
    state: tp.Any,
    /,
    *states: tp.Any,
    copy: bool = False,
    recreate_variables: bool = True,
) -> A:
    """Rebuild an object graph from a GraphDef and States (the inverse of ``split``).

    The States' Variables become the new object's Variables (``copy=True`` copies
    them). Every leaf the GraphDef needs must be present and no others.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> graphdef, state = nnx.split(M())
        >>> nnx.merge(graphdef, state).w.shape
        (2,)
    """
    if not isinstance(graphdef, GraphDef):
        raise TypeError(
            f"nnx.merge expected a GraphDef as first argument, found {type(graphdef).__name__}."
            " Fix: `graphdef, state = nnx.split(model); nnx.merge(graphdef, state)`."
        )
    if isinstance(state, Variable) and isinstance(graphdef.record, VariableDef):
        leaves: list[tp.Any] = [state.copy() if copy else state]
        return tp.cast(A, build(graphdef, leaves, reuse_variables=True)[0])
    flat = _flat_lookup((state, *states))
    leaves, missing, extra = _match_leaves(graphdef.leaf_paths, flat)
    if missing or extra:
        raise _mismatch_error("nnx.merge", missing, extra, expected=len(graphdef.leaf_paths))
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
    _, pairs = _pairs(node)
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
    _check_node(node, "graphdef")
    return tp.cast("GraphDef[A]", flatten_graph(node).graphdef)


def update(node: tp.Any, state: tp.Any, /, *states: tp.Any) -> None:
    """Write the values (and metadata) of ``states`` into ``node``'s Variables.

    States may cover part of the graph; every path in them must exist in ``node``,
    and a value must have the shape of the one it replaces (when both have a
    shape). Nothing is modified when a path or a shape does not match.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m = M(); nnx.update(m, {"w": jnp.ones(2)})
        >>> m.w.value.tolist()
        [1.0, 1.0]
    """
    _check_node(node, "update")
    flat_node = flatten_graph(node)
    targets = dict(zip(flat_node.graphdef.leaf_paths, flat_node.leaves))
    incoming = _flat_lookup((state, *states))
    writes: list[tuple[tp.Any, tp.Any]] = []
    extra: list[Path] = []
    wrong_shape: list[tuple[Path, tp.Any, tp.Any]] = []
    for path, value in incoming.items():
        target = targets.get(path)
        if target is None:
            alias = _alias(path, targets)
            if alias is None:
                extra.append(path)
                continue
            target = targets[alias]
        new = value._raw_value if isinstance(value, Variable) else value
        old_shape = getattr(target._raw_value, "shape", None)
        new_shape = getattr(new, "shape", None)
        if old_shape is not None and new_shape is not None and old_shape != new_shape:
            wrong_shape.append((path, old_shape, new_shape))
        writes.append((target, value))
    if wrong_shape:
        raise shape_error("nnx.update", wrong_shape)
    if extra:
        raise _mismatch_error(
            "nnx.update",
            [],
            extra,
            fix="Fix: pass a State taken from this object (nnx.state(model), possibly "
            "filtered) or drop the extra entries. Nothing was updated.",
        )
    for target, value in writes:
        if isinstance(value, Variable):
            target._raw_value = value._raw_value
            if isinstance(target, Variable) and value._var_metadata != target._var_metadata:
                target.set_metadata(dict(value._var_metadata))
        else:
            target._raw_value = value


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
    _check_node(node, "clone")
    if arrays and not variables:
        raise ValueError(
            "nnx.clone(arrays=True, variables=False): expected variables=True when copying "
            "the arrays (shared Variables cannot hold new buffers). Fix: drop one of them."
        )
    flat = flatten_graph(node)
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
    """A new graph whose leaves are ``f(path, leaf)`` (leaves are Variables).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m2 = nnx.map(lambda path, v: v.value + 1, M())
        >>> m2.w.value.tolist()
        [1.0, 1.0]
    """
    gdef, st = split(node)
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
    leaves: tp.Any,
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
    if isinstance(leaves, (FlatState, Mapping)):
        return merge(graphdef, leaves, copy=copy_variables)
    leaves = list(leaves)
    if copy_variables:
        leaves = [v.copy() if isinstance(v, Variable) else v for v in leaves]
    if len(leaves) != graphdef.num_leaves:
        raise GraphStructureError(
            f"nnx.unflatten expected {graphdef.num_leaves} leaves for this GraphDef, found "
            f"{len(leaves)}. Fix: pass the leaves produced by nnx.flatten on the same structure."
        )
    root, _ = build(graphdef, leaves, reuse_variables=True)
    return root
