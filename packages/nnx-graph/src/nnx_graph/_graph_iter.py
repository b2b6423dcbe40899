"""Readers of an object graph built on the walker: ``iter_graph``,
``find_duplicates``, ``recursive_map``, ``pop`` and ``set_metadata``. Each
traverses the graph once with ``flatten_graph`` and reads the result through
``walk`` (iteratively, so deep graphs work)."""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator

from nnx_graph._containers_jax import restore_explicit
from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._filters import to_predicate
from nnx_graph._graph_modes import check_tree, is_tree_mode
from nnx_graph._graphdef import (
    ArrayDef,
    ContainerDef,
    NodeDef,
    RefDef,
    Slot,
    StaticDef,
    VariableDef,
    flatten_graph,
    walk,
)
from nnx_graph._pytree import Dict, List, Pytree
from nnx_graph._state import from_flat_state
from nnx_graph._variables import Variable

__all__ = [
    "find_duplicates",
    "iter_graph",
    "pop",
    "recursive_map",
    "set_metadata",
]

Path = tuple[tp.Any, ...]


def iter_graph(node: tp.Any, /, *, graph: bool | None = None) -> Iterator[tuple[Path, tp.Any]]:
    """Yield ``(path, value)`` for every node, Variable, array leaf and static
    attribute (the entries of a static list/tuple/dict first, then the container),
    children before their parent, each shared object once.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        ...         self.size = 2
        >>> [(p, type(v).__name__) for p, v in nnx.iter_graph(M())]
        [(('size',), 'int'), (('w',), 'Param'), ((), 'M')]
    """
    flat = flatten_graph(node)
    if graph is not True and is_tree_mode(graph):
        check_tree(flat.graphdef, "iter_graph")
    nodes = flat.nodes
    leaves = iter(flat.leaves)
    out: list[tuple[Path, tp.Any]] = []
    for visit in walk(flat.graphdef, closing=True):
        record = visit.record
        if isinstance(record, VariableDef):
            next(leaves)
            out.append((visit.path, nodes[record.node_index]))
        elif isinstance(record, ArrayDef):
            out.append((visit.path, next(leaves)._raw_value))
        elif isinstance(record, NodeDef) and visit.closing:
            out.append((visit.path, nodes[record.node_index]))
        elif isinstance(record, StaticDef):
            _static_items(visit.path, record.value.value, out)
    yield from out


def _static_items(path: Path, value: tp.Any, out: list[tuple[Path, tp.Any]]) -> None:
    """Append a static value, after the entries of the plain containers in it."""
    stack: list[tuple[Path, tp.Any, bool]] = [(path, value, False)]
    while stack:
        where, item, expanded = stack.pop()
        if expanded or type(item) not in (list, tuple, dict):
            out.append((where, item))
            continue
        stack.append((where, item, True))
        pairs = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
        stack.extend(((*where, k), v, False) for k, v in reversed(pairs))


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
    flat = flatten_graph(node)
    groups: dict[int, list[Path]] = {}
    for visit in walk(flat.graphdef):
        record = visit.record
        if isinstance(record, (NodeDef, VariableDef)):
            groups[record.node_index] = [visit.path]
        elif isinstance(record, RefDef):
            groups[record.node_index].append(visit.path)
    return [
        paths
        for i, paths in groups.items()
        if len(paths) > 1 and predicate(paths[0], flat.nodes[i])
    ]


def pop(node: tp.Any, *filters: tp.Any) -> tp.Any:
    """Remove the Variables (and plain array leaves) matching each filter from
    ``node`` and return them as States (one per filter).

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
    pairs = [  # Variables and plain array leaves
        (p, v._raw_value if v.__class__ is Slot else v)
        for p, v in zip(flat.graphdef.leaf_paths, flat.leaves)
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
            parent = _value_at(parent, key)
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
        if isinstance(parent, Pytree) and not isinstance(parent, (list, dict)):
            delattr(parent, path[-1])
        else:
            del parent[path[-1]]
    states = tuple(from_flat_state(g) for g in groups)
    return states[0] if len(states) == 1 else states


def _value_at(parent: tp.Any, key: tp.Any) -> tp.Any:
    # (nnx.List/nnx.Dict are Pytrees holding items)
    if isinstance(parent, Pytree) and not isinstance(parent, (list, dict)):
        return getattr(parent, key)
    return parent[key]


def recursive_map(
    f: tp.Callable[[Path, tp.Any], tp.Any], node: tp.Any, /, *, graph: bool | None = None
) -> tp.Any:
    """Rebuild the graph bottom-up, replacing every node, Variable and array leaf
    ``x`` at path ``p`` with ``f(p, x)``. Shared references map once.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> def double(path, x):
        ...     return nnx.Param(x.value + 1) if isinstance(x, nnx.Param) else x
        >>> nnx.recursive_map(double, nnx.Dict(w=nnx.Param(jnp.zeros(2))))["w"].value.tolist()
        [1.0, 1.0]
    """
    flat = flatten_graph(node)
    if graph is not True and is_tree_mode(graph):
        check_tree(flat.graphdef, "recursive_map")
    leaves = iter(flat.leaves)
    done: dict[int, tp.Any] = {}  # node index -> its mapped object
    values: list[tp.Any] = []  # children waiting for their parent
    for visit in walk(flat.graphdef, closing=True):
        record = visit.record
        if isinstance(record, VariableDef):
            next(leaves)
            i = record.node_index
            done[i] = f(visit.path, flat.nodes[i])
            values.append(done[i])
        elif isinstance(record, RefDef):
            values.append(done[record.node_index])
        elif isinstance(record, ArrayDef):
            values.append(f(visit.path, next(leaves)._raw_value))
        elif isinstance(record, StaticDef):
            values.append(record.value.value)
        elif not visit.closing:
            if isinstance(record, NodeDef):
                old = flat.nodes[record.node_index]
                old_type = type(old)
                done[record.node_index] = (
                    list.__new__(old_type)
                    if isinstance(old, List)
                    else dict.__new__(old_type)
                    if isinstance(old, Dict)
                    else object.__new__(old_type)
                    if isinstance(old, Pytree)
                    else old_type()
                )
        elif isinstance(record, ContainerDef):
            n = len(record.keys)
            children = values[len(values) - n :]
            del values[len(values) - n :]
            typ: tp.Any = record.type
            if issubclass(typ, dict):
                values.append(typ(zip(record.keys, children)))
            elif hasattr(typ, "_fields"):
                values.append(typ(*children))
            else:
                values.append(typ(children))
        else:
            keys = [k for k, _ in record.attrs]
            children = values[len(values) - len(keys) :]
            del values[len(values) - len(keys) :]
            new = done[record.node_index]
            if isinstance(new, List):  # (List/Dict are Pytrees holding items)
                list.extend(new, children)
                if record.explicit is not None:
                    restore_explicit(new, record.explicit.value)
            elif isinstance(new, Dict):
                for k, c in zip(keys, children):
                    dict.__setitem__(new, k, c)
                if record.explicit is not None:
                    restore_explicit(new, record.explicit.value)
            elif isinstance(new, Pytree):
                new.__dict__.update(zip(keys, children))
                if record.explicit is not None:
                    new.__dict__["_nnx_explicit"] = dict(record.explicit.value)
            else:
                for k, c in zip(keys, children):
                    dict.__setitem__(new, k, c)
            done[record.node_index] = f(visit.path, new)
            values.append(done[record.node_index])
    return values[0]


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
