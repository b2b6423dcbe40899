"""Variables under Flax's module path (``flax.nnx.variablelib``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_graph import variablelib
    >>> p = variablelib.Param(jnp.zeros(3))
    >>> isinstance(p, variablelib.Variable), p.value.shape
    (True, (3,))
"""

from __future__ import annotations

import typing as tp

import nnx_graph as _nnx
from nnx_graph import (
    BatchStat,
    Cache,
    Intermediate,
    Param,
    Perturbation,
    Variable,
    VariableMetadata,
    VariableState,
    register_variable_name,
    use_eager_sharding,
    using_eager_sharding,
    var_defaults,
    variable_name_from_type,
    variable_type_from_name,
    with_metadata,
)

A = tp.TypeVar("A")

__all__ = [
    "A",
    "BatchStat",
    "Cache",
    "Intermediate",
    "Param",
    "Perturbation",
    "Variable",
    "VariableMetadata",
    "VariableState",
    "register_variable_name",
    "use_eager_sharding",
    "using_eager_sharding",
    "var_defaults",
    "variable_name_from_type",
    "variable_type_from_name",
    "with_metadata",
]


# Flax names the core has not exported yet: re-exported here as soon as nnx_graph has them.
_PENDING = ("VarDefaults", "AbstractVariable")
globals().update({n: getattr(_nnx, n) for n in _PENDING if hasattr(_nnx, n)})
__all__ += [n for n in _PENDING if hasattr(_nnx, n)]
