"""The graph API: split/merge/state/update/clone/pop and friends.

Everything here is built on the two primitives in ``_graphdef.py``: one traversal
(``flatten_graph``) and one builder (``build``).  States returned by ``split`` and
``state`` hold the object's own Variables (not copies), as in Flax NNX 0.12; use
``clone`` for an independent copy.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import threading
import typing as tp
from collections.abc import Iterator, Mapping

import jax

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._filters import to_predicate
from nnx_graph._graphdef import CONTAINER, LEAF, NODE, VAR, GraphDef, Slot, build, flatten_graph
from nnx_graph._pytree import Dict, List, Pytree, has_data, is_graph_node
from nnx_graph._state import (
    FlatState,
    State,
    from_flat_state,
    map_state,
    restore_int_path,
    split_state,
    to_flat_state,
)
from nnx_graph._variables import Variable

__all__ = [
    "GraphState",
    "NodeStates",
    "PureState",
    "UpdateContext",
    "as_pure",
    "call",
    "clone",
    "current_update_context",
    "find_duplicates",
    "flatten",
    "from_tree",
    "graphdef",
    "iter_graph",
    "map",
    "merge",
    "pop",
    "prefix",
    "pure",
    "recursive_map",
    "set_graph_mode",
    "set_graph_updates",
    "set_metadata",
    "split",
    "state",
    "to_tree",
    "unflatten",
    "unpack",
    "update",
    "update_context",
    "variables",
    "vars_as",
    "with_vars",
]

A = tp.TypeVar("A")
Path = tuple[tp.Any, ...]
GraphState = State
PureState = State


def _leaf_value(leaf: tp.Any) -> tp.Any:
    return leaf._raw_value if isinstance(leaf, Slot) else leaf


def _pairs(node: tp.Any) -> tuple[GraphDef, list[tuple[Path, tp.Any]]]:
    flat = flatten_graph(node)
    paths = flat.graphdef.leaf_paths
    return flat.graphdef, [(p, _leaf_value(v)) for p, v in zip(paths, flat.leaves)]


def _check_node(node: tp.Any, fn: str) -> None:
    if not (is_graph_node(node) or isinstance(node, (tuple, list, dict))):
        raise TypeError(
            f"nnx.{fn} expected a graph node (a Module, Pytree, nnx.List/Dict, or a "
            f"tuple/list/dict of them), found {type(node).__name__}: {node!r:.80}. "
            f"Fix: pass the Module itself."
        )


def split(node: tp.Any, *filters: tp.Any, graph: bool | None = None) -> tuple[tp.Any, ...]:
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
    if not filters:
        return gdef, from_flat_state(pairs)
    if not pairs:
        return (gdef, *(State() for _ in filters))
    states = split_state(from_flat_state(pairs), *filters)
    return (gdef, *(states if len(filters) > 1 else (states,)))


def _flat_lookup(states: tp.Sequence[tp.Any]) -> dict[Path, tp.Any]:
    flat: dict[Path, tp.Any] = {}
    for s in states:
        if isinstance(s, FlatState):
            items: tp.Iterable[tuple[Path, tp.Any]] = s
        elif isinstance(s, Mapping):
            items = to_flat_state(s)
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
    for p in paths:
        if p in flat:
            leaves.append(flat[p])
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
    graphdef: GraphDef,
    state: tp.Any,
    /,
    *states: tp.Any,
    copy: bool = False,
    recreate_variables: bool = True,
) -> tp.Any:
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
    flat = _flat_lookup((state, *states))
    leaves, missing, extra = _match_leaves(graphdef.leaf_paths, flat)
    if missing or extra:
        raise _mismatch_error("nnx.merge", missing, extra, expected=len(graphdef.leaf_paths))
    if copy:
        leaves = [v.copy() if isinstance(v, Variable) else v for v in leaves]
    root, _ = build(graphdef, leaves, reuse_variables=True)
    return root


def state(node: tp.Any, *filters: tp.Any, graph: bool | None = None) -> tp.Any:
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
    _, pairs = _pairs(node)
    s = from_flat_state(pairs)
    if not filters:
        return s
    from nnx_graph._state import filter_state

    return filter_state(s, *filters)


variables = state


def graphdef(node: tp.Any, /, *, graph: bool | None = None) -> GraphDef:
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
    return flatten_graph(node).graphdef


def update(node: tp.Any, state: tp.Any, /, *states: tp.Any) -> None:
    """Write the values (and metadata) of ``states`` into ``node``'s Variables.

    States may cover part of the graph; every path in them must exist in ``node``.
    Nothing is modified when a path does not match.

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
    for path, value in incoming.items():
        target = targets.get(path)
        if target is None:
            alias = _alias(path, targets)
            if alias is None:
                extra.append(path)
                continue
            target = targets[alias]
        writes.append((target, value))
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


