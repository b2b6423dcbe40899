"""Scaled dot-product attention and the helpers that build attention masks.

Shapes follow the ``[batch..., length, heads, depth]`` convention; attention
weights are ``[batch..., heads, q_length, kv_length]``. Fewer key/value heads than
query heads (grouped-query attention) are supported: each key/value head serves
``q_heads // kv_heads`` consecutive query heads.
"""

from __future__ import annotations

import math
import typing as tp

import jax
import jax.numpy as jnp

import nnx_graph
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import InputShapeError
from nnx_nn._typing import Array, Dtype, PrecisionLike, PromoteDtypeFn

__all__ = [
    "combine_masks",
    "dot_product_attention",
    "dot_product_attention_weights",
    "make_attention_mask",
    "make_causal_mask",
]


_finfo: tp.Callable[[tp.Any], tp.Any] = jnp.finfo  # untyped in jax's stubs


def _check_qkv(fn: str, query: Array, key: Array, value: Array | None = None) -> None:
    arrays = [("query", query), ("key", key)] + ([("value", value)] if value is not None else [])
    shapes = ", ".join(f"{name} {a.shape}" for name, a in arrays)
    if any(a.ndim != query.ndim for _, a in arrays) or query.ndim < 3:
        raise InputShapeError(
            fn,
            f"expected query/key/value of the same rank, each [batch..., length, heads, "
            f"depth], found {shapes}. Fix: give all of them the same batch axes.",
        )
    if any(a.shape[:-3] != query.shape[:-3] for _, a in arrays):
        raise InputShapeError(
            fn,
            f"query/key/value batch dims must match: expected the same batch axes, found {shapes}.",
        )
    if query.shape[-1] != key.shape[-1]:
        raise InputShapeError(
            fn,
            f"q, k depths must match: expected query and key of the same depth (last "
            f"axis), found {shapes}. Fix: "
            "project them to the same qk depth per head.",
        )
    if query.shape[-2] % key.shape[-2]:
        raise InputShapeError(
            fn,
            f"the number of query heads ({query.shape[-2]}) must be a multiple of the number "
            f"of key/value heads ({key.shape[-2]}), found {shapes}.",
        )
    if value is not None and (key.shape[-3] != value.shape[-3] or key.shape[-2] != value.shape[-2]):
        raise InputShapeError(
            fn,
            f"k, v lengths must match: expected key and value with the same length and "
            f"heads, found {shapes}.",
        )


