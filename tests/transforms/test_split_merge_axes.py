"""split_inputs/merge_inputs hand each graph-node argument over as its own pure
pytree, so a plain JAX transform's per-argument axes apply to it."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import nnx
from nnx_graph.transforms.general import merge_inputs, split_inputs


class Counters(nnx.Pytree):
    def __init__(self) -> None:
        self.index = nnx.Variable(jnp.arange(6))
        self.hits = nnx.Variable(jnp.zeros((6,), jnp.int32))


def test_jax_vmap_maps_one_node_and_broadcasts_another() -> None:
    counters = Counters()
    scale = nnx.Dict(k=nnx.Param(jnp.array(3)))
    in_axes = (0, None)

    @split_inputs
    @partial(jax.vmap, in_axes=in_axes, out_axes=(in_axes, None))
    @merge_inputs
    def bump(c, s):
        assert c.index.shape == ()

        @merge_inputs
        def add(c, s):
            c.hits[...] += s["k"][...]

        @merge_inputs
        def skip(c, s):
            pass

        split_inputs(jax.lax.cond)(c.index[...] % 3 == 0, add, skip, c, s)

    bump(counters, scale)
    np.testing.assert_array_equal(counters.hits[...], [3, 0, 0, 3, 0, 0])
    assert int(scale["k"][...]) == 3


def test_shared_variable_between_arguments_stays_shared() -> None:
    shared = nnx.Param(jnp.array(1.0))
    a, b = nnx.Dict(v=shared), nnx.Dict(v=shared, w=nnx.Param(jnp.array(2.0)))

    @split_inputs
    @jax.jit
    @merge_inputs
    def step(a, b):
        assert a["v"] is b["v"]
        a["v"][...] += 10.0
        return b["v"][...] + b["w"][...]

    assert float(step(a, b)) == 13.0
    assert float(shared[...]) == 11.0 and a["v"] is b["v"]