def clone(
    node: A, /, variables: bool = True, *, arrays: bool = False, graph: bool | None = None
) -> A:
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


def _walk(
    record: tuple[tp.Any, ...],
    path: Path,
    nodes: list[tp.Any],
    leaves: Iterator[tp.Any],
    out: list[tuple[Path, tp.Any]],
) -> None:
    tag = record[0]
    if tag == VAR:
        next(leaves)
        out.append((path, nodes[record[2]]))
    elif tag == LEAF:
        out.append((path, _leaf_value(next(leaves))))
    elif tag == NODE:
        for key, child in record[4]:
            _walk(child, (*path, key), nodes, leaves, out)
        out.append((path, nodes[record[2]]))
    elif tag == CONTAINER:
        for key, child in zip(record[2], record[3]):
            _walk(child, (*path, key), nodes, leaves, out)


def iter_graph(node: tp.Any, /, *, graph: bool | None = None) -> Iterator[tuple[Path, tp.Any]]:
    """Yield ``(path, value)`` for every node, Variable and array leaf, children
    before their parent, each shared object once.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> [(p, type(v).__name__) for p, v in nnx.iter_graph(M())]
        [(('w',), 'Param'), ((), 'M')]
    """
    flat = flatten_graph(node)
    out: list[tuple[Path, tp.Any]] = []
    _walk(flat.graphdef._record, (), flat.nodes, iter(flat.leaves), out)
    yield from out


def find_duplicates(node: tp.Any, /, *, only: tp.Any = ...) -> list[list[Path]]:
    """Groups of paths that reach the same Variable or node (shared references).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.a = nnx.Param(jnp.zeros(2)); self.b = self.a
        >>> nnx.find_duplicates(M())
        [[('a',), ('b',)]]
    """
    predicate = to_predicate(only)
    seen: dict[int, tuple[tp.Any, list[Path]]] = {}

    def go(value: tp.Any, path: Path) -> None:
        if isinstance(value, Variable) or is_graph_node(value):
            entry = seen.get(id(value))
            if entry is not None:
                entry[1].append(path)
                return
            seen[id(value)] = (value, [path])
            if isinstance(value, Variable):
                return
        if isinstance(value, Pytree):
            for name, child in value._nnx_attributes():
                if value._nnx_is_data_attr(name, child):
                    go(child, (*path, name))
        elif isinstance(value, (list, tuple)):
            for i, child in enumerate(value):
                if has_data(child):
                    go(child, (*path, i))
        elif isinstance(value, dict):
            from nnx_graph._state import sorted_keys

            for k in sorted_keys(value):
                if has_data(value[k]):
                    go(value[k], (*path, k))

    go(node, ())
    return [
        paths for value, paths in seen.values() if len(paths) > 1 and predicate(paths[0], value)
    ]


