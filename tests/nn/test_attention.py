"""Attention functions, masks and MultiHeadAttention against a numpy reference, and
autoregressive decoding against full causal attention."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import assert_close, jit_call, np_init, param_grads, ref_grads

NP = np_init()

RNG = np.random.default_rng(0)
Q = RNG.normal(size=(2, 5, 4, 3)).astype(np.float32)  # (batch, q_len, heads, depth)
K = RNG.normal(size=(2, 6, 4, 3)).astype(np.float32)
V = RNG.normal(size=(2, 6, 4, 3)).astype(np.float32)
X = RNG.normal(size=(2, 5, 8)).astype(np.float32)

# The functions compiled as a whole (cheaper than compiling each primitive eagerly).
attention = jax.jit(nnx_nn.dot_product_attention, static_argnames=("is_causal",))
attention_weights = jax.jit(nnx_nn.dot_product_attention_weights, static_argnames=("is_causal",))


def reference_attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    group = q.shape[-2] // k.shape[-2]
    k, v = np.repeat(k, group, axis=-2), np.repeat(v, group, axis=-2)
    logits = np.einsum("...qhd,...khd->...hqk", q, k) / np.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = np.where(mask, logits, -1e30)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("...hqk,...khd->...qhd", weights, v), weights


def test_dot_product_attention_plain_masked_biased() -> None:
    out, _ = reference_attention(Q, K, V)
    assert_close(attention(Q, K, V), out, rtol=1e-4, atol=1e-5)
    mask = RNG.uniform(size=(2, 1, 5, 6)) > 0.3
    mask[..., 0] = True
    bias = RNG.normal(size=(1, 4, 5, 6)).astype(np.float32)
    out, weights = reference_attention(Q, K, V, mask, bias)
    assert_close(attention(Q, K, V, bias=bias, mask=mask), out, rtol=1e-4, atol=1e-5)
    assert_close(
        attention_weights(Q, K, bias=bias, mask=mask),
        weights,
        rtol=1e-4,
        atol=1e-6,
    )


def test_causal_grouped_query_and_extra_batch_axes() -> None:
    causal = np.tril(np.ones((5, 5), bool))
    k, v = K[:, :5, :2], V[:, :5, :2]  # 2 kv heads serve 4 query heads
    out, weights = reference_attention(Q, k, v, causal)
    assert_close(attention(Q, k, v, is_causal=True), out, rtol=1e-4, atol=1e-5)
    assert_close(attention_weights(Q, k, is_causal=True), weights, rtol=1e-4, atol=1e-6)
    # The slow path (sowing weights) agrees with the fused one.
    module = nnx_graph.Module()
    slow = nnx_nn.dot_product_attention(Q, k, v, is_causal=True, module=module)
    assert_close(slow, out, rtol=1e-4, atol=1e-5)
    assert module.attention_weights.value[0].shape == (2, 4, 5, 5)
    five_d = attention(Q[None], K[None], V[None])
    assert_close(five_d[0], reference_attention(Q, K, V)[0], rtol=1e-4, atol=1e-5)


def test_attention_dropout_is_deterministic_given_the_key() -> None:
    key = jax.random.key(0)
    kwargs = {"dropout_rate": 0.5, "dropout_rng": key, "deterministic": False}
    a = nnx_nn.dot_product_attention_weights(Q, K, **kwargs)
    b = nnx_nn.dot_product_attention_weights(Q, K, **kwargs)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    full = np.asarray(nnx_nn.dot_product_attention_weights(Q, K))
    kept = np.asarray(a) != 0
    assert_close(np.asarray(a)[kept], (full * 2)[kept], rtol=1e-5)
    # broadcast_dropout shares the mask across batch and heads
    assert (kept == kept[0:1, 0:1]).all()


def test_masks() -> None:
    valid = np.array([[1, 1, 0]])
    mask = nnx_nn.make_attention_mask(valid, valid)
    assert mask.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(np.asarray(mask[0, 0]), np.outer(valid[0], valid[0]))
    causal = nnx_nn.make_causal_mask(jnp.ones((2, 4)), extra_batch_dims=1)
    assert causal.shape == (1, 2, 1, 4, 4)
    np.testing.assert_array_equal(np.asarray(causal[0, 0, 0]), np.tril(np.ones((4, 4))))
    both = nnx_nn.combine_masks(mask, None, nnx_nn.make_causal_mask(jnp.ones((1, 3))))
    np.testing.assert_array_equal(np.asarray(both[0, 0]), np.tril(np.outer(valid, valid)))
    assert nnx_nn.combine_masks(None, None) is None


def mha_reference(
    mha: nnx_nn.MultiHeadAttention,
    x: np.ndarray,
    context: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    def project(layer: nnx_nn.LinearGeneral, inputs: np.ndarray) -> np.ndarray:
        return np.einsum("bti,ihd->bthd", inputs, layer.kernel.value) + np.asarray(layer.bias.value)

    q, k, v = project(mha.query, x), project(mha.key, context), project(mha.value, context)
    ctx, _ = reference_attention(q, k, v, mask)
    return np.einsum("bthd,hdo->bto", ctx, mha.out.kernel.value) + np.asarray(mha.out.bias.value)


def test_multihead_self_and_cross_attention_with_mask() -> None:
    mha = nnx_nn.MultiHeadAttention(
        2,
        8,
        qkv_features=6,
        out_features=5,
        in_kv_features=3,
        bias_init=nnx_nn.initializers.normal(0.5),
        kernel_init=NP,
        rngs=nnx_graph.Rngs(0),
    )
    assert mha.query.kernel.shape == (8, 2, 3) and mha.key.kernel.shape == (3, 2, 3)
    assert mha.out.kernel.shape == (2, 3, 5)
    context = RNG.normal(size=(2, 6, 3)).astype(np.float32)
    mask = RNG.uniform(size=(2, 1, 5, 6)) > 0.3
    mask[..., 0] = True
    assert_close(
        jit_call(mha, X, context, mask=mask),
        mha_reference(mha, X, context, mask),
        rtol=1e-4,
        atol=1e-5,
    )
    grads = param_grads(mha, lambda m: jnp.sum(m(X, context) ** 2))

    def reference(wq: jax.Array, wk: jax.Array, wv: jax.Array, wo: jax.Array) -> jax.Array:
        q = jnp.einsum("bti,ihd->bthd", X, wq) + mha.query.bias.value
        k = jnp.einsum("bti,ihd->bthd", context, wk) + mha.key.bias.value
        v = jnp.einsum("bti,ihd->bthd", context, wv) + mha.value.bias.value
        ctx = jax.nn.dot_product_attention(q, k, v)
        return jnp.sum((jnp.einsum("bthd,hdo->bto", ctx, wo) + mha.out.bias.value) ** 2)

    names = ("query", "key", "value", "out")
    expected = ref_grads(reference, *(getattr(mha, n).kernel.value for n in names))
    for name, g in zip(names, expected):
        assert_close(grads[(name, "kernel")], g, rtol=1e-3, atol=1e-4)


def test_multihead_decode_matches_causal_attention() -> None:
    mha = nnx_nn.MultiHeadAttention(4, 8, num_kv_heads=2, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    full = np.asarray(jit_call(mha, X, is_causal=True))
    mha.init_cache(X.shape)
    assert mha.cached_key.shape == (2, 5, 2, 2)
    steps = [np.asarray(jit_call(mha, X[:, i : i + 1], decode=True)) for i in range(5)]
    assert_close(np.concatenate(steps, axis=1), full, rtol=1e-4, atol=1e-5)
    assert int(mha.cache_index.value) == 5


def test_multihead_decode_under_jit_with_split_merge() -> None:
    mha = nnx_nn.MultiHeadAttention(2, 8, decode=True, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    mha.init_cache(X.shape)
    graphdef, state = nnx_graph.split(mha)

    @jax.jit
    def step(state: nnx_graph.State, token: jax.Array) -> tuple[jax.Array, nnx_graph.State]:
        module = nnx_graph.merge(graphdef, state, copy=True)
        return module(token), nnx_graph.state(module)

    outs = []
    for i in range(5):
        y, state = step(state, X[:, i : i + 1])
        outs.append(np.asarray(y))
    mha.decode = False
    expected = np.asarray(jit_call(mha, X, mask=nnx_nn.make_causal_mask(jnp.ones((2, 5)))))
    assert_close(np.concatenate(outs, axis=1), expected, rtol=1e-4, atol=1e-5)


def test_multihead_dropout_modes_normalize_qk_and_sow() -> None:
    mha = nnx_nn.MultiHeadAttention(
        2, 8, dropout_rate=0.5, normalize_qk=True, kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    assert mha.query_ln is not None and mha.query_ln.scale.shape == (4,)
    mha.train()
    a, b = np.asarray(mha(X)), np.asarray(mha(X))
    assert not np.allclose(a, b)  # fresh dropout keys per call
    mha.eval()
    c, d = np.asarray(mha(X)), np.asarray(mha(X, sow_weights=True))
    assert_close(c, d)
    assert mha.attention_weights.value[0].shape == (2, 2, 5, 5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_multihead_mixed_precision(dtype: jnp.dtype) -> None:
    mha = nnx_nn.MultiHeadAttention(
        2, 8, dtype=dtype, kernel_init=np_init(0.3), rngs=nnx_graph.Rngs(0)
    )
    y = jit_call(mha, X)
    assert y.dtype == dtype and mha.query.kernel.dtype == jnp.float32
    full = nnx_nn.MultiHeadAttention(2, 8, kernel_init=np_init(0.3), rngs=nnx_graph.Rngs(0))
    assert_close(y, full(X), rtol=0.1, atol=0.1)
