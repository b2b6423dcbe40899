"""The object-graph API under Flax's module path (``flax.nnx.graphlib``/``nnx.graph``).

Every name here is the same object as ``nnx_graph.<name>``; this module only gives
code written against ``flax.nnx.graphlib`` (or ``flax.nnx.graph``) a place to import
from.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_graph import graphlib
    >>> graphdef, state = graphlib.split(nnx_graph.Dict(w=nnx_graph.Param(jnp.ones(2))))
    >>> graphlib.merge(graphdef, state)["w"].value.tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator

import jax

import nnx_graph as _nnx
from nnx_graph import (
    GraphDef,
    GraphState,
    Module,
    State,
    UpdateContext,
    Variable,
    as_pure,
    cached_partial,
    call,
    clone,
    current_update_context,
    find_duplicates,
    flatten,
    graphdef,
    iter_children,
    iter_graph,
    map,
    merge,
    pop,
    pure,
    recursive_map,
    set_graph_mode,
    set_graph_updates,
    set_metadata,
    split,
    state,
    unflatten,
    unpack,
    update,
    update_context,
    variables,
    vars_as,
    with_vars,
)
from nnx_graph._flat_graphdef import LEAF_ATTR, NODE_ATTR, LeafAttr, NodeAttr, Static
from nnx_graph._graph_contexts import UpdateContextManager
from nnx_graph._graph_registry import register_graph_node_type, register_pytree_node_type
from nnx_graph._pytree import is_graph_node as _is_graph_node
from nnx_graph._records import NodeDef, RefDef, VariableDef

NodeRef = RefDef  # Flax's name for a reference to an earlier node

A = tp.TypeVar("A")


def iter_module_children(
    node: tp.Any, /, *, graph: bool | None = None
) -> Iterator[tuple[tp.Any, Module]]:
    """``(key, child)`` for the immediate children of ``node`` that are Modules.

    Like :func:`iter_children`, without the Variables and non-Module graph nodes.
    ``graph`` is accepted for Flax compatibility.

    Example::

        >>> import jax.numpy as jnp, nnx_graph
        >>> from nnx_graph.graphlib import iter_module_children
        >>> class Inner(nnx_graph.Module): pass
        >>> class Outer(nnx_graph.Module):
        ...     def __init__(self):
        ...         self.inner = Inner()
        ...         self.w = nnx_graph.Param(jnp.ones(1))
        >>> [(k, type(m).__name__) for k, m in iter_module_children(Outer())]
        [('inner', 'Inner')]
    """
    for key, child in iter_children(node, graph=graph):
        if isinstance(child, Module):
            yield key, child


def is_graph_node(x: tp.Any) -> bool:
    """True for objects the graph API traverses with identity: Modules, Pytrees,
    ``nnx.List``/``nnx.Dict`` and registered graph node types.

    Example::

        >>> import nnx_graph
        >>> from nnx_graph.graphlib import is_graph_node
        >>> is_graph_node(nnx_graph.Module()), is_graph_node((1, 2))
        (True, False)
    """
    return _is_graph_node(x)


def is_node(x: tp.Any) -> bool:
    """True for what the graph API descends into: graph nodes (Modules, Pytrees,
    nnx.List/Dict) and JAX pytree containers (tuples, lists, dicts, None); False for
    Variables and leaves such as arrays.

    Example::

        >>> import jax.numpy as jnp, nnx_graph
        >>> from nnx_graph.graphlib import is_node
        >>> is_node(nnx_graph.Module()), is_node((1, 2)), is_node(jnp.ones(1))
        (True, True, False)
        >>> is_node(nnx_graph.Param(jnp.ones(1)))
        False
    """
    if isinstance(x, Variable):
        return False
    return _is_graph_node(x) or not jax.tree_util.all_leaves([x])


__all__ = [
    "A",
    "is_node",
    "GraphDef",
    "GraphState",
    "LEAF_ATTR",
    "LeafAttr",
    "NODE_ATTR",
    "NodeAttr",
    "NodeDef",
    "NodeRef",
    "VariableDef",
    "State",
    "Static",
    "UpdateContext",
    "UpdateContextManager",
    "Variable",
    "as_pure",
    "cached_partial",
    "call",
    "clone",
    "current_update_context",
    "find_duplicates",
    "flatten",
    "graphdef",
    "is_graph_node",
    "iter_children",
    "iter_graph",
    "iter_module_children",
    "map",
    "merge",
    "pop",
    "pure",
    "recursive_map",
    "register_graph_node_type",
    "register_pytree_node_type",
    "set_graph_mode",
    "set_graph_updates",
    "set_metadata",
    "split",
    "state",
    "unflatten",
    "unpack",
    "update",
    "update_context",
    "variables",
    "vars_as",
    "with_vars",
]


# Flax names the core has not exported yet: re-exported here as soon as nnx_graph has them.
_PENDING = (
    "SplitContext",
    "MergeContext",
    "split_context",
    "merge_context",
)
globals().update({n: getattr(_nnx, n) for n in _PENDING if hasattr(_nnx, n)})
__all__ += [n for n in _PENDING if hasattr(_nnx, n)]
