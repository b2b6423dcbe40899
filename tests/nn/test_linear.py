"""Linear, LinearGeneral, Einsum and Embed against direct numpy/jax computations,
including gradients through split/merge."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import assert_close, np_init, param_grads, ref_grads

NP = np_init()

X = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)


def test_linear_matches_matmul_and_gradients() -> None:
    layer = nnx_nn.Linear(3, 4, kernel_init=NP, bias_init=NP, rngs=nnx_graph.Rngs(0))
    kernel, bias = np.asarray(layer.kernel.value), np.asarray(layer.bias.value)
    assert kernel.shape == (3, 4) and bias.shape == (4,)
    assert_close(layer(X), X @ kernel + bias)

    def reference(k: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.sum(jnp.tanh(X @ k + b))

    grads = param_grads(layer, lambda m: jnp.sum(jnp.tanh(m(X))))
    gk, gb = ref_grads(reference, kernel, bias)
    assert_close(grads[("kernel",)], gk)
    assert_close(grads[("bias",)], gb)


def test_linear_without_bias_and_param_names() -> None:
    layer = nnx_nn.Linear(3, 4, use_bias=False, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    assert layer.bias is None
    assert [p for p, _ in nnx_graph.to_flat_state(nnx_graph.state(layer))] == [("kernel",)]
    assert_close(layer(X), X @ np.asarray(layer.kernel.value))


def test_linear_initialises_like_flax_key_order() -> None:
    # kernel then bias from rngs.params(): the same keys Flax uses.
    rngs = nnx_graph.Rngs(params=0)
    layer = nnx_nn.Linear(3, 4, rngs=rngs)
    expected = nnx_nn.initializers.lecun_normal()(
        nnx_graph.Rngs(params=0).params(), (3, 4), jnp.float32
    )
    assert_close(layer.kernel.value, expected)


def test_linear_under_jit_through_split_merge() -> None:
    layer = nnx_nn.Linear(3, 4, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    graphdef, state = nnx_graph.split(layer)

    @jax.jit
    def forward(state: nnx_graph.State, x: jax.Array) -> jax.Array:
        return nnx_graph.merge(graphdef, state)(x)

    assert_close(forward(state, X), layer(X))


def test_linear_general_contracts_chosen_axes() -> None:
    layer = nnx_nn.LinearGeneral(
        (5, 3), (2, 4), axis=(1, 2), kernel_init=NP, bias_init=NP, rngs=nnx_graph.Rngs(0)
    )
    kernel, bias = np.asarray(layer.kernel.value), np.asarray(layer.bias.value)
    assert kernel.shape == (5, 3, 2, 4) and bias.shape == (2, 4)
    assert_close(layer(X), np.einsum("bij,ijkl->bkl", X, kernel) + bias)
    grads = param_grads(layer, lambda m: jnp.sum(m(X) ** 2))
    (gk,) = ref_grads(lambda k: jnp.sum((jnp.einsum("bij,ijkl->bkl", X, k) + bias) ** 2), kernel)
    assert_close(grads[("kernel",)], gk, rtol=1e-4)


def test_linear_general_default_is_linear_and_batch_axis() -> None:
    layer = nnx_nn.LinearGeneral(3, 4, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    assert_close(layer(X), X @ np.asarray(layer.kernel.value))
    batched = nnx_nn.LinearGeneral(
        3,
        4,
        batch_axis={0: 2},
        kernel_init=NP,
        bias_init=nnx_nn.initializers.ones,
        rngs=nnx_graph.Rngs(0),
    )
    kernel = np.asarray(batched.kernel.value)
    assert kernel.shape == (2, 3, 4) and batched.bias.shape == (2, 4)
    assert_close(batched(X), np.einsum("btc,bco->bto", X, kernel) + 1.0)


def test_linear_general_kernel_init_sees_a_matrix() -> None:
    seen = []

    def init(key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype) -> jax.Array:
        seen.append(shape)
        return jnp.zeros(shape, dtype)

    nnx_nn.LinearGeneral((5, 3), (2, 4), axis=(1, 2), kernel_init=init, rngs=nnx_graph.Rngs(0))
    assert seen[0] == (15, 8)


def test_einsum_with_broadcast_bias_and_call_override() -> None:
    layer = nnx_nn.Einsum(
        "btc,hco->btho", (2, 3, 4), (2, 4), kernel_init=NP, bias_init=NP, rngs=nnx_graph.Rngs(0)
    )
    kernel, bias = np.asarray(layer.kernel.value), np.asarray(layer.bias.value)
    assert_close(layer(X), np.einsum("btc,hco->btho", X, kernel) + bias)
    # Same kernel, another equation given at call time (ellipsis on the input).
    assert_close(layer(X, "...c,hco->...ho"), np.einsum("btc,hco->btho", X, kernel) + bias)
    grads = param_grads(layer, lambda m: jnp.sum(m(X)))
    assert_close(grads[("bias",)], np.full((2, 4), 2 * 5.0))


def test_einsum_without_bias() -> None:
    layer = nnx_nn.Einsum("btc,co->bo", (3, 4), kernel_init=NP, rngs=nnx_graph.Rngs(0))
    assert layer.bias is None
    assert_close(layer(X), np.einsum("btc,co->bo", X, np.asarray(layer.kernel.value)))


def test_einsum_takes_an_int_bias_shape() -> None:
    layer = nnx_nn.Einsum(
        "btc,co->bto", (3, 4), 4, kernel_init=NP, bias_init=NP, rngs=nnx_graph.Rngs(0)
    )
    assert layer.bias is not None and layer.bias.value.shape == (4,)
    kernel, bias = np.asarray(layer.kernel.value), np.asarray(layer.bias.value)
    assert_close(layer(X), np.einsum("btc,co->bto", X, kernel) + bias)


def test_embed_lookup_attend_and_gradient() -> None:
    embed = nnx_nn.Embed(6, 3, embedding_init=NP, rngs=nnx_graph.Rngs(0))
    table = np.asarray(embed.embedding.value)
    ids = np.array([[0, 5, 2], [2, 2, 1]])
    assert_close(embed(ids), table[ids])
    assert_close(embed.attend(X), X @ table.T)
    grads = param_grads(embed, lambda m: jnp.sum(m(ids)))
    expected = np.zeros_like(table)
    np.add.at(expected, ids.reshape(-1), 1.0)
    assert_close(grads[("embedding",)], expected)


def test_embed_single_entry_broadcasts_and_dtype() -> None:
    embed = nnx_nn.Embed(1, 3, embedding_init=NP, rngs=nnx_graph.Rngs(0))
    out = embed(np.zeros((2, 4), np.int32))
    assert out.shape == (2, 4, 3)
    half = nnx_nn.Embed(6, 3, dtype=jnp.bfloat16, embedding_init=NP, rngs=nnx_graph.Rngs(0))
    assert half.embedding.dtype == jnp.float32
    assert half(np.array([1, 2])).dtype == jnp.bfloat16


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_param_dtype(dtype: jnp.dtype) -> None:
    layer = nnx_nn.Linear(3, 4, param_dtype=dtype, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    assert layer.kernel.dtype == dtype and layer.bias.dtype == dtype
    assert layer(X.astype(dtype)).dtype == dtype
