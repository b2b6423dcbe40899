"""Sharding: partition annotations on Variables and everything derived from them.

A Variable is annotated with one name per axis in its ``out_sharding`` metadata
(Flax NNX 0.12's key); ``sharding_names`` (what ``with_partitioning`` writes, kept as
written) and ``sharding`` (stored as ``out_sharding`` at creation) are accepted
aliases. A name is a mesh axis (``'model'``), ``None`` for an axis that is not
sharded, a tuple of mesh axes, or a *logical* name (``'embed'``) that
:class:`logical_axis_rules` maps onto a mesh axis. As in JAX, an annotation shorter
than the value's rank leaves the remaining axes unsharded.

From those annotations this module derives ``PartitionSpec`` trees
(:func:`get_partition_spec`), ``NamedSharding`` trees for ``jax.jit``
(:func:`get_named_sharding`) and abstract models whose ``ShapeDtypeStruct`` values
carry their shardings (:func:`get_abstract_model`, :func:`as_abstract`).

Placement at creation ("eager sharding", on by default as in Flax NNX 0.12): when a
Variable with an annotation is created and a mesh is known -- the Variable's ``mesh``
metadata or the mesh set with ``jax.set_mesh`` -- its value is placed right away
(``jax.device_put`` outside transforms; ``jax.sharding.reshard`` for Explicit mesh
axes or ``jax.lax.with_sharding_constraint`` for Auto axes inside them). Unlike Flax,
creating an annotated Variable with no mesh anywhere is not an error: the value stays
where it is and the annotation still drives ``get_named_sharding`` later, so the same
model code runs on one device. A Variable created with ``eager_sharding=True``
metadata insists on placement and raises when it cannot be placed.

The switch is process-wide (it is ``_sharding_hook.eager`` in ``_variables.py``); the
logical axis rules are per thread, like Flax's.
"""

from nnx_graph._sharding_place import (
    abstract_with_sharding,
    add_axis,
    as_abstract,
    get_abstract_model,
    get_named_sharding,
    get_partition_spec,
    remove_axis,
)
from nnx_graph._sharding_spec import (
    PARTITION_NAME,
    ShardingError,
    get_logical_axis_rules,
    logical_axis_rules,
    use_eager_sharding,
    using_eager_sharding,
    with_partitioning,
)

__all__ = [
    "PARTITION_NAME",
    "ShardingError",
    "abstract_with_sharding",
    "add_axis",
    "as_abstract",
    "get_abstract_model",
    "get_logical_axis_rules",
    "get_named_sharding",
    "get_partition_spec",
    "logical_axis_rules",
    "remove_axis",
    "use_eager_sharding",
    "using_eager_sharding",
    "with_partitioning",
]
