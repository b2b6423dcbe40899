"""nnx.prefix over a tuple/list of nodes gives one prefix State per node."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import nnx


class Pair(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.ones((4, 2)))
        self.s = nnx.BatchStat(jnp.zeros(2))


@pytest.mark.parametrize("container", [tuple, list])
def test_prefix_of_a_container_unpacks_per_node(container: type) -> None:
    a, b = Pair(), Pair()
    out = nnx.prefix(container([a, b]), {nnx.Param: 0, ...: None})
    assert type(out) is container
    pa, pb = out
    assert pa.to_pure_dict() == {"w": 0, "s": None}
    assert pb.to_pure_dict() == {"w": 0, "s": None}


@pytest.mark.parametrize("graph", [True, False])
def test_unpacked_prefixes_drive_vmap(graph: bool) -> None:
    a, b = Pair(), Pair()
    pa, pb = nnx.prefix((a, b), {nnx.Param: 0, ...: None}, graph=graph)

    @nnx.vmap(in_axes=(pa, pb), graph=graph, graph_updates=False)
    def f(x, y):
        return x.w[...] * 2 + y.w[...] + x.s[...]

    assert f(a, b).shape == (4, 2)
    assert float(f(a, b)[0, 0]) == 3.0
