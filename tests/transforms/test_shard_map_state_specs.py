"""nnx.shard_map takes a prefix of a container argument's structure as its in_spec
(e.g. a State of PartitionSpecs for a State argument), as vmap takes axes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import nnx


def _mesh() -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.array(jax.devices()[:1]), ("a",))


@pytest.mark.parametrize("graph", [True, False])
def test_state_argument_with_a_state_of_specs(graph: bool) -> None:
    model = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    specs = nnx.State({"kernel": P(None, "a"), "bias": P()})
    seen = []

    @nnx.shard_map(
        mesh=_mesh(),
        in_specs=(specs,),
        out_specs=P(),
        check_vma=False,
        graph=graph,
        graph_updates=False,
    )
    def total(state):
        m = nnx.merge(graphdef, state)
        seen.append(m.kernel.shape)
        return m.kernel[...].sum() + m.bias[...].sum()

    out = total(state)
    assert seen == [(4, 2)]  # one device: the shard is the whole kernel
    np.testing.assert_allclose(out, model.kernel[...].sum(), rtol=1e-6)


def test_tuple_of_modules_with_a_tuple_of_specs() -> None:
    a, b = nnx.Dict(w=nnx.Param(jnp.ones(4))), nnx.Dict(w=nnx.Param(jnp.full(4, 2.0)))

    @nnx.shard_map(mesh=_mesh(), in_specs=((P("a"), P()),), out_specs=P("a"))
    def add(pair):
        return pair[0]["w"][...] + pair[1]["w"][...]

    np.testing.assert_allclose(add((a, b)), np.full(4, 3.0))


def test_prefix_that_does_not_fit_is_refused() -> None:
    model = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
    _, state = nnx.split(model)

    @nnx.shard_map(mesh=_mesh(), in_specs=((P(), P(), P()),), out_specs=P())
    def f(state):
        return 0.0

    with pytest.raises(TypeError, match=r"prefix of the argument's structure"):
        f(state)


def test_vmap_takes_a_prefix_of_a_dict_of_modules() -> None:
    stacked = nnx.Dict(w=nnx.Param(jnp.arange(3.0)))
    shared = nnx.Dict(w=nnx.Param(jnp.array(10.0)))

    @nnx.vmap(in_axes=({"per_row": 0, "shared": None},))
    def combine(parts):
        return parts["per_row"]["w"][...] + parts["shared"]["w"][...]

    np.testing.assert_allclose(combine({"per_row": stacked, "shared": shared}), [10.0, 11.0, 12.0])
