"""nnx.jit under misuse and stress: tracer leaks raise at the call and leave the
caller's objects exactly as they were; one model stepped from several threads
counts every step; very deep graphs work."""

from __future__ import annotations

import sys
import threading
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import nnx
import nnx_graph as nnxg


class Model(nnxg.Module):
    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w = nnxg.Param(jnp.asarray(rng.normal(size=(3, 3)), jnp.float32))
        self.b = nnxg.Param(jnp.zeros(3))
        self.calls = nnxg.Variable(jnp.array(0))

    def __call__(self, x: jax.Array) -> jax.Array:
        self.calls.value = self.calls.value + 1
        return jnp.tanh(x @ self.w.value + self.b.value)


def _snapshot(model: tp.Any) -> list[tp.Any]:
    """The value objects themselves (identity: 'exactly unchanged')."""
    return [v.raw_value for _, v in nnxg.iter_graph(model) if isinstance(v, nnxg.Variable)]


@nnxg.jit
def step(model: Model, x: jax.Array) -> jax.Array:
    y = model(x)
    model.b.value = model.b.value + y.mean()
    return y.sum()


X = jnp.ones((2, 3))


# ------------------------------------------------------------------ issue 14 §4
def test_mutating_a_closed_over_module_raises_at_the_call_and_changes_nothing():
    model = Model()
    before = _snapshot(model)

    @nnxg.jit
    def closes_over(x: jax.Array) -> jax.Array:
        return model(x).sum()  # model.calls is updated, but model is not an argument

    with pytest.raises(nnxg.TraceContextError) as info:
        closes_over(X)
    # raised by the Variable at the assignment (Flax's trace-level check) or by
    # nnx.jit's closure guard: either way it names the kind and says what to do
    message = str(info.value)
    assert "Variable" in message and "as an argument" in message
    assert all(a is b for a, b in zip(_snapshot(model), before))
    # the model is usable as it was, and passing it as an argument works
    expected = float(jnp.tanh(X @ model.w.value + model.b.value).sum())
    assert float(step(model, X)) == pytest.approx(expected, rel=1e-5)
    assert int(model.calls.value) == 1


def test_closed_over_module_reached_through_a_helper_function():
    model = Model()
    before = _snapshot(model)

    def helper(x: jax.Array) -> jax.Array:
        return model(x)

    with pytest.raises(nnxg.TraceContextError, match="as an argument"):
        nnxg.jit(lambda x: helper(x).sum())(X)
    assert all(a is b for a, b in zip(_snapshot(model), before))


def test_reading_a_closed_over_module_is_fine():
    model = Model()
    out = nnxg.jit(lambda x: (x @ model.w.value).sum())(X)
    assert float(out) == pytest.approx(float((X @ model.w.value).sum()), rel=1e-5)


@pytest.mark.parametrize(
    "outer",
    [
        pytest.param(lambda model: jax.jit(lambda x: step(model, x))(X), id="jax.jit"),
        pytest.param(lambda model: jax.grad(lambda x: step(model, x))(X), id="jax.grad"),
        pytest.param(
            lambda model: checkify.checkify(lambda x: step(model, x))(X), id="checkify(f)"
        ),
        pytest.param(lambda model: checkify.checkify(step)(model, X), id="checkify(nnx.jit)"),
    ],
)
def test_nnx_jit_under_an_outer_jax_transform_raises_and_changes_nothing(outer):
    model = Model()
    before = _snapshot(model)
    with pytest.raises(nnxg.TraceContextError) as info:
        outer(model)
    message = str(info.value)
    assert "called inside another JAX transform" in message
    assert "model.b" in message or "model.calls" in message
    assert "pass the Module as an argument" in message
    assert all(a is b for a, b in zip(_snapshot(model), before))
    step(model, X)  # still a working model
    assert int(model.calls.value) == 1


