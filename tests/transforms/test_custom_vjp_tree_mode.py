"""nnx.custom_vjp in graph=False / graph_updates=False (given, or the current
defaults): bwd gets `updates_g`, per graph-node argument a copy of it holding the
cotangents of the Variables the function changed and None elsewhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import nnx


class Foo(nnx.Module):
    def __init__(self) -> None:
        self.x = nnx.Param(jnp.array(1.0))
        self.calls = nnx.Variable(jnp.array(0.0))


@pytest.mark.parametrize("graph", [True, False])
def test_updates_g_is_shaped_like_the_argument(graph: bool) -> None:
    seen = []

    @nnx.custom_vjp(graph=graph, graph_updates=False)
    def f(m):
        m.calls[...] += 1.0
        return jnp.sin(m.x[...])

    def f_fwd(m):
        return f(m), jnp.cos(m.x[...])

    def f_bwd(res, g, updates_g):
        (m_up,) = updates_g
        seen.append(m_up)
        grads = nnx.clone(m_up)
        grads.x = nnx.Param(res * g)
        return (grads,)

    f.defvjp(f_fwd, f_bwd)
    m = Foo()
    grads = nnx.grad(lambda m: f(m), graph=graph, graph_updates=False)(m)
    (m_up,) = seen
    assert isinstance(m_up, Foo) and m_up.x is None
    assert isinstance(m_up.calls, nnx.Variable) and len(jax.tree.leaves(m_up)) == 1
    assert float(nnx.state(grads)["x"][...]) == pytest.approx(float(jnp.cos(1.0)))
    assert float(m.calls[...]) == 1.0


def test_graph_updates_default_is_read_when_not_given() -> None:
    seen = []

    with nnx.set_graph_updates(False):

        @nnx.custom_vjp
        def f(m):
            return m.x[...] * 2

    def f_fwd(m):
        return f(m), None

    def f_bwd(res, g, updates_g=None):
        seen.append(updates_g)
        return (nnx.State({"x": nnx.Param(g * 2)}),)

    f.defvjp(f_fwd, f_bwd)
    m = Foo()
    nnx.grad(lambda m: f(m))(m)
    assert len(seen) == 1 and isinstance(seen[0], tuple)  # tree-mode bwd(res, g, updates_g)
