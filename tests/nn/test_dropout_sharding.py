"""Dropout on inputs sharded over Explicit mesh axes: the mask is drawn with the
inputs' sharding, so the layer keeps the sharding (one device is enough: a 1x1
mesh still carries the sharding in the array type)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AxisType, reshard
from jax.sharding import PartitionSpec as P

import nnx


@pytest.mark.parametrize("broadcast_dims", [(), (1,), (0,)])
def test_dropout_keeps_explicit_sharding(broadcast_dims: tuple[int, ...]) -> None:
    mesh = jax.make_mesh((1, 1), ("X", "Y"), axis_types=(AxisType.Explicit,) * 2)
    with jax.set_mesh(mesh):
        x = reshard(jnp.arange(8.0).reshape(2, 4) + 1.0, P("X", "Y"))
        layer = nnx.Dropout(0.5, deterministic=False, broadcast_dims=broadcast_dims)
        y = layer(x, rngs=nnx.Rngs(0))
        assert jax.typeof(y).sharding.spec == P("X", "Y")
        y_np = jax.device_get(y)
        x_np = jax.device_get(x)
        kept = y_np != 0
        # kept entries are scaled by 1 / keep_prob, the others are zero
        assert (y_np[kept] == 2 * x_np[kept]).all()
        if broadcast_dims:  # one mask value along each broadcast dim
            assert (kept == kept.take([0], axis=broadcast_dims[0])).all()

        @jax.jit
        def apply(v: jax.Array, rngs: nnx.Rngs) -> jax.Array:
            return layer(v, rngs=rngs)

        assert jax.typeof(apply(x, nnx.Rngs(1))).sharding.spec == P("X", "Y")


def test_dropout_on_unsharded_inputs_draws_the_same_mask_as_before() -> None:
    x = jnp.ones((3, 5))
    layer = nnx.Dropout(0.5, deterministic=False)
    y = layer(x, rngs=nnx.Rngs(dropout=3))
    key = nnx.Rngs(dropout=3).dropout()
    mask = jax.random.bernoulli(key, 0.5, (3, 5))
    assert (jax.device_get(y) == jax.device_get(jnp.where(mask, 2.0, 0.0))).all()
