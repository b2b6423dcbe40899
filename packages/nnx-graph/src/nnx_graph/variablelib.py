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

from nnx_graph import _variables
from nnx_graph._hijax import HijaxVariable
from nnx_graph._sharding import use_eager_sharding, using_eager_sharding
from nnx_graph._variable_names import (
    AbstractVariable,
    VarDefaults,
    register_variable_name,
    var_defaults,
    variable_name_from_type,
    variable_type_from_name,
)
from nnx_graph._variables import *  # noqa: F403

A = tp.TypeVar("A")

__all__ = [
    "A",
    "AbstractVariable",
    "HijaxVariable",
    "VarDefaults",
    "register_variable_name",
    "use_eager_sharding",
    "using_eager_sharding",
    "var_defaults",
    "variable_name_from_type",
    "variable_type_from_name",
]
__all__ += _variables.__all__
