"""Type aliases shared by the layer modules (annotations only, no behaviour)."""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Sequence

import jax

__all__ = [
    "Array",
    "Axes",
    "ConvGeneralDilatedT",
    "DotGeneralT",
    "EinsumT",
    "Dtype",
    "Initializer",
    "PaddingLike",
    "PrecisionLike",
    "PromoteDtypeFn",
    "Shape",
]

Array = jax.Array
Dtype = tp.Any
"""Anything ``jnp.dtype`` accepts: ``jnp.float32``, ``"bfloat16"``, ``np.dtype(...)``."""
Shape = Sequence[int]
Axes = int | Sequence[int]
PrecisionLike = tp.Any
"""``None``, a ``jax.lax.Precision``, its string name, or a pair of them."""
PaddingLike = str | int | Sequence[int | tuple[int, int]]
Initializer = Callable[..., tp.Any]
"""``init(key, shape, dtype) -> Array`` (the ``jax.nn.initializers`` protocol)."""
PromoteDtypeFn = Callable[..., tp.Any]
"""``promote(arrays: tuple, *, dtype=None, inexact=True) -> tuple`` of cast arrays."""
DotGeneralT = Callable[..., jax.Array]
"""A ``jax.lax.dot_general``-like function (``dot_general=`` of the layers)."""
ConvGeneralDilatedT = Callable[..., jax.Array]
"""A ``jax.lax.conv_general_dilated``-like function (``conv_general_dilated=``)."""
EinsumT = Callable[..., jax.Array]
"""A ``jnp.einsum``-like function (``einsum_op=`` of ``Einsum``)."""
