"""A GraphDef made displayable: the object graph it describes, rebuilt with the public
graph API (``nnx.merge``) around placeholder leaves, so a GraphDef renders as the tree
of node types, attribute names, static values and Variable types/metadata it holds."""

from __future__ import annotations

import typing as tp

import nnx_graph

__all__ = ["Leaf", "graphdef_structure"]


class Leaf:
    """Stands in for a value the GraphDef does not hold (it lives in the State)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<leaf>"


LEAF = Leaf()


def graphdef_structure(graphdef: nnx_graph.GraphDef[tp.Any]) -> tp.Any:
    """The object graph described by ``graphdef``, with :data:`LEAF` as every
    Variable value and array. Building it runs no ``__init__``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        ...         self.size = 2
        >>> structure = graphdef_structure(nnx.graphdef(M()))
        >>> type(structure).__name__, structure.w.raw_value, structure.size
        ('M', <leaf>, 2)
    """
    leaves = nnx_graph.FlatState([(path, LEAF) for path in graphdef.leaf_paths], sort=False)
    return nnx_graph.merge(graphdef, leaves)
