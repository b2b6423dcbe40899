"""A State (or bare Variable) passed where a graph is expected: ``clone`` copies its
Variables, and ``grad`` w.r.t. a State returns gradients keyed like the State; the
GraphDef from ``split`` is a leafless pytree, so plain ``jax.jit`` takes it."""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph as nnx


class Affine(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.asarray([[1.0, -2.0], [0.5, 3.0]]))
        self.b = nnx.Param(jnp.asarray([0.25, -0.5]))
        self.count = nnx.BatchStat(jnp.asarray(0.0))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return x @ self.w.value + self.b.value


X = jnp.asarray([[1.0, 2.0]])


def test_clone_of_a_state_has_its_own_variables() -> None:
    m = Affine()
    params = nnx.state(m, nnx.Param)
    copy = nnx.clone(params)
    assert copy["w"] is not m.w and copy["b"] is not m.b
    m.b.value = m.b.value + 10.0
    # the copy keeps the values from before the change
    np.testing.assert_allclose(copy["b"].value, [0.25, -0.5])
    assert type(copy["w"]) is nnx.Param


def test_clone_of_a_state_with_shared_variables_keeps_them() -> None:
    m = Affine()
    shared = nnx.clone(nnx.state(m, nnx.Param), variables=False)
    assert shared["w"] is m.w


def test_grad_with_respect_to_a_state_argument() -> None:
    m = Affine()
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)

    def loss(p: nnx.State, r: nnx.State) -> jnp.ndarray:
        return jnp.sum(nnx.merge(graphdef, p, r)(X) ** 2)

    grads = nnx.grad(loss)(params, rest)
    assert set(grads) == {"w", "b"}
    assert isinstance(grads["w"], nnx.Param)
    y = X @ m.w.value + m.b.value
    np.testing.assert_allclose(grads["b"].value, 2 * y[0], rtol=1e-6)
    np.testing.assert_allclose(grads["w"].value, 2 * X.T @ y, rtol=1e-6)


def test_grad_with_respect_to_a_bare_variable() -> None:
    v = nnx.Param(jnp.asarray([1.0, -3.0]))
    g = nnx.grad(lambda p: jnp.sum(p.value**2))(v)
    assert isinstance(g, nnx.Param)
    np.testing.assert_allclose(g.value, [2.0, -6.0])


def test_clone_of_the_states_of_several_filters() -> None:
    m = Affine()
    params, rest = nnx.clone(nnx.state(m, nnx.Param, ...))
    assert params["w"] is not m.w and rest["count"] is not m.count
    m.count.value = m.count.value + 1.0
    assert float(rest["count"].value) == 0.0


def test_graphdef_is_a_leafless_pytree_for_plain_jax_jit() -> None:
    m = Affine()
    graphdef, state = nnx.split(m)
    assert jax.tree.leaves(graphdef) == []
    assert jax.tree.map(lambda x: x, graphdef) == graphdef

    @jax.jit
    def forward(g: nnx.GraphDef[Affine], s: nnx.State, x: jnp.ndarray) -> tuple[tp.Any, ...]:
        model = nnx.merge(g, s)
        model.count.value = model.count.value + 1.0
        return model(x), *nnx.split(model)

    y, g2, s2 = forward(graphdef, state, X)
    np.testing.assert_allclose(y, X @ m.w.value + m.b.value, rtol=1e-6)
    assert g2 == graphdef
    assert float(nnx.merge(g2, s2).count.value) == 1.0
