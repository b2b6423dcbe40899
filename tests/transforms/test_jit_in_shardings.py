"""nnx.jit's in_shardings place the caller's Variables (as Flax hands the resharded
state back), once per cache entry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

import nnx


def _mesh() -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.array(jax.devices()[:1]), ("a",))


def test_state_sharding_places_the_callers_variables() -> None:
    mesh = _mesh()
    kernel_sharding = NamedSharding(mesh, PartitionSpec(None, "a"))
    specs = nnx.StateSharding({nnx.PathContains("kernel"): kernel_sharding, ...: None})
    model = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
    before = np.asarray(model.kernel[...])
    assert not isinstance(model.kernel[...].sharding, NamedSharding)

    @nnx.jit(in_shardings=(specs,))
    def read(m):
        return m.kernel[...].sum()

    total = read(model)
    assert model.kernel[...].sharding == kernel_sharding
    assert not isinstance(model.bias[...].sharding, NamedSharding)
    np.testing.assert_allclose(model.kernel[...], before)  # same values, placed
    assert float(total) == float(before.sum())


def test_one_sharding_for_the_whole_argument() -> None:
    sharding = NamedSharding(_mesh(), PartitionSpec())
    model = nnx.Linear(3, 3, rngs=nnx.Rngs(1))

    @nnx.jit(in_shardings=(sharding, None))
    def apply(m, x):
        return m(x)

    y = apply(model, jnp.ones((2, 3)))
    assert y.shape == (2, 3)
    assert model.kernel[...].sharding == sharding and model.bias[...].sharding == sharding