def pop(node: tp.Any, *filters: tp.Any) -> tp.Any:
    """Remove the Variables matching each filter from ``node`` and return them as
    States (one per filter).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        ...         self.i = nnx.Intermediate((jnp.ones(1),))
        >>> m = M(); popped = nnx.pop(m, nnx.Intermediate)
        >>> list(popped), hasattr(m, "i")
        (['i'], False)
    """
    if not filters:
        raise TypeError(
            "nnx.pop expected at least one filter, found none. "
            "Fix: nnx.pop(model, nnx.Intermediate)."
        )
    flat = flatten_graph(node)
    pairs = [
        (p, v) for p, v in zip(flat.graphdef.leaf_paths, flat.leaves) if isinstance(v, Variable)
    ]
    predicates = [to_predicate(f) for f in filters]
    groups: list[list[tuple[Path, tp.Any]]] = [[] for _ in filters]
    for path, var in pairs:
        for i, predicate in enumerate(predicates):
            if predicate(path, var):
                groups[i].append((path, var))
                break
    removals = [path for g in groups for path, _ in g]
    # delete deepest-last-index first so list positions stay valid
    removals.sort(
        key=lambda p: [(0, k) if isinstance(k, int) else (1, str(k)) for k in p], reverse=True
    )
    parents = []
    for path in removals:  # find every parent first: fail before changing anything
        parent = node
        for key in path[:-1]:
            parent = getattr(parent, key) if isinstance(parent, Pytree) else parent[key]
        if not isinstance(parent, (Pytree, list, dict)):
            raise GraphStructureError(
                f"nnx.pop: {format_path(path)} ({type(_value_at(parent, path[-1])).__name__}) "
                f"is stored in a {type(parent).__name__}, which cannot be changed in place. "
                "Expected the Variables to pop to be Module attributes or entries of an "
                "nnx.List / nnx.Dict. Fix: store them in a list (or nnx.List) instead of a "
                f"{type(parent).__name__}. Nothing was removed."
            )
        parents.append(parent)
    for path, parent in zip(removals, parents):
        if isinstance(parent, Pytree):
            delattr(parent, path[-1])
        else:
            del parent[path[-1]]
    states = tuple(from_flat_state(g) for g in groups)
    return states[0] if len(states) == 1 else states


def _value_at(parent: tp.Any, key: tp.Any) -> tp.Any:
    return getattr(parent, key) if isinstance(parent, Pytree) else parent[key]


def recursive_map(
    f: tp.Callable[[Path, tp.Any], tp.Any], node: tp.Any, /, *, graph: bool | None = None
) -> tp.Any:
    """Rebuild the graph bottom-up, replacing every node, Variable and array leaf
    ``x`` at path ``p`` with ``f(p, x)``. Shared references map once.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> def double(path, x):
        ...     return nnx.Param(x.value + 1) if isinstance(x, nnx.Param) else x
        >>> nnx.recursive_map(double, M()).w.value.tolist()
        [1.0, 1.0]
    """
    memo: dict[int, tp.Any] = {}

    def go(value: tp.Any, path: Path) -> tp.Any:
        key = id(value)
        if key in memo:
            return memo[key]
        if isinstance(value, Variable):
            result = f(path, value)
            memo[key] = result
            return result
        if isinstance(value, Pytree):
            new = object.__new__(type(value))
            memo[key] = new
            for name, child in value._nnx_attributes():
                new.__dict__[name] = (
                    go(child, (*path, name)) if value._nnx_is_data_attr(name, child) else child
                )
            if value._nnx_explicit:
                new.__dict__["_nnx_explicit"] = dict(value._nnx_explicit)
            result = f(path, new)
            memo[key] = result
            return result
        if isinstance(value, List):
            new_list: List[tp.Any] = List()
            memo[key] = new_list
            list.extend(
                new_list, [go(c, (*path, i)) if has_data(c) else c for i, c in enumerate(value)]
            )
            result = f(path, new_list)
            memo[key] = result
            return result
        if isinstance(value, Dict):
            new_dict: Dict[tp.Any] = Dict()
            memo[key] = new_dict
            for k, c in value.items():
                dict.__setitem__(new_dict, k, go(c, (*path, k)) if has_data(c) else c)
            result = f(path, new_dict)
            memo[key] = result
            return result
        if isinstance(value, (list, tuple)) and has_data(value):
            items = [go(c, (*path, i)) if has_data(c) else c for i, c in enumerate(value)]
            if hasattr(value, "_fields"):
                return type(value)(*items)
            return type(value)(items)
        if isinstance(value, dict) and has_data(value):
            return type(value)(
                {k: go(c, (*path, k)) if has_data(c) else c for k, c in value.items()}
            )
        if has_data(value):
            return f(path, value)
        return value

    return go(node, ())


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
    return tp.cast(A, merge(gdef, map_state(f, st)))


