"""nnx.vmap's error for broadcast state updated per example carries JAX's phrase
(as Flax's does) with the Variable's key path, and names it."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import nnx


class Env(nnx.Module):
    def __init__(self) -> None:
        self.shared = nnx.BatchStat(jnp.array(0.0))
        self.index = nnx.Param(jnp.arange(4.0))


def test_broadcast_state_set_per_example_error() -> None:
    env = Env()

    @nnx.vmap(in_axes=(nnx.StateAxes({nnx.BatchStat: None, ...: 0}),))
    def f(env):
        env.shared[...] = env.index[...]

    with pytest.raises(
        ValueError,
        match=r"at vmap out_axes\['shared'\], got axis spec None but output was batched on "
        r"axis 0: .* differs per example: env\.shared\.",
    ):
        f(env)
    assert float(env.shared[...]) == 0.0
