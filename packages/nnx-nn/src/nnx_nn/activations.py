"""Activation functions (the ``jax.nn`` family) and the learnable ``PReLU``
layer — the public module behind ``nnx.nn.activations``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_nn.activations import relu, PReLU
    >>> relu(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
"""

from nnx_nn import _dtypes as dtypes
from nnx_nn._activations import (
    PReLU,
    celu,
    elu,
    gelu,
    glu,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    identity,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    logsumexp,
    one_hot,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    soft_sign,
    softmax,
    softplus,
    standardize,
    swish,
    tanh,
)
from nnx_nn._typing import Array, Dtype, PromoteDtypeFn

__all__ = [
    "Array",
    "Dtype",
    "PReLU",
    "PromoteDtypeFn",
    "celu",
    "dtypes",
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
