"""User types registered as graph nodes (``register_graph_node_type``): the graph
API traverses them with identity like Modules, reading their entries with the
given ``flatten`` and rebuilding them with ``create_empty`` + ``init``."""

from __future__ import annotations

import typing as tp

import nnx_graph._kinds as _kinds
from nnx_graph._variables import Variable

__all__ = [
    "GRAPH_REGISTRY",
    "PYTREE_REGISTRY",
    "GraphNodeImpl",
    "PytreeNodeImpl",
    "register_graph_node_type",
    "register_pytree_node_type",
]

Node = tp.Any
Key = tp.Any
Leaf = tp.Any
AuxData = tp.Any


class GraphNodeImpl(tp.NamedTuple):
    """How the graph API reads and rebuilds one registered type."""

    type: type
    flatten: tp.Callable[[Node], tuple[tp.Sequence[tuple[Key, Leaf]], AuxData]]
    set_key: tp.Callable[[Node, Key, Leaf], None]
    pop_key: tp.Callable[[Node, Key], Leaf]
    create_empty: tp.Callable[[AuxData], Node]
    clear: tp.Callable[[Node], None]
    init: tp.Callable[[Node, tp.Iterable[tuple[Key, Leaf]]], None]

    def items(self, node: Node) -> list[tuple[Key, Leaf]]:
        return list(self.flatten(node)[0])


GRAPH_REGISTRY: dict[type, GraphNodeImpl] = {}


def register_graph_node_type(
    type: type,
    flatten: tp.Callable[[Node], tuple[tp.Sequence[tuple[Key, Leaf]], AuxData]],
    set_key: tp.Callable[[Node, Key, Leaf], None],
    pop_key: tp.Callable[[Node, Key], Leaf],
    create_empty: tp.Callable[[AuxData], Node],
    clear: tp.Callable[[Node], None],
    init: tp.Callable[[Node, tp.Iterable[tuple[Key, Leaf]]], None],
) -> None:
    """Make instances of ``type`` graph nodes: ``nnx.split``/``merge``/``state``,
    Module attributes and the transforms treat them like Modules (with identity,
    so sharing is kept), their entries being ``flatten(node)[0]`` (``(key,
    value)`` pairs; ``flatten(node)[1]`` is hashable static data given back to
    ``create_empty``). ``init(node, pairs)`` fills an empty node, ``set_key`` /
    ``pop_key`` / ``clear`` change one in place.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph.graphlib import register_graph_node_type
        >>> class Bag:
        ...     def __init__(self):
        ...         self.items = {}
        >>> register_graph_node_type(
        ...     Bag,
        ...     flatten=lambda b: (sorted(b.items.items()), None),
        ...     set_key=lambda b, k, v: b.items.__setitem__(k, v),
        ...     pop_key=lambda b, k: b.items.pop(k),
        ...     create_empty=lambda aux: Bag(),
        ...     clear=lambda b: b.items.clear(),
        ...     init=lambda b, pairs: b.items.update(pairs),
        ... )
        >>> bag = Bag(); bag.items["w"] = nnx.Param(jnp.ones(2))
        >>> graphdef, state = nnx.split(bag)
        >>> list(state), type(nnx.merge(graphdef, state)).__name__
        (['w'], 'Bag')
    """
    if type in GRAPH_REGISTRY:
        raise ValueError(
            f"Node type {type} is already registered. Expected each type to be "
            "registered once. Fix: register it once, at import time."
        )
    if issubclass(type, _kinds.NODE_TYPES) or issubclass(type, Variable):
        raise ValueError(
            f"register_graph_node_type: {type.__name__} is already a graph node or a "
            "Variable (Pytree, Module, nnx.List, nnx.Dict). Fix: do not register it."
        )
    GRAPH_REGISTRY[type] = GraphNodeImpl(type, flatten, set_key, pop_key, create_empty, clear, init)
    _kinds.NODE_TYPES = (*_kinds.NODE_TYPES, type)
    _kinds._KINDS.clear()  # decided per type: decide again


class PytreeNodeImpl(tp.NamedTuple):
    """How the graph API reads and rebuilds one registered pytree-like type."""

    type: type
    flatten: tp.Callable[[Node], tuple[tp.Sequence[tuple[Key, Leaf]], AuxData]]
    unflatten: tp.Callable[[tp.Sequence[tuple[Key, Leaf]], AuxData], Node]
    set_key: tp.Callable[[Node, Key, Leaf], None] | None
    pop_key: tp.Callable[[Node, Key], Leaf] | None

    def child(self, node: Node, key: Key) -> Leaf:
        return dict(self.flatten(node)[0])[key]

    def replace(self, node: Node, key: Key, value: Leaf) -> Node:
        pairs, aux = self.flatten(node)
        return self.unflatten([(k, value if k == key else v) for k, v in pairs], aux)


PYTREE_REGISTRY: dict[type, PytreeNodeImpl] = {}


def register_pytree_node_type(
    type: type,
    flatten: tp.Callable[[Node], tuple[tp.Sequence[tuple[Key, Leaf]], AuxData]],
    unflatten: tp.Callable[[tp.Sequence[tuple[Key, Leaf]], AuxData], Node],
    *,
    set_key: tp.Callable[[Node, Key, Leaf], None] | None = None,
    pop_key: tp.Callable[[Node, Key], Leaf] | None = None,
) -> None:
    """Make instances of ``type`` containers for the graph API, like tuples and
    dicts: no identity (a copy is made when rebuilt), entries ``flatten(node)[0]``
    (``(key, value)`` pairs), rebuilt with ``unflatten(pairs, aux)``. As in Flax, a
    Module attribute holding one is static unless assigned with ``nnx.data(...)``;
    ``nnx.split`` also takes one directly. (This does not register the type with
    JAX; use ``jax.tree_util`` for that.)

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph.graphlib import register_pytree_node_type
        >>> class Point:
        ...     def __init__(self, x, y):
        ...         self.x, self.y = x, y
        >>> register_pytree_node_type(
        ...     Point,
        ...     flatten=lambda p: ([("x", p.x), ("y", p.y)], None),
        ...     unflatten=lambda pairs, aux: Point(**dict(pairs)),
        ... )
        >>> graphdef, state = nnx.split(Point(nnx.Param(jnp.ones(1)), jnp.zeros(2)))
        >>> sorted(state), type(nnx.merge(graphdef, state)).__name__
        (['x', 'y'], 'Point')
    """
    if type in PYTREE_REGISTRY:
        raise ValueError(
            f"Node type {type} is already registered. Expected each type to be "
            "registered once. Fix: register it once, at import time."
        )
    PYTREE_REGISTRY[type] = PytreeNodeImpl(type, flatten, unflatten, set_key, pop_key)
