"""Optimizer over ref-mode Variables (``jax.new_ref``) and over parameters held as
plain array attributes, as Flax NNX 0.12 allows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import nnx


def test_update_writes_through_references_of_ref_mode_variables() -> None:
    model = nnx.vars_as(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), ref=True)
    ref = model.bias.get_raw_value()
    optimizer = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)
    grads = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
    optimizer.update(model, grads)
    assert model.bias.get_raw_value() is ref  # still the same reference
    assert model.bias[...].tolist() == [-0.5, -0.5, -0.5]

    @jax.jit
    def step(m: nnx.Linear, opt: nnx.Optimizer[nnx.Linear]) -> None:
        opt.update(m, grads)

    step(model, optimizer)  # plain jax.jit: the references are updated in place
    assert isinstance(model.kernel.get_raw_value(), jax.Ref)
    assert model.bias[...].tolist() == [-1.0, -1.0, -1.0]


class _ArrayModel(nnx.Module):
    def __init__(self) -> None:
        self.w = jnp.ones((2, 2))  # a plain array attribute, not a Variable
        self.count = jnp.array(0)

    def __call__(self, x: jax.Array) -> jax.Array:
        self.count += 1
        return x @ self.w


def test_update_sets_plain_array_parameters_on_the_model() -> None:
    model = _ArrayModel()
    wrt = lambda path, x: path[-1] == "w"
    optimizer = nnx.Optimizer(model, optax.sgd(0.25), wrt=wrt)

    @jax.jit
    def train_step(
        m: _ArrayModel, opt: nnx.Optimizer[_ArrayModel], x: jax.Array
    ) -> tuple[jax.Array, _ArrayModel, nnx.Optimizer[_ArrayModel]]:
        graphdef, params, rest = nnx.split(m, wrt, ...)

        def loss_fn(p: nnx.State) -> tuple[jax.Array, nnx.State]:
            inner = nnx.merge(graphdef, p, rest)
            return jnp.sum(inner(x)), nnx.state(inner, nnx.Not(wrt))

        (loss, counts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        nnx.update(m, counts)
        opt.update(m, grads)
        return loss, m, opt

    loss, model, optimizer = train_step(model, optimizer, jnp.ones((1, 2)))
    assert float(loss) == 4.0
    # d(sum(x @ w))/dw = 1 for every entry with x = ones: w -= 0.25
    assert model.w.tolist() == [[0.75, 0.75], [0.75, 0.75]]
    assert int(model.count) == 1 and int(optimizer.step[...]) == 1