def test_nnx_jit_inside_nnx_checkify_updates_the_callers_module():
    # nnx.checkify rebuilds its arguments inside its own trace: an nnx.jit call on
    # them writes into objects of that trace, and nnx.checkify carries the result out
    model = Model()
    err, out = nnxg.checkify(step)(model, X)
    assert err.get() is None
    assert int(model.calls.value) == 1
    reference = Model()
    expected = jnp.tanh(X @ reference.w.value)
    np.testing.assert_allclose(model.b.value, expected.mean(), rtol=1e-5)
    assert float(out) == pytest.approx(float(expected.sum()), rel=1e-5)


def test_nnx_jit_inside_nnx_grad_counts_the_step_and_differentiates():
    model = Model()

    def loss(x: jax.Array, m: Model) -> jax.Array:
        return step(m, x)

    grad_x = nnxg.grad(loss)(X, model)
    assert int(model.calls.value) == 1  # the BatchStat-like update came out of grad
    reference = Model()
    expected = jax.grad(lambda x: jnp.tanh(x @ reference.w.value).sum())(X)
    np.testing.assert_allclose(grad_x, expected, rtol=1e-5)


def test_nnx_jit_under_jax_jit_on_objects_created_inside_works():
    def fresh(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        model = Model()
        model.b.value = model.b.value + 0.0 * x.sum()  # values of this trace
        model.calls.value = model.calls.value + 0 * x.sum().astype(jnp.int32)
        out = step(model, x)
        return out, model.calls.value

    out, calls = jax.jit(fresh)(X)
    assert int(calls) == 1
    reference = Model()
    assert float(out) == pytest.approx(float(jnp.tanh(X @ reference.w.value).sum()), rel=1e-5)


def test_nnx_jit_under_jax_grad_on_a_merged_model_works():
    graphdef, params, rest = nnxg.split(Model(), nnxg.Param, ...)

    def loss(params: tp.Any, x: jax.Array) -> jax.Array:
        model = nnxg.merge(graphdef, params, rest)
        return step(model, x)

    grads = jax.grad(loss)(params, X)
    assert grads["w"].value.shape == (3, 3)
    assert float(jnp.abs(grads["w"].value).sum()) > 0


# ------------------------------------------------------------------ issue 14 §6
def test_threads_stepping_one_model_count_every_step():
    model = nnx.Linear(4, 4, rngs=nnx.Rngs(0))
    reference = nnx.clone(model)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    reference_opt = nnx.Optimizer(reference, optax.adam(1e-2), wrt=nnx.Param)
    x = jnp.ones((8, 4))

    @nnx.jit
    def train_step(model: tp.Any, optimizer: tp.Any, x: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: (m(x) ** 2).mean())(model)
        optimizer.update(model, grads)
        return loss

    train_step(reference, reference_opt, x)  # compile before the threads start
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(50):
                train_step(model, optimizer, x)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert int(optimizer.step.value) == 200
    counts = [
        np.asarray(v.value)
        for path, v in nnx.iter_graph(optimizer.opt_state)
        if path and path[-1] == "count" and isinstance(v, nnx.Variable)
    ]
    assert counts and all(int(c) == 200 for c in counts)
    # every step used the same batch, so the order does not matter: 200 steps in one
    # thread give the same weights
    for _ in range(199):
        train_step(reference, reference_opt, x)
    np.testing.assert_allclose(model.kernel.value, reference.kernel.value, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ issue 14 §7
class Chain(nnxg.Module):
    def __init__(self, child: Chain | None) -> None:
        self.child = child
        self.w = nnxg.Param(jnp.ones(()))


def test_jit_over_a_chain_of_ten_thousand_modules():
    depth = 10_000
    assert depth > sys.getrecursionlimit()
    root: Chain | None = None
    for _ in range(depth):
        root = Chain(root)
    assert root is not None

    @nnxg.jit
    def bump_ends(m: Chain) -> jax.Array:
        m.w.value = m.w.value + 1
        node = m
        while node.child is not None:
            node = node.child
        node.w.value = node.w.value * 3
        return m.w.value

    assert float(bump_ends(root)) == 2.0
    assert float(bump_ends(root)) == 3.0  # the cached entry is used
    last = root
    while last.child is not None:
        last = last.child
    assert float(last.w.value) == 9.0
    assert float(root.child.w.value) == 1.0  # type: ignore[union-attr]
