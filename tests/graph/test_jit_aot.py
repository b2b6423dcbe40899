"""JitWrapped.lower / .trace / .eval_shape and jit_partial(...).lower: nnx's
Lowered/Traced/Compiled stages wrapping JAX's own, for the same program a call
runs, without touching the objects; a Compiled is called with Modules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph.transforms import compilation


class Counter(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.arange(3.0))
        self.count = nnx.Variable(jnp.array(0))


def step(c: Counter, x: jax.Array) -> jax.Array:
    c.count.value = c.count.value + 1
    c.w.value = c.w.value * 2
    return (c.w.value * x).sum()


def _values(c: Counter) -> list[object]:
    return [c.w.raw_value, c.count.raw_value]


def test_lower_returns_jax_lowered_and_leaves_objects_unchanged():
    c = Counter()
    before = _values(c)
    f = nnx.jit(step)
    lowered = f.lower(c, jnp.ones(3))
    assert isinstance(lowered, compilation.Lowered)
    assert isinstance(lowered.lowered, jax.stages.Lowered)
    assert all(a is b for a, b in zip(_values(c), before))
    compiled = lowered.compile()
    assert isinstance(compiled, compilation.Compiled)
    assert isinstance(compiled.compiled, jax.stages.Compiled)
    # the lowered program is the one a call runs: same inputs, same outputs
    text = lowered.as_text()
    assert "stablehlo.multiply" in text
    out = f(c, jnp.ones(3))
    assert float(out) == pytest.approx(float((jnp.arange(3.0) * 2).sum()))
    assert int(c.count.value) == 1


def test_trace_returns_jax_traced_with_the_jaxpr():
    c = Counter()
    before = _values(c)
    traced = nnx.jit(step).trace(c, jnp.ones(3))
    assert isinstance(traced, compilation.Traced)
    assert isinstance(traced.traced, jax.stages.Traced)
    jaxpr = str(traced.jaxpr)  # JAX's attributes are read through
    assert "mul" in jaxpr and "add" in jaxpr
    assert isinstance(traced.lower(), compilation.Lowered)
    assert all(a is b for a, b in zip(_values(c), before))


def test_eval_shape_returns_shapes_and_changes_nothing():
    c = Counter()
    before = _values(c)
    out = nnx.jit(lambda c, x: jnp.outer(c.w.value, x)).eval_shape(c, jnp.ones(5))
    assert out == jax.ShapeDtypeStruct((3, 5), jnp.float32)
    shape = nnx.jit(step).eval_shape(c, jnp.ones(3))
    assert shape == jax.ShapeDtypeStruct((), jnp.float32)
    assert all(a is b for a, b in zip(_values(c), before))


def test_eval_shape_of_a_function_returning_a_module_is_abstract():
    made = nnx.jit(lambda x: Counter()).eval_shape(jnp.ones(2))
    assert isinstance(made, Counter)
    assert isinstance(made.w.value, jax.ShapeDtypeStruct)
    assert made.w.value.shape == (3,)


def test_lower_with_static_and_keyword_arguments():
    f = nnx.jit(lambda c, n, scale=1.0: c.w.value * n * scale, static_argnums=1)
    c = Counter()
    lowered = f.lower(c, 3, scale=jnp.array(2.0))
    result = lowered.compile()
    assert isinstance(lowered, compilation.Lowered)
    np.testing.assert_allclose(result(c, scale=jnp.array(2.0)), jnp.arange(3.0) * 6)
    np.testing.assert_allclose(f(c, 3, scale=jnp.array(2.0)), jnp.arange(3.0) * 6)


def test_jit_partial_lower_trace_eval_shape_and_call():
    c = Counter()
    f = nnx.jit_partial(step, c)
    before = _values(c)
    assert isinstance(f.lower(jnp.ones(3)), compilation.Lowered)
    assert isinstance(f.trace(jnp.ones(3)), compilation.Traced)
    assert f.eval_shape(jnp.ones(3)) == jax.ShapeDtypeStruct((), jnp.float32)
    assert all(a is b for a, b in zip(_values(c), before))
    f(jnp.ones(3))
    f(jnp.ones(3))
    assert int(c.count.value) == 2
    np.testing.assert_allclose(c.w.value, jnp.arange(3.0) * 4)


def test_compiled_is_called_with_modules_and_carries_updates_back():
    c = Counter()
    exe = nnx.jit(step).lower(c, jnp.ones(3)).compile()
    out1 = exe(c, jnp.ones(3))
    out2 = exe(c, jnp.ones(3))
    assert int(c.count.value) == 2
    np.testing.assert_allclose(c.w.value, jnp.arange(3.0) * 4)
    assert float(out1) == pytest.approx(float((jnp.arange(3.0) * 2).sum()))
    assert float(out2) == pytest.approx(float((jnp.arange(3.0) * 4).sum()))
    # another object of the same structure runs the same executable
    other = Counter()
    exe(other, jnp.ones(3))
    assert int(other.count.value) == 1 and int(c.count.value) == 2


def test_compiled_keeps_jax_analysis_methods():
    c = Counter()
    lowered = nnx.jit(step).lower(c, jnp.ones(3))
    assert "stablehlo" in lowered.as_text()
    assert lowered.compiler_ir() is not None
    assert lowered.in_tree == lowered.lowered.in_tree
    compiled = lowered.compile()
    assert compiled.as_text() == compiled.compiled.as_text()
    analysis = compiled.cost_analysis()
    assert analysis is None or isinstance(analysis, (dict, list))
    assert compiled.input_shardings == compiled.compiled.input_shardings
    # a method JAX's stage has and the wrapper does not spell out
    assert compiled.out_info is not None and compiled.runtime_executable() is not None
    assert str(compiled.out_info) == str(compiled.compiled.out_info)


def test_compiled_of_jit_partial_takes_the_remaining_arguments():
    c = Counter()
    exe = nnx.jit_partial(step, c).lower(jnp.ones(3)).compile()
    exe(jnp.ones(3))
    exe(jnp.ones(3))
    assert int(c.count.value) == 2


def test_compiled_with_donation_and_static_argument():
    def scaled(c, n, x):
        c.count.value = c.count.value + n
        return x * n

    f = nnx.jit(scaled, static_argnums=1, donate_argnums=0)
    c = Counter()
    exe = f.lower(c, 3, jnp.ones(2)).compile()
    # as with JAX, the compiled function takes the non-static arguments
    np.testing.assert_allclose(exe(c, jnp.ones(2)), [3.0, 3.0])
    assert int(c.count.value) == 3


def test_unsupported_stage_constructors_say_how_to_get_a_stage():
    with pytest.raises(NotImplementedError, match="lower"):
        compilation.Lowered.from_flat_info(None, None, None, (), None)
    with pytest.raises(NotImplementedError, match="call the Compiled object itself"):
        compilation.Compiled.call()


def test_compiled_takes_the_static_arguments_given_to_lower():
    def scaled(c, k, x, *, mode="mul"):
        c.count.value = c.count.value + k
        return x * k if mode == "mul" else x + k

    c = Counter()
    f = nnx.jit(scaled, static_argnums=1, static_argnames="mode")
    exe = f.lower(c, 4, jnp.ones(2), mode="add").compile()
    np.testing.assert_allclose(exe(c, jnp.ones(2)), [5.0, 5.0])
    assert int(c.count.value) == 4
    partial_exe = nnx.jit_partial(scaled, c, static_argnums=1).lower(2, jnp.ones(2)).compile()
    np.testing.assert_allclose(partial_exe(jnp.ones(2)), [2.0, 2.0])
    assert int(c.count.value) == 6