def dot_product_attention_weights(
    query: Array,
    key: Array,
    bias: Array | None = None,
    mask: Array | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Dtype | None = None,
    precision: PrecisionLike = None,
    module: nnx_graph.Module | None = None,
    promote_dtype: PromoteDtypeFn = default_promote_dtype,
    is_causal: bool = False,
) -> Array:
    """Attention weights ``softmax(q · k / sqrt(depth) + bias)`` with masking and
    optional dropout.

    Args:
        query: ``[batch..., q_length, heads, depth]``.
        key: ``[batch..., kv_length, kv_heads, depth]`` (``heads`` a multiple of
            ``kv_heads``).
        bias: added to the logits; broadcastable to
            ``[batch..., heads, q_length, kv_length]``.
        mask: same broadcast shape; ``False`` entries are masked out.
        broadcast_dropout: share the dropout mask across batch and heads.
        dropout_rng: key for dropout (needed when it is active).
        dropout_rate: probability of dropping a weight.
        deterministic: disable dropout.
        dtype: computation dtype (default: inferred from query and key).
        precision: ``jax.lax.Precision`` of the einsum.
        module: if given, the weights are sown on it as
            ``Intermediate`` ``attention_weights``.
        promote_dtype: casts ``(query, key)`` to one dtype.
        is_causal: also apply a causal (lower-triangular) mask.

    Returns:
        ``[batch..., heads, q_length, kv_length]`` weights.

    Example::

        >>> import jax.numpy as jnp, nnx_nn
        >>> q = k = jnp.ones((2, 5, 4, 8))
        >>> w = nnx_nn.dot_product_attention_weights(q, k, is_causal=True)
        >>> w.shape, w[0, 0, 0].tolist()
        ((2, 4, 5, 5), [1.0, 0.0, 0.0, 0.0, 0.0])
    """
    query, key = promote_dtype((jnp.asarray(query), jnp.asarray(key)), dtype=dtype)
    dtype = query.dtype
    _check_qkv("dot_product_attention_weights", query, key)
    q_heads, kv_heads = query.shape[-2], key.shape[-2]
    grouped = q_heads != kv_heads
    if grouped:
        query = query.reshape((*query.shape[:-2], kv_heads, q_heads // kv_heads, query.shape[-1]))
        key = jnp.expand_dims(key, axis=-2)
        equation = "...qhgd,...kh1d->...hgqk"
    else:
        equation = "...qhd,...khd->...hqk"
    query = query / jnp.sqrt(query.shape[-1]).astype(dtype)
    weights = jnp.einsum(equation, query, key, precision=precision)
    if grouped:
        weights = weights.reshape((*weights.shape[:-4], q_heads, *weights.shape[-2:]))
    if bias is not None:
        weights = weights + bias
    if mask is not None or is_causal:
        masks = [] if mask is None else [mask]
        if is_causal:
            q_len, kv_len = weights.shape[-2:]
            causal = jnp.tril(jnp.ones((q_len, kv_len), dtype=dtype))
            masks.append(
                jnp.broadcast_to(causal, mask.shape if mask is not None else weights.shape)
            )
        combined = combine_masks(*masks, dtype=dtype)
        assert combined is not None
        weights = jnp.where(combined, weights, _finfo(dtype).min)
    weights = jax.nn.softmax(weights).astype(dtype)
    if module is not None:
        module.sow(nnx_graph.Intermediate, "attention_weights", weights)
    if not deterministic and dropout_rate > 0.0:
        if dropout_rng is None:
            raise ValueError(
                "dot_product_attention_weights: dropout is active (deterministic=False, "
                f"dropout_rate={dropout_rate}) but dropout_rng is None. Fix: pass "
                "dropout_rng=rngs.dropout() or deterministic=True."
            )
        keep_prob = 1.0 - dropout_rate
        if broadcast_dropout:
            base_ndim = key.ndim - 1 if grouped else key.ndim
            shape = (1,) * (base_ndim - 2) + weights.shape[-2:]
        else:
            shape = weights.shape
        keep = jax.random.bernoulli(dropout_rng, keep_prob, shape)
        weights = weights * (keep.astype(dtype) / jnp.asarray(keep_prob, dtype=dtype))
    return weights


def dot_product_attention(
    query: Array,
    key: Array,
    value: Array,
    bias: Array | None = None,
    mask: Array | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Dtype | None = None,
    precision: PrecisionLike = None,
    module: nnx_graph.Module | None = None,
    promote_dtype: PromoteDtypeFn = default_promote_dtype,
    is_causal: bool = False,
) -> Array:
    """Scaled dot-product attention: ``softmax(q · k / sqrt(depth)) · v``.

    Arguments as in :func:`dot_product_attention_weights`, plus ``value``
    ``[batch..., kv_length, kv_heads, v_depth]``. Without dropout and sowing this
    calls ``jax.nn.dot_product_attention`` (which may use a fused kernel).

    Returns:
        ``[batch..., q_length, heads, v_depth]``.

    Example::

        >>> import jax.numpy as jnp, nnx_nn
        >>> q = jnp.ones((2, 5, 4, 8)); kv = jnp.ones((2, 7, 4, 8))
        >>> nnx_nn.dot_product_attention(q, kv, kv).shape
        (2, 5, 4, 8)
    """
    query, key, value = promote_dtype(
        (jnp.asarray(query), jnp.asarray(key), jnp.asarray(value)), dtype=dtype
    )
    _check_qkv("dot_product_attention", query, key, value)
    if dropout_rate == 0.0 and module is None:
        shape = query.shape
        if query.ndim > 4:

            def flat(x: Array) -> Array:
                return jnp.reshape(x, (math.prod(x.shape[:-3]), *x.shape[-3:]))

            query, key, value = flat(query), flat(key), flat(value)
            bias = None if bias is None else flat(bias)
            mask = None if mask is None else flat(mask)
        bool_mask = None if mask is None else jnp.asarray(mask).astype(jnp.bool_)
        out = jax.nn.dot_product_attention(query, key, value, bias, bool_mask, is_causal=is_causal)
        return jnp.reshape(out, shape) if len(shape) > 4 else out

    weights = dot_product_attention_weights(
        query,
        key,
        bias,
        mask,
        broadcast_dropout,
        dropout_rng,
        dropout_rate,
        deterministic,
        query.dtype,
        precision,
        module,
        promote_dtype,
        is_causal,
    )
    q_heads, v_heads = weights.shape[-3], value.shape[-2]
    if q_heads != v_heads:
        group = q_heads // v_heads
        weights = weights.reshape((*weights.shape[:-3], v_heads, group, *weights.shape[-2:]))
        out = jnp.einsum(
            "...hgqk,...kh1d->...qhgd", weights, jnp.expand_dims(value, -2), precision=precision
        )
        return out.reshape((*out.shape[:-3], q_heads, out.shape[-1]))
    return jnp.einsum("...hqk,...khd->...qhd", weights, value, precision=precision)


def make_attention_mask(
    query_input: Array,
    key_input: Array,
    pairwise_fn: tp.Callable[..., tp.Any] = jnp.multiply,
    extra_batch_dims: int = 0,
    dtype: Dtype = jnp.float32,
) -> Array:
    """A ``[batch..., 1, q_length, kv_length]`` mask from per-position values,
    ``mask[..., 0, i, j] = pairwise_fn(query_input[..., i], key_input[..., j])``.

    Args:
        query_input: ``[batch..., q_length]`` (e.g. a padding indicator).
        key_input: ``[batch..., kv_length]``.
        pairwise_fn: broadcasting comparison (default ``jnp.multiply``: both valid).
        extra_batch_dims: leading singleton axes to add.
        dtype: dtype of the mask.

    Example::

        >>> import jax.numpy as jnp, nnx_nn
        >>> valid = jnp.array([[1, 1, 0]])
        >>> nnx_nn.make_attention_mask(valid, valid)[0, 0].tolist()
        [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    mask = pairwise_fn(jnp.expand_dims(query_input, axis=-1), jnp.expand_dims(key_input, axis=-2))
    mask = jnp.expand_dims(mask, axis=-3)
    mask = jnp.expand_dims(mask, axis=tuple(range(extra_batch_dims)))
    return mask.astype(dtype)


def make_causal_mask(x: Array, extra_batch_dims: int = 0, dtype: Dtype = jnp.float32) -> Array:
    """A ``[batch..., 1, length, length]`` lower-triangular mask for inputs
    ``x`` of shape ``[batch..., length]`` (position ``i`` sees ``j <= i``).

    Example::

        >>> import jax.numpy as jnp, nnx_nn
        >>> nnx_nn.make_causal_mask(jnp.ones((1, 3)))[0, 0].tolist()
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    """
    idxs = jnp.broadcast_to(jnp.arange(x.shape[-1], dtype=jnp.int32), x.shape)
    return make_attention_mask(
        idxs, idxs, jnp.greater_equal, extra_batch_dims=extra_batch_dims, dtype=dtype
    )


def combine_masks(*masks: Array | None, dtype: Dtype = jnp.float32) -> Array | None:
    """Logical AND of the non-``None`` masks (all of the same rank), or ``None``.

    Example::

        >>> import jax.numpy as jnp, nnx_nn
        >>> a = jnp.array([[1, 1, 0]]); b = jnp.array([[0, 1, 1]])
        >>> nnx_nn.combine_masks(a, None, b).tolist()
        [[0.0, 1.0, 0.0]]
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    if any(m.ndim != present[0].ndim for m in present):
        raise ValueError(
            "combine_masks: expected masks of the same rank, found ranks "
            f"{tuple(m.ndim for m in present)}. Fix: add singleton axes, e.g. "
            "mask[:, None] for a missing heads axis."
        )
    mask = present[0]
    for other in present[1:]:
        mask = jnp.logical_and(mask, other)
    return mask.astype(dtype)
