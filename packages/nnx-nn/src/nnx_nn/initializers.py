"""Parameter initializers: the ``jax.nn.initializers`` family plus the
``zeros_init()`` / ``ones_init()`` builders that layers use as defaults.

An initializer is a function ``init(key, shape, dtype) -> Array``; the factories
(``lecun_normal()``, ``variance_scaling(...)``, ``normal(stddev)``, ...) return one.
Layers take them as ``kernel_init=``, ``bias_init=``, ``embedding_init=``, ...

Example::

    >>> import jax, jax.numpy as jnp
    >>> from nnx_nn import initializers
    >>> init = initializers.lecun_normal()
    >>> init(jax.random.key(0), (3, 4), jnp.float32).shape
    (3, 4)
    >>> initializers.zeros_init()(jax.random.key(0), (2,), jnp.float32).tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

import typing as tp

from jax.nn.initializers import constant as constant
from jax.nn.initializers import delta_orthogonal as delta_orthogonal
from jax.nn.initializers import glorot_normal as glorot_normal
from jax.nn.initializers import glorot_uniform as glorot_uniform
from jax.nn.initializers import he_normal as he_normal
from jax.nn.initializers import he_uniform as he_uniform
from jax.nn.initializers import kaiming_normal as kaiming_normal
from jax.nn.initializers import kaiming_uniform as kaiming_uniform
from jax.nn.initializers import lecun_normal as lecun_normal
from jax.nn.initializers import lecun_uniform as lecun_uniform
from jax.nn.initializers import normal as normal
from jax.nn.initializers import ones as ones
from jax.nn.initializers import orthogonal as orthogonal
from jax.nn.initializers import truncated_normal as truncated_normal
from jax.nn.initializers import uniform as uniform
from jax.nn.initializers import variance_scaling as variance_scaling
from jax.nn.initializers import xavier_normal as xavier_normal
from jax.nn.initializers import xavier_uniform as xavier_uniform
from jax.nn.initializers import zeros as zeros

from nnx_nn._typing import Initializer

__all__ = [
    "DtypeLikeInexact",
    "Initializer",
    "constant",
    "delta_orthogonal",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "ones_init",
    "orthogonal",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
    "zeros_init",
]

DtypeLikeInexact = tp.Any
"""A floating or complex dtype (annotation only)."""


def zeros_init() -> Initializer:
    """An initializer returning an array of zeros.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from nnx_nn import initializers
        >>> initializers.zeros_init()(jax.random.key(0), (2, 2), jnp.float32).tolist()
        [[0.0, 0.0], [0.0, 0.0]]
    """
    return zeros


def ones_init() -> Initializer:
    """An initializer returning an array of ones.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from nnx_nn import initializers
        >>> initializers.ones_init()(jax.random.key(0), (3,), jnp.float32).tolist()
        [1.0, 1.0, 1.0]
    """
    return ones
