"""Sharding helpers under Flax's module path (``flax.nnx.spmd``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import nnx_graph
    >>> from nnx_graph import spmd
    >>> spmd.get_partition_spec is nnx_graph.get_partition_spec
    True
"""

from __future__ import annotations

import typing as tp

from jax.sharding import PartitionSpec

from nnx_graph import _sharding_place
from nnx_graph._sharding_place import *  # noqa: F403
from nnx_graph._sharding_place import get_partition_spec
from nnx_graph._sharding_spec import PARTITION_NAME, with_partitioning
from nnx_graph._variables import Variable


def get_var_pspec(v: Variable[tp.Any]) -> PartitionSpec | None:
    """The ``PartitionSpec`` of one Variable from its sharding metadata (logical names
    resolved by the active rules); ``P()`` for an unannotated array, None for a
    Variable without an array value.

    Example::

        >>> import jax.numpy as jnp, nnx_graph
        >>> from nnx_graph.spmd import get_var_pspec
        >>> get_var_pspec(nnx_graph.Param(jnp.zeros((2, 4)), sharding_names=(None, "model")))
        P(None, 'model')
    """
    if not hasattr(v.value, "shape"):
        return None
    spec = get_partition_spec(v)
    value = spec.value if isinstance(spec, Variable) else spec
    return value if isinstance(value, PartitionSpec) else None


__all__ = ["PARTITION_NAME", "PartitionSpec", "get_var_pspec", "with_partitioning"]
__all__ += _sharding_place.__all__
