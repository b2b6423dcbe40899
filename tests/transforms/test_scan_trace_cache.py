"""nnx.scan traces its step once per structure: later calls with inputs of the same
structure and shapes reuse the trace, and nothing of one call leaks into another."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import nnx


def test_second_call_reuses_the_trace() -> None:
    traces = []

    @nnx.scan
    def step(total, x):
        traces.append(1)
        return total + x, x * 2

    xs = jnp.arange(4.0)
    total, doubled = step(jnp.zeros(()), xs)
    total, doubled = step(total, xs + 1)
    assert len(traces) == 1
    assert float(total) == float(xs.sum() + (xs + 1).sum())
    np.testing.assert_allclose(doubled, (xs + 1) * 2)


def test_module_argument_reuses_the_trace_and_values_are_fresh() -> None:
    traces = []

    class Scale(nnx.Module):
        def __init__(self, w):
            self.w = nnx.Param(w)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def apply(h, layer):
        traces.append(1)
        return h * layer.w

    stack = Scale(jnp.array([2.0, 3.0]))
    assert float(apply(jnp.ones(()), stack)) == 6.0
    stack.w[...] = jnp.array([5.0, 7.0])
    assert float(apply(jnp.ones(()), stack)) == 35.0
    other = Scale(jnp.array([1.0, 4.0]))
    assert float(apply(jnp.ones(()), other)) == 4.0
    assert len(traces) == 1


def test_broadcast_array_is_an_input_not_a_baked_constant() -> None:
    traces = []

    @nnx.scan(in_axes=(nnx.Carry, None, 0))
    def step(h, scale, x):
        traces.append(1)
        return h + scale * x, h

    xs = jnp.ones(3)
    h, _ = step(jnp.zeros(()), jnp.array(1.0), xs)
    assert float(h) == 3.0
    h, _ = step(jnp.zeros(()), jnp.array(10.0), xs)
    assert float(h) == 30.0
    assert len(traces) == 1


def test_static_attribute_change_traces_again() -> None:
    traces = []

    class Step(nnx.Module):
        def __init__(self):
            self.factor = 2
            self.count = nnx.BatchStat(jnp.array(0))

        def __call__(self, h, x):
            traces.append(1)
            self.count[...] += 1
            return h * self.factor + x, None

    @nnx.scan(in_axes=(None, nnx.Carry, 0))
    def run(module, h, x):
        return module(h, x)

    module = Step()
    h, _ = run(module, jnp.ones(()), jnp.zeros(2))
    assert float(h) == 4.0
    module.factor = 3
    h, _ = run(module, jnp.ones(()), jnp.zeros(2))
    assert float(h) == 9.0
    assert len(traces) == 2
    assert int(module.count[...]) == 4


def test_python_scalar_broadcast_stays_static_and_keys_the_trace() -> None:
    traces = []

    @nnx.scan(in_axes=(nnx.Carry, None, 0))
    def step(h, n, x):
        traces.append(1)
        assert isinstance(n, int)  # not traced
        return h + n * x, None

    xs = jnp.ones(2)
    assert float(step(jnp.zeros(()), 2, xs)[0]) == 4.0
    assert float(step(jnp.zeros(()), 2, xs)[0]) == 4.0
    assert float(step(jnp.zeros(()), 5, xs)[0]) == 10.0
    assert len(traces) == 2
