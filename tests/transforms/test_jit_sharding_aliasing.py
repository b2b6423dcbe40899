"""nnx.jit refuses one Variable given two different in_shardings through two
arguments (Flax's 'Inconsistent aliasing' ValueError)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import nnx


def _mesh() -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))


def test_same_variable_with_two_shardings_is_refused() -> None:
    mesh = _mesh()
    v = nnx.Param(jnp.ones(4))

    @nnx.jit(in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P("x"))))
    def add(a, b):
        return a[...] + b[...]

    with pytest.raises(ValueError, match=r"Inconsistent aliasing detected: arg0 and arg1"):
        add(v, v)


def test_same_variable_with_one_sharding_is_fine() -> None:
    sharding = NamedSharding(_mesh(), P())
    shared = nnx.Param(jnp.ones(2))
    a, b = nnx.Dict(w=shared), nnx.Dict(w=shared)

    @nnx.jit(in_shardings=(sharding, sharding))
    def add(a, b):
        return a["w"][...] + b["w"][...]

    assert add(a, b).tolist() == [2.0, 2.0]
