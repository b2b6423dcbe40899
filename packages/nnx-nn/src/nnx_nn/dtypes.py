"""Dtype helpers used by every layer — the public module behind
``nnx.nn.dtypes``: ``canonicalize_dtype`` picks the computation dtype of some
inputs, ``promote_dtype`` casts them all to it.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_nn.dtypes import canonicalize_dtype, promote_dtype
    >>> canonicalize_dtype(jnp.ones(2, jnp.int32))
    dtype('float32')
    >>> [a.dtype for a in promote_dtype((jnp.ones(2, jnp.bfloat16), jnp.ones(2)))]
    [dtype('float32'), dtype('float32')]
"""

from nnx_nn._dtypes import T, canonicalize_dtype, promote_dtype
from nnx_nn._typing import Dtype

__all__ = ["Dtype", "T", "canonicalize_dtype", "promote_dtype"]
