"""Activation functions (the ``jax.nn`` functions, re-exported so that
``nnx.relu`` etc. work) and :class:`PReLU`, the one activation with a parameter.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_nn import relu, gelu
    >>> relu(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    >>> gelu(jnp.zeros(2)).tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax.numpy as jnp
from jax.nn import celu as celu
from jax.nn import elu as elu
from jax.nn import gelu as gelu
from jax.nn import glu as glu
from jax.nn import hard_sigmoid as hard_sigmoid
from jax.nn import hard_silu as hard_silu
from jax.nn import hard_swish as hard_swish
from jax.nn import hard_tanh as hard_tanh
from jax.nn import identity as identity
from jax.nn import leaky_relu as leaky_relu
from jax.nn import log_sigmoid as log_sigmoid
from jax.nn import log_softmax as log_softmax
from jax.nn import logsumexp as logsumexp
from jax.nn import one_hot as one_hot
from jax.nn import relu as relu
from jax.nn import relu6 as relu6
from jax.nn import selu as selu
from jax.nn import sigmoid as sigmoid
from jax.nn import silu as silu
from jax.nn import soft_sign as soft_sign
from jax.nn import softmax as softmax
from jax.nn import softplus as softplus
from jax.nn import standardize as standardize
from jax.nn import swish as swish
from jax.numpy import tanh as tanh

import nnx_graph
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._typing import Array, Dtype, PromoteDtypeFn

__all__ = [
    "PReLU",
    "celu",
    "elu",
    "gelu",
    "glu",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "identity",
    "leaky_relu",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "one_hot",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_sign",
    "softmax",
    "softplus",
    "standardize",
    "swish",
    "tanh",
]


class PReLU(nnx_graph.Module):
    """Parametric ReLU: ``x`` where ``x >= 0``, else ``negative_slope * x``, with
    a learned scalar ``negative_slope`` (a ``Param``).

    Args:
        negative_slope_init: initial value of the slope (default ``0.01``).
        dtype: computation dtype; ``None`` computes in the input's dtype.
        param_dtype: dtype of ``negative_slope`` (default ``float32``).
        promote_dtype: casts ``(inputs, negative_slope)`` to ``dtype`` when
            ``dtype`` is given.
        negative_slope_metadata: metadata for the ``negative_slope`` Param.

    Shapes: any input shape; the output has the input's shape.

    Example::

        >>> import jax.numpy as jnp, nnx_nn
        >>> act = nnx_nn.PReLU(negative_slope_init=0.1)
        >>> act(jnp.array([-2.0, 3.0])).tolist()
        [-0.2..., 3.0]
    """

    def __init__(
        self,
        negative_slope_init: float = 0.01,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        negative_slope_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        self.negative_slope = nnx_graph.Param(
            jnp.asarray(negative_slope_init, dtype=param_dtype), **negative_slope_metadata
        )
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.promote_dtype = promote_dtype

    def __call__(self, inputs: Array) -> Array:
        """Apply the activation elementwise."""
        inputs = jnp.asarray(inputs)
        slope = self.negative_slope[...]
        if self.dtype is not None:
            inputs, slope = self.promote_dtype((inputs, slope), dtype=self.dtype)
        else:
            slope = jnp.asarray(slope, inputs.dtype)
        return jnp.where(inputs >= 0, inputs, slope * inputs)
