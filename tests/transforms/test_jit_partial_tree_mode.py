"""nnx.jit_partial with graph=False refuses shared Variables among the bound
arguments when it is created (as Flax), not at the first call."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import nnx


class Holder(nnx.Module):
    def __init__(self, v: nnx.Param) -> None:
        self.v = v


def _add(a, b, x):
    a.v[...] += x
    return a.v[...] + b.v[...]


def test_tree_mode_refuses_shared_bound_arguments_at_creation() -> None:
    v = nnx.Param(jnp.array(1.0))
    with pytest.raises(ValueError, match=r"Duplicate Param found at paths:\n  - a\.v\n  - b\.v"):
        nnx.jit_partial(_add, Holder(v), Holder(v), graph=False, graph_updates=False)


def test_graph_mode_keeps_the_shared_variable() -> None:
    v = nnx.Param(jnp.array(1.0))
    step = nnx.jit_partial(_add, Holder(v), Holder(v), graph=True, graph_updates=False)
    assert float(step(jnp.array(1.0))) == 4.0
    assert float(v[...]) == 2.0


def test_tree_mode_without_sharing_works() -> None:
    step = nnx.jit_partial(
        _add, Holder(nnx.Param(jnp.array(1.0))), Holder(nnx.Param(jnp.array(5.0))), graph=False
    )
    assert float(step(jnp.array(1.0))) == 7.0
