"""Dense and convolutional layers: ``Linear``, ``LinearGeneral``, ``Einsum``,
``Conv``, ``ConvTranspose`` and ``Embed`` with their default initializers — the
public module behind ``nnx.nn.linear``.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_nn.linear import Einsum
    >>> layer = Einsum("bd,df->bf", (4, 5), rngs=nnx_graph.Rngs(0))
    >>> layer(jnp.ones((2, 4))).shape
    (2, 5)
"""

from nnx_graph import Module
from nnx_graph.module import first_from
from nnx_nn import _dtypes as dtypes
from nnx_nn import initializers
from nnx_nn._conv import Conv, ConvTranspose, canonicalize_padding
from nnx_nn._embed import Embed, default_embed_init
from nnx_nn._linear import (
    Einsum,
    Linear,
    LinearGeneral,
    default_bias_init,
    default_kernel_init,
)
from nnx_nn._typing import (
    Array,
    ConvGeneralDilatedT,
    DotGeneralT,
    Dtype,
    EinsumT,
    Initializer,
    PaddingLike,
    PrecisionLike,
    PromoteDtypeFn,
    Shape,
)

Axis = int
"""An axis index (may be negative)."""
Size = int
"""A dimension size."""
LaxPadding = str | tuple[tuple[int, int], ...]
"""Padding in the form ``jax.lax`` takes it: a mode name or ``(low, high)`` pairs."""

__all__ = [
    "Array",
    "Axis",
    "Conv",
    "ConvGeneralDilatedT",
    "DotGeneralT",
    "ConvTranspose",
    "Dtype",
    "Einsum",
    "Embed",
    "EinsumT",
    "Initializer",
    "LaxPadding",
    "Linear",
    "LinearGeneral",
    "Module",
    "first_from",
    "PaddingLike",
    "PrecisionLike",
    "PromoteDtypeFn",
    "Shape",
    "Size",
    "canonicalize_padding",
    "default_bias_init",
    "default_embed_init",
    "default_kernel_init",
    "dtypes",
    "initializers",
]
