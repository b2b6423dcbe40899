"""Dropout: masks, scaling, broadcast axes, RNG streams and train/eval switching."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph
import nnx_nn

ONES = jnp.ones((4, 64))


def test_mask_rate_and_scaling() -> None:
    drop = nnx_nn.Dropout(0.25, rngs=nnx_graph.Rngs(dropout=0))
    y = np.asarray(drop(ONES))
    assert np.isclose(y, 0.0).sum() + np.isclose(y, 1 / 0.75).sum() == y.size
    assert 0.15 < (y == 0).mean() < 0.35


def test_new_mask_every_call_and_reproducible_seeds() -> None:
    a = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
    b = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
    first, second = np.asarray(a(ONES)), np.asarray(a(ONES))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, np.asarray(b(ONES)))


def test_stream_falls_back_to_default_and_forks_at_construction() -> None:
    rngs = nnx_graph.Rngs(0)  # no "dropout" stream
    drop = nnx_nn.Dropout(0.5, rngs=rngs)
    assert drop.rngs is not None
    assert int(rngs.default.count.value) == 1  # one key spent on the fork
    y = np.asarray(drop(ONES))
    assert (y == 0).any()


def test_per_call_rngs_key_and_stream() -> None:
    drop = nnx_nn.Dropout(0.5)
    key = jax.random.key(3)
    np.testing.assert_array_equal(
        np.asarray(drop(ONES, rngs=key)), np.asarray(drop(ONES, rngs=key))
    )
    rngs = nnx_graph.Rngs(dropout=1)
    drop(ONES, rngs=rngs)
    assert int(rngs.dropout.count.value) == 1
    stream = nnx_graph.Rngs(dropout=1).dropout
    drop(ONES, rngs=stream)
    assert int(stream.count.value) == 1


def test_broadcast_dims_share_the_mask() -> None:
    drop = nnx_nn.Dropout(0.5, broadcast_dims=(0,), rngs=nnx_graph.Rngs(dropout=0))
    y = np.asarray(drop(ONES))
    assert (y == y[0]).all()


def test_deterministic_train_eval_and_call_override() -> None:
    drop = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
    drop.eval()
    assert drop.deterministic is True
    np.testing.assert_array_equal(np.asarray(drop(ONES)), np.asarray(ONES))
    assert (np.asarray(drop(ONES, deterministic=False)) == 0).any()
    drop.train()
    assert drop.deterministic is False
    np.testing.assert_array_equal(np.asarray(drop(ONES, deterministic=True)), np.asarray(ONES))
    assert nnx_nn.Dropout(0.0)(ONES) is ONES


def test_gradient_is_masked_and_jit_threads_rng_state() -> None:
    drop = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
    graphdef, state = nnx_graph.split(drop)

    @jax.jit
    def step(state: nnx_graph.State, x: jax.Array) -> tuple[jax.Array, jax.Array, nnx_graph.State]:
        def loss(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, nnx_graph.State]]:
            module = nnx_graph.merge(graphdef, state, copy=True)
            y = module(x)
            return jnp.sum(y), (y, nnx_graph.state(module))

        grad, (y, new_state) = jax.grad(loss, has_aux=True)(x)
        return grad, y, new_state

    g1, y1, state = step(state, ONES)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(y1))  # d sum(mask * x / p) / dx
    g2, _, state = step(state, ONES)
    assert not np.array_equal(np.asarray(g1), np.asarray(g2))  # the RNG count advanced
