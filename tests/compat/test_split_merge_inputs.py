"""nnx.transforms.general.split_inputs/merge_inputs: plain JAX transforms over graph nodes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnx
from nnx.transforms.general import merge_inputs, split_inputs


class Counter(nnx.Module):
    def __init__(self) -> None:
        self.count = nnx.Variable(jnp.array(0))
        self.w = nnx.Param(jnp.array(2.0))


def test_jit_updates_the_callers_module() -> None:
    @split_inputs
    @jax.jit
    @merge_inputs
    def step(counter: Counter, x: jax.Array) -> jax.Array:
        counter.count.value += 1
        counter.w.value = counter.w.value * 2
        return x * counter.w.value

    counter = Counter()
    out = step(counter, jnp.ones(3))
    np.testing.assert_allclose(out, 4.0 * np.ones(3))
    assert int(counter.count.value) == 1 and float(counter.w.value) == 4.0
    step(counter, jnp.ones(3))
    assert int(counter.count.value) == 2 and float(counter.w.value) == 8.0


def test_shared_module_in_two_arguments_stays_shared() -> None:
    @split_inputs
    @jax.jit
    @merge_inputs
    def both(a: Counter, b: Counter) -> bool:
        a.count.value += 1
        return a is b

    counter = Counter()
    assert bool(both(counter, counter)) is True
    assert int(counter.count.value) == 1


def test_cond_branches_see_the_module() -> None:
    model = Counter()

    def bump(m: Counter, x: jax.Array) -> jax.Array:
        m.count.value += 10
        return x + m.w.value

    def keep(m: Counter, x: jax.Array) -> jax.Array:
        return x

    y = split_inputs(jax.lax.cond)(True, merge_inputs(bump), merge_inputs(keep), model, 1.0)
    assert float(y) == 3.0 and int(model.count.value) == 10
    y = split_inputs(jax.lax.cond)(False, merge_inputs(bump), merge_inputs(keep), model, 1.0)
    assert float(y) == 1.0 and int(model.count.value) == 10


def test_returned_modules() -> None:
    @split_inputs
    @jax.jit
    @merge_inputs
    def same_and_new(counter: Counter) -> tuple[Counter, Counter]:
        fresh = Counter()
        fresh.count.value = counter.count.value + 5
        return counter, fresh

    counter = Counter()
    returned, fresh = same_and_new(counter)
    assert returned is counter  # an input returned is the caller's object
    assert isinstance(fresh, Counter) and int(fresh.count.value) == 5


def test_merge_inputs_alone_just_calls() -> None:
    assert merge_inputs(lambda x: x + 1)(1) == 2
    assert split_inputs(lambda x: x * 2)(3) == 6  # no graph nodes, no merge_inputs inside
