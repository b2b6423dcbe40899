"""MultiHeadAttention, with an optional key/value cache for autoregressive
decoding."""

from __future__ import annotations

import functools
import typing as tp
from collections.abc import Mapping
from types import MappingProxyType

import jax.numpy as jnp
from jax import lax

import nnx_graph
from nnx_nn import initializers
from nnx_nn._attention import combine_masks, dot_product_attention
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    InputShapeError,
    LayerConfigError,
    LayerInputError,
    check_axis_size,
    check_positive_int,
    child_path,
    describe,
    missing_mode_error,
    rng_stream,
)
from nnx_nn._linear import LinearGeneral, default_kernel_init
from nnx_nn._normalization import LayerNorm
from nnx_nn._typing import Array, Dtype, Initializer, PrecisionLike, PromoteDtypeFn, Shape

__all__ = ["MultiHeadAttention"]


class MultiHeadAttention(nnx_graph.Module):
    """Multi-head attention: project inputs to per-head queries, keys and values
    (``LinearGeneral`` layers ``query``, ``key``, ``value``), attend, and project
    the heads back (``out``).

    Self-attention is ``mha(x)``; cross-attention ``mha(x, context)``
    (``inputs_v`` defaults to ``inputs_k``, which defaults to ``inputs_q``).

    Autoregressive decoding: call :meth:`init_cache` with the full input shape
    ``(batch..., max_length, in_features)``, then call with ``decode=True`` (or
    set ``mha.decode = True``) on one token ``(batch..., 1, in_features)`` at a
    time; keys and values accumulate in ``Cache`` Variables ``cached_key``,
    ``cached_value`` and ``cache_index``, and each token attends to the ones
    before it.

    Args:
        num_heads: number of query heads.
        in_features: size of the query input's last axis.
        qkv_features: total query/key/value size, split over the heads
            (default ``in_features``; must be divisible by ``num_heads``).
        out_features: output size (default ``in_features``).
        num_kv_heads: number of key/value heads (default ``num_heads``; fewer
            gives grouped-query attention, must divide ``num_heads``).
        in_kv_features: size of the key/value inputs' last axis (default
            ``in_features``).
        dtype, param_dtype, precision: as in :class:`~nnx_nn.Linear`.
        broadcast_dropout: share the attention-dropout mask over batch and heads.
        dropout_rate: dropout on the attention weights (default 0).
        deterministic: disable dropout (set by ``model.eval()``; ``None`` until a
            mode is chosen, needed only when ``dropout_rate > 0``).
        kernel_init, bias_init: initializers of the projections;
            ``out_kernel_init``/``out_bias_init`` override them for ``out``.
        use_bias: biases in the projections (default ``True``).
        attention_fn: the attention function (default
            :func:`~nnx_nn.dot_product_attention`).
        decode: use the decode cache (default ``None``: off unless set).
        normalize_qk: apply LayerNorm (``query_ln``, ``key_ln``) to queries and
            keys per head.
        qkv_promote_dtype, out_promote_dtype, ln_promote_dtype: dtype promotion of
            the sub-layers.
        qkv_dot_general, out_dot_general, qkv_dot_general_cls,
        out_dot_general_cls: contraction functions of the projections.
        rngs: ``Rngs`` for the Params; with ``keep_rngs`` and ``dropout_rate > 0``
            the layer forks its ``dropout`` stream for attention dropout.
        keep_rngs: store that stream (default ``True``).
        kernel_metadata, out_kernel_metadata, bias_metadata, out_bias_metadata,
        query_ln_scale_metadata, key_ln_scale_metadata: Param metadata.

    Params: ``query``/``key``/``value`` kernels ``(in, heads, head_dim)`` and
    biases ``(heads, head_dim)``; ``out`` kernel ``(heads, head_dim, out_features)``.

    Shapes: ``(batch..., q_length, in_features) -> (batch..., q_length,
    out_features)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> mha = nnx_nn.MultiHeadAttention(num_heads=2, in_features=4,
        ...                                 rngs=nnx_graph.Rngs(0), decode=False)
        >>> x = jnp.ones((2, 5, 4))
        >>> mha(x).shape, mha(x, mask=nnx_nn.make_causal_mask(jnp.ones((2, 5)))).shape
        ((2, 5, 4), (2, 5, 4))
        >>> mha.init_cache((2, 5, 4))
        >>> [mha(x[:, i:i + 1], decode=True).shape for i in range(2)]
        [(2, 1, 4), (2, 1, 4)]
    """

    _config_fields = ("num_heads", "in_features", "qkv_features", "out_features")

    def __init__(
        self,
        num_heads: int,
        in_features: int,
        qkv_features: int | None = None,
        out_features: int | None = None,
        num_kv_heads: int | None = None,
        in_kv_features: int | None = None,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        broadcast_dropout: bool = True,
        dropout_rate: float = 0.0,
        deterministic: bool | None = None,
        precision: PrecisionLike = None,
        kernel_init: Initializer = default_kernel_init,
        out_kernel_init: Initializer | None = None,
        bias_init: Initializer = initializers.zeros,
        out_bias_init: Initializer | None = None,
        use_bias: bool = True,
        attention_fn: tp.Callable[..., Array] = dot_product_attention,
        decode: bool | None = None,
        normalize_qk: bool = False,
        qkv_promote_dtype: PromoteDtypeFn = default_promote_dtype,
        out_promote_dtype: PromoteDtypeFn = default_promote_dtype,
        ln_promote_dtype: PromoteDtypeFn = default_promote_dtype,
        qkv_dot_general: tp.Callable[..., Array] | None = None,
        out_dot_general: tp.Callable[..., Array] | None = None,
        qkv_dot_general_cls: tp.Any = None,
        out_dot_general_cls: tp.Any = None,
        rngs: nnx_graph.Rngs,
        keep_rngs: bool = True,
        kernel_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        out_kernel_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        out_bias_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        query_ln_scale_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
        key_ln_scale_metadata: Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        self.num_heads = num_heads
        self.in_features = in_features
        self.qkv_features = qkv_features if qkv_features is not None else in_features
        self.out_features = out_features if out_features is not None else in_features
        self.in_kv_features = in_kv_features if in_kv_features is not None else in_features
        self.num_kv_heads = num_kv_heads if num_kv_heads is not None else num_heads
        self._check_config(dropout_rate)
        rng_stream(rngs, "params", self)

        self.dtype = dtype
        self.param_dtype = param_dtype
        self.broadcast_dropout = broadcast_dropout
        self.dropout_rate = dropout_rate
        self.deterministic = deterministic
        self.precision = precision
        self.use_bias = use_bias
        self.attention_fn = attention_fn
        self.decode = decode
        self.normalize_qk = normalize_qk
        self.qkv_promote_dtype = qkv_promote_dtype
        self.out_promote_dtype = out_promote_dtype
        self.ln_promote_dtype = ln_promote_dtype
        self.qkv_dot_general = qkv_dot_general
        self.out_dot_general = out_dot_general
        self.qkv_dot_general_cls = qkv_dot_general_cls
        self.out_dot_general_cls = out_dot_general_cls
        self.head_dim = self.qkv_features // self.num_heads

        projection = functools.partial(
            LinearGeneral,
            dtype=dtype,
            param_dtype=param_dtype,
            kernel_init=kernel_init,
            bias_init=bias_init,
            use_bias=use_bias,
            precision=precision,
            promote_dtype=qkv_promote_dtype,
            dot_general=qkv_dot_general,
            dot_general_cls=qkv_dot_general_cls,
            kernel_metadata=kernel_metadata,
            bias_metadata=bias_metadata,
            rngs=rngs,
        )
        self.query = projection(self.in_features, (self.num_heads, self.head_dim))
        self.key = projection(self.in_kv_features, (self.num_kv_heads, self.head_dim))
        self.value = projection(self.in_kv_features, (self.num_kv_heads, self.head_dim))

        self.query_ln: LayerNorm | None
        self.key_ln: LayerNorm | None
        if normalize_qk:
            layer_norm = functools.partial(
                LayerNorm,
                self.head_dim,
                use_bias=False,
                dtype=dtype,
                param_dtype=param_dtype,
                promote_dtype=ln_promote_dtype,
                rngs=rngs,
            )
            self.query_ln = layer_norm(scale_metadata=query_ln_scale_metadata)
            self.key_ln = layer_norm(scale_metadata=key_ln_scale_metadata)
        else:
            self.query_ln = None
            self.key_ln = None

        self.out = LinearGeneral(
            in_features=(self.num_heads, self.head_dim),
            out_features=self.out_features,
            axis=(-2, -1),
            kernel_init=out_kernel_init or kernel_init,
            bias_init=out_bias_init or bias_init,
            use_bias=use_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            precision=precision,
            promote_dtype=out_promote_dtype,
            dot_general=out_dot_general,
            dot_general_cls=out_dot_general_cls,
            rngs=rngs,
            kernel_metadata=out_kernel_metadata or kernel_metadata,
            bias_metadata=out_bias_metadata or bias_metadata,
        )
        self.rngs: nnx_graph.RngStream | None = (
            rng_stream(rngs, "dropout", self).fork() if keep_rngs and dropout_rate > 0 else None
        )
        self.cached_key: nnx_graph.Cache[Array] | None = nnx_graph.data(None)
        self.cached_value: nnx_graph.Cache[Array] | None = nnx_graph.data(None)
        self.cache_index: nnx_graph.Cache[Array] | None = nnx_graph.data(None)

    def _check_config(self, dropout_rate: float) -> None:
        where = (
            f"MultiHeadAttention(num_heads={self.num_heads!r}, in_features="
            f"{self.in_features!r}, qkv_features={self.qkv_features!r})"
        )
        check_positive_int(
            where,
            num_heads=self.num_heads,
            in_features=self.in_features,
            qkv_features=self.qkv_features,
            out_features=self.out_features,
            num_kv_heads=self.num_kv_heads,
            in_kv_features=self.in_kv_features,
        )
        if self.qkv_features % self.num_heads:
            raise LayerConfigError(
                f"{where}: qkv_features ({self.qkv_features}) must be divisible by num_heads "
                f"({self.num_heads}) to split it into heads. Fix: e.g. qkv_features="
                f"{self.num_heads * max(1, self.qkv_features // self.num_heads)}."
            )
        if self.num_heads % self.num_kv_heads:
            raise LayerConfigError(
                f"{where}: num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                f"({self.num_kv_heads}) for grouped-query attention. Fix: choose num_kv_heads "
                "among the divisors of num_heads."
            )
        if not 0.0 <= dropout_rate < 1.0:
            raise LayerConfigError(
                f"{where}: dropout_rate must be in [0, 1), found {dropout_rate!r}."
            )

    def __call__(
        self,
        inputs_q: Array,
        inputs_k: Array | None = None,
        inputs_v: Array | None = None,
        *,
        mask: Array | None = None,
        deterministic: bool | None = None,
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | None = None,
        sow_weights: bool = False,
        decode: bool | None = None,
        is_causal: bool = False,
        out_sharding: tp.Any = None,
        qkv_sharding: tp.Any = None,
    ) -> Array:
        """Attend from ``inputs_q`` to ``inputs_k``/``inputs_v``.

        ``mask`` (``[batch..., heads or 1, q_length, kv_length]``, ``False`` =
        masked) and ``is_causal`` restrict attention; ``deterministic``, ``rngs``
        and ``decode`` override the layer's; ``sow_weights`` stores the attention
        weights as ``Intermediate`` ``attention_weights``.
        """
        stream = (
            self.rngs
            if rngs is None
            else (rngs.dropout if isinstance(rngs, nnx_graph.Rngs) else rngs)
        )
        if inputs_k is None:
            if inputs_v is not None:
                raise LayerInputError(
                    describe(self),
                    "inputs_v was given without inputs_k. Fix: pass the shared key/value "
                    "input as inputs_k and leave inputs_v as None.",
                )
            inputs_k = inputs_q
        if inputs_v is None:
            inputs_v = inputs_k
        check_axis_size(self, inputs_q, -1, self.in_features, "in_features", name="inputs_q")
        check_axis_size(self, inputs_k, -1, self.in_kv_features, "in_kv_features", name="inputs_k")
        check_axis_size(self, inputs_v, -1, self.in_kv_features, "in_kv_features", name="inputs_v")

        with child_path("query"):
            query = self.query(inputs_q, out_sharding=qkv_sharding)
        with child_path("key"):
            key = self.key(inputs_k, out_sharding=qkv_sharding)
        with child_path("value"):
            value = self.value(inputs_v, out_sharding=qkv_sharding)
        if self.normalize_qk:
            assert self.query_ln is not None and self.key_ln is not None
            query = self.query_ln(query)
            key = self.key_ln(key)

        if decode is None:
            decode = self.decode
        if decode:
            key, value, mask = self._update_cache(key, value, mask)

        dropout_rng = None
        if self.dropout_rate > 0.0:
            if deterministic is None:
                deterministic = self.deterministic
            if deterministic is None:
                raise missing_mode_error(self, "deterministic")
            if not deterministic:
                if stream is None:
                    raise LayerInputError(
                        describe(self),
                        "attention dropout is active but the layer keeps no rngs "
                        "(keep_rngs=False) and none was passed. Fix: call it with "
                        "rngs=nnx.Rngs(dropout=...), or use model.eval().",
                    )
                dropout_rng = stream()
        else:
            deterministic = True

        x = self.attention_fn(
            query,
            key,
            value,
            mask=mask,
            dropout_rng=dropout_rng,
            dropout_rate=self.dropout_rate,
            broadcast_dropout=self.broadcast_dropout,
            deterministic=deterministic,
            dtype=self.dtype,
            precision=self.precision,
            module=self if sow_weights else None,
            is_causal=is_causal,
        )
        with child_path("out"):
            return self.out(x, out_sharding=out_sharding)

    def _update_cache(
        self, key: Array, value: Array, mask: Array | None
    ) -> tuple[Array, Array, Array | None]:
        """Write this step's key/value at ``cache_index`` and mask out the future."""
        if self.cached_key is None or self.cached_value is None or self.cache_index is None:
            raise LayerInputError(
                describe(self),
                "decode=True but the autoregressive cache is not initialised. Fix: call "
                "mha.init_cache((batch, max_length, in_features)) first.",
            )
        *batch_dims, max_length, num_kv_heads, head_dim = self.cached_key.shape
        expected = (*batch_dims, 1, num_kv_heads, head_dim)
        if tuple(key.shape) != expected:
            raise InputShapeError(
                describe(self),
                f"in decode mode the inputs must be one step (batch..., 1, features) matching "
                f"the cache {tuple(self.cached_key.shape)}; expected projected keys of shape "
                f"{expected}, found {tuple(key.shape)}. Fix: feed one token at a time with "
                "the batch shape given to init_cache.",
            )
        index = self.cache_index[...]
        zero = jnp.array(0, dtype=lax.dtype(index.dtype))
        start = (zero,) * len(batch_dims) + (index, zero, zero)
        key = lax.dynamic_update_slice(
            self.cached_key[...], key.astype(self.cached_key.dtype), start
        )
        value = lax.dynamic_update_slice(
            self.cached_value[...], value.astype(self.cached_value.dtype), start
        )
        self.cached_key[...] = key
        self.cached_value[...] = value
        self.cache_index[...] = index + 1
        visible = jnp.broadcast_to(jnp.arange(max_length) <= index, (*batch_dims, 1, 1, max_length))
        return key, value, combine_masks(mask, visible)

    def init_cache(self, input_shape: Shape, dtype: Dtype = jnp.float32) -> None:
        """Create the decode cache for inputs of shape ``(batch..., max_length,
        in_features)``: zero ``cached_key``/``cached_value`` of shape ``(batch...,
        max_length, num_kv_heads, head_dim)`` and ``cache_index`` 0.

        Example::

            >>> import nnx_graph, nnx_nn
            >>> mha = nnx_nn.MultiHeadAttention(2, 4, rngs=nnx_graph.Rngs(0))
            >>> mha.init_cache((1, 10, 4)); mha.cached_key.shape
            (1, 10, 2, 2)
        """
        shape = (*tuple(input_shape)[:-1], self.num_kv_heads, self.head_dim)
        self.cached_key = nnx_graph.Cache(jnp.zeros(shape, dtype))
        self.cached_value = nnx_graph.Cache(jnp.zeros(shape, dtype))
        self.cache_index = nnx_graph.Cache(jnp.array(0, dtype=jnp.int32))

    def set_view(
        self,
        deterministic: bool | None = None,
        decode: bool | None = None,
        batch_size: int | Shape | None = None,
        max_length: int | None = None,
    ) -> None:
        """Switch modes in place; used by ``nnx.view`` (and ``train``/``eval``).

        Args:
            deterministic: if True, no attention dropout (``None``: unchanged).
            decode: if True, calls run one step of autoregressive decoding against
                the cache (``None``: unchanged).
            batch_size: with ``max_length`` and decoding on, the batch size (an int
                or a tuple of batch dimensions) of a fresh decode cache.
            max_length: with ``batch_size``, the length of that cache. Giving both
                creates the cache (as :meth:`init_cache` would, in float32).

        Example::

            >>> import nnx_graph, nnx_nn
            >>> mha = nnx_nn.MultiHeadAttention(2, 4, decode=False, rngs=nnx_graph.Rngs(0))
            >>> mha.set_view(decode=True, batch_size=3, max_length=8)
            >>> mha.decode, mha.cached_key.shape
            (True, (3, 8, 2, 2))
        """
        if deterministic is not None:
            self.deterministic = deterministic
        if decode is not None:
            self.decode = decode
        if self.decode and batch_size is not None and max_length is not None:
            batch = (batch_size,) if isinstance(batch_size, int) else tuple(batch_size)
            self.init_cache((*batch, max_length, self.in_features))
