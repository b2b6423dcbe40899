"""Objects moved between attributes inside a transform keep their identity in the
default mode (m.a, m.b = m.b, m.a swaps the objects, not their values)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

import nnx


class Two(nnx.Module):
    def __init__(self) -> None:
        self.a = nnx.Param(jnp.array(1.0))
        self.b = nnx.Param(jnp.array(2.0))


def test_jit_swap_of_variables_swaps_the_objects() -> None:
    @nnx.jit
    def swap(m):
        m.a, m.b = m.b, m.a

    m = Two()
    a, b = m.a, m.b
    swap(m)
    assert m.a is b and m.b is a
    # a Variable held elsewhere keeps its own value
    assert float(a[...]) == 1.0 and float(b[...]) == 2.0
    swap(m)
    assert m.a is a and m.b is b


def test_jit_swap_of_submodules_reuses_the_trace() -> None:
    traces = []

    class Pair(nnx.Module):
        def __init__(self) -> None:
            self.left = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.right = nnx.Linear(2, 2, rngs=nnx.Rngs(1))

    @nnx.jit
    def swap(m):
        traces.append(1)
        m.left, m.right = m.right, m.left

    m = Pair()
    left, right = m.left, m.right
    swap(m)
    assert m.left is right and m.right is left and m.left.kernel is right.kernel
    swap(m)
    assert m.left is left and m.right is right
    assert len(traces) == 1


def test_scan_refuses_objects_moved_by_the_step() -> None:
    # the step runs several times but is traced once: a move cannot be repeated
    @nnx.scan(in_axes=(None, nnx.Carry), out_axes=nnx.Carry, length=2)
    def step(m, c):
        m.a, m.b = m.b, m.a
        return c + 1

    m = Two()
    a, b = m.a, m.b
    with pytest.raises(nnx.GraphStructureError, match=r"m\.(a moved to m\.b|b moved to m\.a)"):
        step(m, jnp.zeros(()))
    assert m.a is a and m.b is b and float(a[...]) == 1.0


@pytest.mark.parametrize("graph", [True, False])
def test_other_modes_move_values_into_the_same_objects(graph: bool) -> None:
    @nnx.jit(graph=graph, graph_updates=False)
    def swap(m):
        a, b = m.a[...], m.b[...]
        m.a[...] = b
        m.b[...] = a

    m = Two()
    a = m.a
    swap(m)
    assert m.a is a and float(a[...]) == 2.0