def flatten(
    node: tp.Any, /, *, with_paths: bool = True, graph: bool | None = None
) -> tuple[GraphDef, tp.Any]:
    """``(graphdef, leaves)``: a :class:`FlatState` of ``(path, leaf)`` pairs, or a
    plain list of leaves with ``with_paths=False``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> gdef, flat = nnx.flatten(M())
        >>> flat.paths
        (('w',),)
    """
    gdef, pairs = _pairs(node)
    if with_paths:
        return gdef, FlatState(pairs, sort=False)
    return gdef, [v for _, v in pairs]


def unflatten(
    graphdef: GraphDef,
    leaves: tp.Any,
    /,
    *,
    copy_variables: bool = False,
    recreate_variables: bool = True,
) -> tp.Any:
    """Inverse of :func:`flatten`: accepts a FlatState, a State, or a list of leaves
    in leaf order.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> gdef, flat = nnx.flatten(M())
        >>> nnx.unflatten(gdef, flat).w.shape
        (2,)
    """
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


def set_metadata(node: tp.Any, /, *, only: tp.Any = Variable, **metadata: tp.Any) -> None:
    """Set metadata on every Variable in ``node`` matching ``only``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m = M(); nnx.set_metadata(m, only=nnx.Param, frozen=True); m.w.frozen
        True
    """
    predicate = to_predicate(only)
    for path, value in iter_graph(node):
        if isinstance(value, Variable) and predicate(path, value):
            value.set_metadata(**metadata)


def pure(tree: A, /) -> A:
    """Replace every Variable in a pytree (e.g. a State) with its raw value.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.pure(nnx.State({"w": nnx.Param(jnp.zeros(2))}))
        >>> type(s["w"]).__name__
        'ArrayImpl'
    """
    return tp.cast(
        A,
        jax.tree.map(
            lambda x: x.get_value() if isinstance(x, Variable) else x,
            tree,
            is_leaf=lambda x: isinstance(x, Variable),
        ),
    )


as_pure = pure


def unpack(tree: A, /) -> A:
    """Compatibility: same as :func:`pure`."""
    return pure(tree)


def vars_as(tree: A, /, **flags: tp.Any) -> A:
    """Compatibility: Flax's hijax mode flags (``mutable=False``, ...) do not apply to
    this library's single Variable kind; returns ``tree`` unchanged.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.vars_as({"a": 1}, mutable=False)
        {'a': 1}
    """
    return tree


def with_vars(tree: A, /, **flags: tp.Any) -> A:
    """Compatibility: see :func:`vars_as`; returns ``tree`` unchanged."""
    return tree


# ----------------------------------------------------------------- functional call
class _CallableProxy:
    def __init__(self, graphdef: GraphDef, st: State, path: tuple[str, ...] = ()) -> None:
        self._graphdef, self._state, self._path = graphdef, st, path

    def __getattr__(self, name: str) -> _CallableProxy:
        return _CallableProxy(self._graphdef, self._state, (*self._path, name))

    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tuple[tp.Any, tuple[GraphDef, State]]:
        node = merge(self._graphdef, self._state, copy=True)
        method = node
        for name in self._path:
            method = getattr(method, name)
        out = method(*args, **kwargs)
        return out, split(node)


