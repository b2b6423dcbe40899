"""Embed: a lookup table from integer ids to learned vectors, with ``attend`` for
tied output logits."""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax
import jax.numpy as jnp

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    LayerInputError,
    check_axis_size,
    check_positive_int,
    describe,
    params_key,
)
from nnx_nn._linear import contraction_kwargs
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn

__all__ = ["Embed", "default_embed_init"]

default_embed_init: Initializer = initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


class Embed(nnx_graph.Module):
    """A lookup table from integer ids ``[0, num_embeddings)`` to vectors of size
    ``features``.

    Args:
        num_embeddings: vocabulary size.
        features: embedding size.
        dtype: dtype of the returned vectors (default: the ``embedding``'s).
        param_dtype: dtype of ``embedding`` (default ``float32``).
        embedding_init: initializer (default ``variance_scaling(1, "fan_in",
            "normal", out_axis=0)``).
        promote_dtype: casts ``(embedding,)`` (or ``(query, embedding)`` in
            :meth:`attend`) to ``dtype``.
        rngs: ``Rngs`` whose ``params`` stream initialises ``embedding``.
        embedding_metadata: metadata for the ``embedding`` Param.

    Params: ``embedding`` ``(num_embeddings, features)``.

    Shapes: integer ``(...) -> (..., features)``. Ids out of range give ``nan``
    (the ``jnp.take`` fill value for floats).

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> embed = nnx_nn.Embed(10, 3, rngs=nnx_graph.Rngs(0))
        >>> embed(jnp.array([[1, 2], [3, 4]])).shape
        (2, 2, 3)
        >>> embed.attend(jnp.ones((5, 3))).shape   # logits against every embedding
        (5, 10)
    """

    _config_fields = ("num_embeddings", "features")

    def __init__(
        self,
        num_embeddings: int,
        features: int,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        embedding_init: Initializer = default_embed_init,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        embedding_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        check_positive_int(
            f"Embed(num_embeddings={num_embeddings!r}, features={features!r})",
            num_embeddings=num_embeddings,
            features=features,
        )
        self.embedding = nnx_graph.Param(
            embedding_init(params_key(rngs, self), (num_embeddings, features), param_dtype),
            **embedding_metadata,
        )
        self.num_embeddings = num_embeddings
        self.features = features
        self.dtype = dtype or self.embedding.dtype
        self.param_dtype = param_dtype
        self.promote_dtype = promote_dtype

    def __call__(self, inputs: Array, out_sharding: tp.Any = None) -> Array:
        """Look up the embedding of every id in ``inputs``."""
        inputs = jnp.asarray(inputs)
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise LayerInputError(
                describe(self),
                f"expected integer ids, found inputs of dtype {inputs.dtype}. Fix: cast the "
                "ids, e.g. x.astype(jnp.int32).",
            )
        (embedding,) = self.promote_dtype((self.embedding[...],), dtype=self.dtype, inexact=False)
        if self.num_embeddings == 1:
            return jnp.broadcast_to(embedding, (*inputs.shape, self.features))
        if out_sharding is not None:
            take = jax.sharding.auto_axes(
                lambda table, ids: jnp.take(table, ids, axis=0), out_sharding=out_sharding
            )
            return tp.cast(Array, take(embedding, inputs))
        return jnp.take(embedding, inputs, axis=0)

    def attend(self, query: Array, out_sharding: tp.Any = None) -> Array:
        """Dot ``query`` ``(..., features)`` against every embedding:
        ``(..., num_embeddings)`` logits (weight tying for output layers)."""
        query = jnp.asarray(query)
        check_axis_size(self, query, -1, self.features, "features", name="query")
        query, embedding = self.promote_dtype((query, self.embedding[...]), dtype=self.dtype)
        return jnp.dot(query, embedding.T, **contraction_kwargs(None, out_sharding))
