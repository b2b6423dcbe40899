"""Normalization layers: ``BatchNorm``, ``LayerNorm``, ``RMSNorm``,
``GroupNorm``, ``InstanceNorm``, ``SpectralNorm`` and ``WeightNorm`` — the
public module behind ``nnx.nn.normalization``.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_nn.normalization import LayerNorm
    >>> y = LayerNorm(3, rngs=nnx_graph.Rngs(0))(jnp.array([[1.0, 2.0, 3.0]]))
    >>> round(float(y.mean()), 6)
    0.0
"""

from nnx_graph import Module
from nnx_graph.module import first_from
from nnx_nn import _dtypes as dtypes
from nnx_nn import initializers
from nnx_nn._batch_norm import BatchNorm
from nnx_nn._normalization import GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from nnx_nn._typing import Array, Axes, Dtype, Initializer, PromoteDtypeFn
from nnx_nn._weight_normalization import SpectralNorm, WeightNorm

__all__ = [
    "Array",
    "Axes",
    "BatchNorm",
    "Dtype",
    "GroupNorm",
    "Initializer",
    "InstanceNorm",
    "LayerNorm",
    "Module",
    "first_from",
    "PromoteDtypeFn",
    "RMSNorm",
    "SpectralNorm",
    "WeightNorm",
    "dtypes",
    "initializers",
]
