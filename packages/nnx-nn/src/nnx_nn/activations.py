"""Activation functions (the ``jax.nn`` family) and the learnable ``PReLU``
layer — the public module behind ``nnx.nn.activations``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_nn.activations import relu, PReLU
    >>> relu(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
"""

from nnx_nn import _activations
from nnx_nn import _dtypes as dtypes
from nnx_nn._activations import *  # noqa: F403
from nnx_nn._typing import Array, Dtype, PromoteDtypeFn

__all__ = ["Array", "Dtype", "PromoteDtypeFn", "dtypes"]
__all__ += _activations.__all__
