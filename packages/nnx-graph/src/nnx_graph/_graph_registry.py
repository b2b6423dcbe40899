"""User types registered as graph nodes (``register_graph_node_type``): the graph
API traverses them with identity like Modules, reading their entries with the
given ``flatten`` and rebuilding them with ``create_empty`` + ``init``."""

from __future__ import annotations

import typing as tp

import nnx_graph._kinds as _kinds
from nnx_graph._variables import Variable

__all__ = ["GRAPH_REGISTRY", "GraphNodeImpl", "register_graph_node_type"]

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
