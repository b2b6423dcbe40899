"""Pytree base classes under Flax's module paths (``flax.nnx.pytreelib``, also
``flax.nnx.object``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from nnx_graph import pytreelib
    >>> class Point(pytreelib.Pytree):
    ...     def __init__(self):
    ...         self.xy = jnp.zeros(2)
    >>> len(jax.tree.leaves(Point()))
    1
"""

from __future__ import annotations

from nnx_graph import (
    Data,
    Object,
    Pytree,
    Static,
    check_pytree,
    data,
    dataclass,
    has_data,
    is_data,
    register_data_type,
    static,
)

__all__ = [
    "Data",
    "Object",
    "Pytree",
    "Static",
    "check_pytree",
    "data",
    "dataclass",
    "has_data",
    "is_data",
    "register_data_type",
    "static",
]
