"""Low-rank adaptation: ``LoRA``, ``LoRALinear`` and the ``LoRAParam`` Variable
type — the public module behind ``nnx.nn.lora``.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_nn.lora import LoRA
    >>> LoRA(3, 2, 4, rngs=nnx_graph.Rngs(0))(jnp.ones((1, 3))).shape
    (1, 4)
"""

from nnx_graph import Module
from nnx_nn import _dtypes as dtypes
from nnx_nn import initializers
from nnx_nn._linear import Linear
from nnx_nn._lora import (
    A,
    LoRA,
    LoRALinear,
    LoRAParam,
    default_a_initializer,
    default_b_initializer,
)
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn

Axis = int
"""An axis index (may be negative)."""
Size = int
"""A dimension size."""

__all__ = [
    "A",
    "Array",
    "Axis",
    "Dtype",
    "Initializer",
    "Linear",
    "LoRA",
    "LoRALinear",
    "LoRAParam",
    "Module",
    "PromoteDtypeFn",
    "Size",
    "default_a_initializer",
    "default_b_initializer",
    "dtypes",
    "initializers",
]