def call(graphdef_state: tuple[GraphDef, tp.Any], /) -> tp.Any:
    """Functional call: ``out, (graphdef, state) = nnx.call((graphdef, state)).method(x)``.
    The inputs are not modified; the new state is returned.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        ...     def __call__(self):
        ...         self.n += 1
        ...         return self.n.value
        >>> out, (g, s) = nnx.call(nnx.split(Counter()))()
        >>> int(out), int(s["n"].value)
        (1, 1)
    """
    gdef, st = graphdef_state
    return _CallableProxy(gdef, st)


# ----------------------------------------------------------------- to_tree / from_tree
@dataclasses.dataclass(frozen=True)
class _SharedNode:
    """Placeholder for a graph node that appears earlier in the same tree."""

    position: int


jax.tree_util.register_pytree_node(
    _SharedNode, lambda n: ((), n.position), lambda pos, _: _SharedNode(pos)
)


class NodeStates:
    """A pytree standing for one or more graph nodes: a GraphDef (static) and its
    States (children). Produced by :func:`to_tree`.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> tree = nnx.to_tree([M()])
        >>> len(jax.tree.leaves(tree))
        1
    """

    def __init__(
        self, graphdef: GraphDef, states: tuple[State, ...], metadata: tp.Any = None, count: int = 1
    ) -> None:
        self.graphdef, self.states, self.metadata, self.count = graphdef, states, metadata, count

    @property
    def state(self) -> State:
        return self.states[0]

    @classmethod
    def from_split(
        cls, graphdef: GraphDef, state: State, /, *states: State, metadata: tp.Any = None
    ) -> NodeStates:
        return cls(graphdef, (state, *states), metadata)

    def __repr__(self) -> str:
        return f"NodeStates(count={self.count}, states={self.states!r})"


jax.tree_util.register_pytree_node(
    NodeStates,
    lambda n: (n.states, (n.graphdef, n.metadata, n.count)),
    lambda aux, states: NodeStates(aux[0], tuple(states), aux[1], aux[2]),
)


def to_tree(tree: tp.Any, /, *, prefix: tp.Any = ..., split_fn: tp.Any = None) -> tp.Any:
    """Replace the graph nodes inside a pytree with :class:`NodeStates` so the
    result is a plain pytree. Sharing between the nodes is preserved: all nodes are
    split together, stored at the first node's position.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m = M(); back = nnx.from_tree(nnx.to_tree((m, m)))
        >>> back[0] is back[1]
        True
    """
    leaves, treedef = jax.tree.flatten(tree, is_leaf=is_graph_node)
    positions = [i for i, leaf in enumerate(leaves) if is_graph_node(leaf)]
    if not positions:
        return tree
    nodes = tuple(leaves[i] for i in positions)
    filters = prefix if isinstance(prefix, tuple) and prefix is not ... else ()
    gdef, *states = split(nodes, *filters) if filters else split(nodes)
    new_leaves = list(leaves)
    new_leaves[positions[0]] = NodeStates(gdef, tuple(states), None, len(nodes))
    for k, i in enumerate(positions[1:], start=1):
        new_leaves[i] = _SharedNode(k)
    return jax.tree.unflatten(treedef, new_leaves)


def from_tree(tree: tp.Any, /) -> tp.Any:
    """Inverse of :func:`to_tree`."""
    leaves, treedef = jax.tree.flatten(
        tree, is_leaf=lambda x: isinstance(x, (NodeStates, _SharedNode))
    )
    nodes: tuple[tp.Any, ...] = ()
    out = []
    for leaf in leaves:
        if isinstance(leaf, NodeStates):
            nodes = merge(leaf.graphdef, *leaf.states)
            out.append(nodes[0])
        elif isinstance(leaf, _SharedNode):
            out.append(nodes[leaf.position])
        else:
            out.append(leaf)
    return jax.tree.unflatten(treedef, out)


