"""Flax's older module path for the Pytree base classes (``flax.nnx.object``): the
same names as :mod:`nnx_graph.pytreelib`.

Example::

    >>> from nnx_graph import object as nnx_object, pytreelib
    >>> nnx_object.Pytree is pytreelib.Pytree
    True
"""

from __future__ import annotations

from nnx_graph.pytreelib import (
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
