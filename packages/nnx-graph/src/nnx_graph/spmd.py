"""Sharding helpers under Flax's module path (``flax.nnx.spmd``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import nnx_graph
    >>> from nnx_graph import spmd
    >>> spmd.get_partition_spec is nnx_graph.get_partition_spec
    True
"""

from __future__ import annotations

from nnx_graph import (
    abstract_with_sharding,
    add_axis,
    as_abstract,
    get_abstract_model,
    get_named_sharding,
    get_partition_spec,
    remove_axis,
    with_partitioning,
)

__all__ = [
    "abstract_with_sharding",
    "add_axis",
    "as_abstract",
    "get_abstract_model",
    "get_named_sharding",
    "get_partition_spec",
    "remove_axis",
    "with_partitioning",
]
