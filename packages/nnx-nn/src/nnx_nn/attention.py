"""Attention: the functional core (``dot_product_attention``,
``dot_product_attention_weights``), mask builders (``make_attention_mask``,
``make_causal_mask``, ``combine_masks``) and the ``MultiHeadAttention`` layer —
the public module behind ``nnx.nn.attention``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_nn.attention import combine_masks, make_causal_mask
    >>> mask = combine_masks(make_causal_mask(jnp.ones((1, 3))), None)
    >>> mask.shape, mask[0, 0].astype(int).tolist()
    ((1, 1, 3, 3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
"""

from nnx_graph import Module
from nnx_graph.module import first_from
from nnx_nn import _dtypes as dtypes
from nnx_nn import initializers
from nnx_nn._attention import (
    combine_masks,
    dot_product_attention,
    dot_product_attention_weights,
    make_attention_mask,
    make_causal_mask,
)
from nnx_nn._linear import LinearGeneral, default_kernel_init
from nnx_nn._multihead import MultiHeadAttention
from nnx_nn._normalization import LayerNorm
from nnx_nn._typing import (
    Array,
    DotGeneralT,
    Dtype,
    Initializer,
    PrecisionLike,
    PromoteDtypeFn,
    Shape,
)

__all__ = [
    "Array",
    "DotGeneralT",
    "Dtype",
    "Initializer",
    "LayerNorm",
    "LinearGeneral",
    "Module",
    "first_from",
    "MultiHeadAttention",
    "PrecisionLike",
    "PromoteDtypeFn",
    "Shape",
    "combine_masks",
    "default_kernel_init",
    "dot_product_attention",
    "dot_product_attention_weights",
    "dtypes",
    "initializers",
    "make_attention_mask",
    "make_causal_mask",
]