def prefix(
    node: tp.Any, filter_map: Mapping[tp.Any, tp.Any], /, *, graph: bool | None = None
) -> State:
    """A State with the same paths as ``nnx.state(node)`` whose leaves are the value
    of the first filter in ``filter_map`` matching each Variable: a convenient way
    to build per-Variable axes or shardings.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2)); self.s = nnx.BatchStat(jnp.zeros(2))
        >>> nnx.prefix(M(), {nnx.Param: 0, ...: None}).to_pure_dict()
        {'s': None, 'w': 0}
    """
    _, pairs = _pairs(node)
    predicates = [(to_predicate(f), v) for f, v in filter_map.items()]
    out = []
    for path, leaf in pairs:
        for predicate, value in predicates:
            if predicate(path, leaf):
                out.append((path, value))
                break
        else:
            raise GraphStructureError(
                f"nnx.prefix: {format_path(path)} ({type(leaf).__name__}) matches none of the "
                f"filters {list(filter_map)}. Fix: add `...: default` as the last entry."
            )
    return from_flat_state(out)


# ----------------------------------------------------------------- compat switches
_MODE = threading.local()


def set_graph_mode(enabled: bool, /) -> contextlib.AbstractContextManager[None]:
    """Compatibility: Flax can switch transforms between graph and tree mode. This
    library's transforms always keep full graph semantics at tree-mode cost, so the
    setting is recorded and has no other effect. Usable as a context manager.

    Example::

        >>> import nnx_graph as nnx
        >>> with nnx.set_graph_mode(False):
        ...     pass
    """
    previous = getattr(_MODE, "graph", True)
    _MODE.graph = bool(enabled)

    @contextlib.contextmanager
    def restore() -> Iterator[None]:
        try:
            yield
        finally:
            _MODE.graph = previous

    return restore()


def set_graph_updates(enabled: bool, /) -> contextlib.AbstractContextManager[None]:
    """Compatibility: see :func:`set_graph_mode`; updates always propagate here."""
    previous = getattr(_MODE, "updates", True)
    _MODE.updates = bool(enabled)

    @contextlib.contextmanager
    def restore() -> Iterator[None]:
        try:
            yield
        finally:
            _MODE.updates = previous

    return restore()


class UpdateContext:
    """Compatibility helper for hand-written transforms: ``split`` outside,
    ``merge`` inside, then ``update`` the original objects with the result.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> c = C()
        >>> with nnx.update_context("demo") as ctx:
        ...     gdef, st = ctx.split(c)
        ...     inner = ctx.merge(gdef, st)
        ...     inner.n.value = jnp.array(5)
        ...     ctx.update(c, nnx.state(inner))
        >>> int(c.n.value)
        5
    """

    def __init__(self, tag: tp.Hashable) -> None:
        self.tag = tag

    def split(self, node: tp.Any, *filters: tp.Any) -> tuple[tp.Any, ...]:
        return split(node, *filters)

    def merge(self, graphdef: GraphDef, state: tp.Any, *states: tp.Any) -> tp.Any:
        return merge(graphdef, state, *states, copy=True)

    def update(self, node: tp.Any, state: tp.Any, *states: tp.Any) -> None:
        update(node, state, *states)

    def __enter__(self) -> UpdateContext:
        stack = _contexts().setdefault(self.tag, [])
        stack.append(self)
        return self

    def __exit__(self, *exc: tp.Any) -> None:
        _contexts()[self.tag].pop()


def _contexts() -> builtins.dict[tp.Hashable, list[UpdateContext]]:
    if not hasattr(_MODE, "contexts"):
        _MODE.contexts = {}
    return tp.cast(builtins.dict[tp.Hashable, list[UpdateContext]], _MODE.contexts)


def update_context(tag: tp.Hashable) -> UpdateContext:
    """Create an :class:`UpdateContext` (use with ``with``)."""
    return UpdateContext(tag)


def current_update_context(tag: tp.Hashable) -> UpdateContext:
    """The innermost active :class:`UpdateContext` with this tag."""
    stack = _contexts().get(tag)
    if not stack:
        raise ValueError(
            f"No update context with tag {tag!r} is active. Fix: call this inside "
            f"`with nnx.update_context({tag!r}):`."
        )
    return stack[-1]
