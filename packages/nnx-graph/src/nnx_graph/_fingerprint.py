"""``Fingerprint``: a cheap check that a cached traversal of an object graph is
still valid when attributes were replaced behind ``__setattr__``'s back."""

from __future__ import annotations

import operator
import typing as tp

from nnx_graph._graph_registry import GRAPH_REGISTRY
from nnx_graph._pytree import (
    KIND_ARRAY,
    KIND_CONTAINER,
    KIND_NODE,
    KIND_OTHER,
    KIND_VARIABLE,
    Pytree,
    has_data,
    kind_of,
)

__all__ = ["Fingerprint", "fingerprint"]

_ANY = object()  # an array entry of a registered node: any value matches

_WATCHED = (KIND_VARIABLE, KIND_NODE, KIND_OTHER)


class Fingerprint:
    """A snapshot of the attribute structure of traversed nodes, to tell whether a
    cached traversal is still valid even when attributes were replaced behind
    ``__setattr__``'s back (``vars(m)[k] = v``, ``object.__setattr__``,
    ``functools.cached_property``), which the structural epoch cannot see.

    It records each Pytree's attribute count and every attribute that holds a
    Variable, a graph node or a static value; ``matches()`` compares them by identity
    in C-level loops (never ``==``: a Variable compares values; an equal static value
    replaced by another object only costs a rebuild).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._graphdef import fingerprint, flatten_graph
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> m = M(); fp = fingerprint(flatten_graph(m).nodes)
        >>> fp.matches()
        True
        >>> vars(m)["w"] = nnx.Param(jnp.zeros(2))  # bypasses __setattr__
        >>> fp.matches()
        False
    """

    __slots__ = ("matches",)

    def __init__(self, nodes: tp.Iterable[tp.Any]) -> None:
        dicts: list[dict[str, tp.Any]] = []
        edge_dicts: list[dict[str, tp.Any]] = []
        edge_keys: list[str] = []
        edge_values: list[tp.Any] = []
        registered: list[tuple[tp.Any, tp.Any, list[tp.Any], list[tp.Any]]] = []
        for node in nodes:
            if not isinstance(node, Pytree) or isinstance(node, (list, dict)):
                # Variables and List/Dict: every change goes through methods; a
                # registered graph node type is read through its flatten function
                impl = GRAPH_REGISTRY.get(type(node)) if GRAPH_REGISTRY else None
                if impl is not None:
                    items = impl.items(node)
                    watched = [v if kind_of(v) != KIND_ARRAY else _ANY for _, v in items]
                    registered.append((node, impl, [k for k, _ in items], watched))
                continue
            d = node.__dict__
            dicts.append(d)
            for key, value in d.items():
                if key == "_nnx_trace":
                    continue  # the creation trace never changes (the count covers it)
                kind = kind_of(value)
                # not arrays or containers holding data: a call writes those back
                if kind in _WATCHED or (kind == KIND_CONTAINER and not has_data(value)):
                    edge_dicts.append(d)
                    edge_keys.append(key)
                    edge_values.append(value)
        # True while no node gained or lost an attribute and every Variable/node
        # attribute still holds the same object
        self.matches: tp.Callable[[], bool] = _matcher(dicts, edge_dicts, edge_keys, edge_values)
        if registered:
            self.matches = _with_registered(self.matches, registered)


def _matcher(
    dicts: list[dict[str, tp.Any]],
    edge_dicts: list[dict[str, tp.Any]],
    edge_keys: list[str],
    edge_values: list[tp.Any],
) -> tp.Callable[[], bool]:
    """The check, run on every cached ``nnx.jit`` call, as a closure over its lists."""
    is_, get = operator.is_, dict.get
    sizes = list(map(len, dicts))
    # small ints (<= 256) are shared objects: sizes compare by identity too
    same_size = is_ if all(map(is_, map(len, dicts), sizes)) else operator.eq

    def matches() -> bool:
        return all(map(same_size, map(len, dicts), sizes)) and all(
            map(is_, map(get, edge_dicts, edge_keys), edge_values)
        )

    return matches


def _with_registered(
    base: tp.Callable[[], bool], registered: list[tuple[tp.Any, tp.Any, list[tp.Any], list[tp.Any]]]
) -> tp.Callable[[], bool]:
    """``base`` plus: every registered-type node has the same keys and holds the same
    Variables / nodes / static values (arrays may change)."""

    def same(node: tp.Any, impl: tp.Any, keys: list[tp.Any], watched: list[tp.Any]) -> bool:
        items = impl.items(node)
        return [k for k, _ in items] == keys and all(
            w is _ANY or w is v for w, (_, v) in zip(watched, items)
        )

    def matches() -> bool:
        return base() and all(same(*entry) for entry in registered)

    return matches


def fingerprint(nodes: tp.Iterable[tp.Any]) -> Fingerprint:
    """The :class:`Fingerprint` of the nodes of a traversal (``flatten_graph(x).nodes``)."""
    return Fingerprint(nodes)
