"""nnx.scan: carry and scanned arguments, StateAxes, length/reverse/unroll, out_axes,
scan over a stack of layers (created with vmap + split_rngs) matching a Python loop,
inside jit, and errors."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx


class Layer(nnx.Module):
    def __init__(self, d: int, *, rngs: nnx.Rngs) -> None:
        self.w = nnx.Param(jax.random.normal(rngs.params(), (d, d)) * 0.5)
        self.b = nnx.Param(jnp.zeros(d))
        self.count = nnx.BatchStat(jnp.array(0.0))

    def __call__(self, x: jax.Array) -> jax.Array:
        self.count.value = self.count.value + 1
        return jnp.tanh(x @ self.w + self.b)


DEPTH = 4
X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


@nnx.split_rngs(splits=DEPTH)
@nnx.vmap(in_axes=(0,), out_axes=0)
def create_stack(rngs: nnx.Rngs) -> Layer:
    return Layer(3, rngs=rngs)


_create_stack_jitted = nnx.jit(create_stack)


def make_stack() -> Layer:
    # jitted once for the module: eager vmap compiles every random op separately
    return _create_stack_jitted(nnx.Rngs(0))


def unstack(stack: Layer) -> list[Layer]:
    graphdef, state = nnx.split(stack)
    return [nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state)) for i in range(DEPTH)]


def python_loop(stack: Layer, x: jax.Array) -> jax.Array:
    for layer in unstack(nnx.clone(stack)):
        x = layer(x)
    return x


@nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
def forward(x: jax.Array, layer: Layer) -> jax.Array:
    return layer(x)


# ----------------------------------------------------------------- scan over layers
def test_carry_is_a_class_and_the_scan_default():
    assert isinstance(nnx.Carry, type)
    from nnx_graph.transforms import iteration

    assert iteration.Carry is nnx.Carry
    defaults = inspect.signature(nnx.scan).parameters
    assert defaults["in_axes"].default == (nnx.Carry, 0)
    assert defaults["out_axes"].default == (nnx.Carry, 0)

    @nnx.scan
    def running(total, x):
        return total + x, total + x

    total, partial = running(jnp.array(0.0), jnp.arange(4.0))
    assert float(total) == 6.0 and partial.tolist() == [0.0, 1.0, 3.0, 6.0]


def test_scan_over_layers_matches_a_python_loop():
    stack = create_stack(nnx.Rngs(0))  # eager creation
    np.testing.assert_allclose(stack.w.value, make_stack().w.value, rtol=1e-6)
    expected = python_loop(stack, X)
    np.testing.assert_allclose(forward(X, stack), expected, rtol=1e-5, atol=1e-6)
    assert stack.count.value.tolist() == [1.0] * DEPTH  # per-layer updates came out


def test_scan_over_layers_inside_jit_with_stack_created_inside_jit():
    stack = nnx.jit(make_stack)()
    assert stack.w.shape == (DEPTH, 3, 3)
    expected = python_loop(stack, X)

    @nnx.jit
    def model(s, x):
        return forward(x, s)

    np.testing.assert_allclose(model(stack, X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(stack, X), expected, rtol=1e-5, atol=1e-6)
    assert stack.count.value.tolist() == [2.0] * DEPTH


def test_scan_with_layer_first_and_stacked_outputs():
    stack = make_stack()

    @nnx.scan(in_axes=(0, nnx.Carry), out_axes=(nnx.Carry, 0), graph=True, graph_updates=True)
    def step(layer, x):
        y = layer(x)
        return y, y.sum()

    carry, ys = step(stack, X)
    assert carry.shape == (2, 3) and ys.shape == (DEPTH,)
    np.testing.assert_allclose(carry, python_loop(stack, X), rtol=1e-5, atol=1e-6)


def test_reverse_unroll_and_length():
    xs = jnp.arange(5.0)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0), reverse=True, unroll=2)
    def cumsum(total, x):
        total = total + x
        return total, total

    total, partial = cumsum(jnp.array(0.0), xs)
    assert float(total) == 10.0 and partial.tolist() == [10.0, 10.0, 9.0, 7.0, 4.0]

    @nnx.scan(in_axes=nnx.Carry, out_axes=nnx.Carry, length=3)
    def count(c):
        return c + 1

    assert int(count(0)) == 3


def test_scan_axis_other_than_zero_and_broadcast_arguments():
    xs = jnp.arange(6.0).reshape(2, 3)

    @nnx.scan(in_axes=(nnx.Carry, 1, None), out_axes=(nnx.Carry, 1))
    def step(c, column, scale):
        return c + column.sum(), column * scale

    total, scaled = step(jnp.array(0.0), xs, 2.0)
    assert float(total) == 15.0 and scaled.shape == (2, 3)
    np.testing.assert_allclose(scaled, xs * 2)


def test_module_as_carry_is_updated_in_place():
    layer = Layer(3, rngs=nnx.Rngs(0))
    reference = nnx.clone(layer)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def step(carry, x):
        m, h = carry
        h = m(h + x)
        return (m, h), h.sum()

    (same, h), sums = step((layer, jnp.zeros(3)), jnp.ones((5, 3)))
    assert same is layer and float(layer.count.value) == 5.0 and sums.shape == (5,)
    expected = jnp.zeros(3)
    for _ in range(5):
        expected = reference(expected + 1)
    np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-6)


def test_broadcast_module_state_is_threaded_through_the_loop():
    layer = Layer(3, rngs=nnx.Rngs(0))

    @nnx.scan(in_axes=(nnx.Carry, None, 0), out_axes=nnx.Carry)
    def step(h, m, x):
        return m(h + x)

    step(jnp.zeros(3), layer, jnp.ones((4, 3)))
    assert float(layer.count.value) == 4.0


def test_stateaxes_scan_params_carry_counts():
    stack = make_stack()
    stack.count.value = jnp.array(0.0)  # one counter for the whole stack
    axes = nnx.StateAxes({nnx.BatchStat: nnx.Carry, ...: 0})

    @nnx.scan(in_axes=(axes, nnx.Carry), out_axes=nnx.Carry)
    def run(layer, x):
        return layer(x)

    run(stack, X)
    assert float(stack.count.value) == DEPTH


def test_scan_inside_grad():
    stack = make_stack()

    def loss(s):
        return forward(X, s).sum()

    grads = nnx.grad(loss)(stack)
    assert grads["w"].value.shape == (DEPTH, 3, 3)
    assert stack.count.value.tolist() == [1.0] * DEPTH


def test_scan_transform_metadata():
    from nnx_graph._sharding import PARTITION_NAME

    stack = nnx.Dict(w=nnx.Param(jnp.ones((DEPTH, 3)), sharding_names=("layers", "model")))
    seen = []

    @nnx.scan(
        in_axes=(0, nnx.Carry), out_axes=nnx.Carry, transform_metadata={PARTITION_NAME: "layers"}
    )
    def run(d, x):
        seen.append(d["w"].sharding_names)
        return x + d["w"].value

    assert run(stack, jnp.zeros(3)).tolist() == [4.0, 4.0, 4.0]
    assert seen == [("model",)] and stack["w"].sharding_names == ("layers", "model")


def test_scan_exception_leaves_caller_unchanged():
    stack = make_stack()

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def bad(x, layer):
        layer(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        bad(X, stack)
    assert stack.count.value.tolist() == [0.0] * DEPTH


# ----------------------------------------------------------------- errors
def test_carry_structure_mismatch():
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def step(c, x):
        return (c, c), x

    with pytest.raises(
        nnx.GraphStructureError,
        match=r"nnx\.scan: the carry returned by the "
        r"function has a different structure",
    ):
        step(jnp.zeros(()), jnp.ones(3))


def test_carry_dtype_and_shape_mismatch_are_named():
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))
    def to_int(c, x):
        return {"h": c["h"].astype(jnp.int32)}, x

    with pytest.raises(TypeError, match=r"c\['h'\]: float32\[\] going in, int32\[\] coming out"):
        to_int({"h": jnp.zeros(())}, jnp.ones(3))

    layer = Layer(3, rngs=nnx.Rngs(0))

    @nnx.scan(in_axes=(nnx.Carry, None, 0), out_axes=nnx.Carry)
    def grow(h, m, x):
        m.count.value = jnp.zeros(2)
        return h

    with pytest.raises(TypeError, match=r"m\.count: float32\[\] going in, float32\[2\] coming out"):
        grow(jnp.zeros(3), layer, jnp.ones((2, 3)))
    assert layer.count.shape == ()


def test_scanned_lengths_mismatch_names_inputs():
    stack = make_stack()

    @nnx.scan(in_axes=(nnx.Carry, 0, 0), out_axes=nnx.Carry)
    def step(c, layer, x):
        return layer(c) + x

    with pytest.raises(
        ValueError,
        match=r"length 4: layer\.b, layer\.count, layer\.w; "
        r"length 3: x",
    ):
        step(X, stack, jnp.ones((3, 2, 3)))
    with pytest.raises(ValueError, match=r"length 2: length; length 4: layer\.b"):
        nnx.scan(step.__wrapped__, in_axes=(nnx.Carry, 0, None), out_axes=nnx.Carry, length=2)(
            X, stack, 0.0
        )


def test_scanning_an_unstacked_variable_is_named():
    layer = Layer(3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError,
        match=r"nnx\.scan: layer\.count has shape \(\) but is scanned "
        r"over axis 0",
    ):
        forward(X, layer)


def test_structural_change_inside_scan_is_rejected():
    stack = make_stack()

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def step(x, layer):
        del layer.count  # removing a Variable (adding one is allowed: tests/transforms)
        return x

    with pytest.raises(
        nnx.GraphStructureError,
        match=r"nnx\.scan: the function changed the "
        r"structure",
    ):
        step(X, stack)
    assert hasattr(stack, "count")


def test_bad_in_and_out_axes():
    with pytest.raises(
        ValueError, match=r"Found multiple Carry definitions at in_axes\[0\] and in_axes\[1\]"
    ):
        nnx.scan(lambda a, b: (a, b), in_axes=(nnx.Carry, nnx.Carry))(1.0, 2.0)
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function got 2"):
        nnx.scan(lambda a, b: a, in_axes=(nnx.Carry,))(1.0, 2.0)
    with pytest.raises(ValueError, match=r"expects the function to return a tuple of 2"):
        nnx.scan(lambda c, x: c, in_axes=(nnx.Carry, 0))(jnp.zeros(()), jnp.ones(3))
    with pytest.raises(
        ValueError, match=r"If one of in_axes or out_axes has Carry, the other must also"
    ):
        nnx.scan(lambda c, x: x, in_axes=(nnx.Carry, 0), out_axes=0)(1.0, jnp.ones(3))
    with pytest.raises(ValueError, match=r"the other must also have Carry. Got in_axes=\(None"):
        nnx.scan(lambda c, x: (c, x), in_axes=(None, 0))(1.0, jnp.ones(3))
    with pytest.raises(ValueError, match=r"Carry must be at the top-level, it cannot be nested"):
        nnx.scan(lambda c: c, in_axes=((nnx.Carry, 0),))((1.0, jnp.ones(3)))
    with pytest.raises(ValueError, match=r"cannot be nested: out_axes\[0\]"):
        nnx.scan(lambda c, x: (c, x), out_axes=((nnx.Carry, 0),))(1.0, jnp.ones(3))
    with pytest.raises(ValueError, match=r"When in_axes=Carry, the function must take exactly one"):
        nnx.scan(lambda a, b: (a, b), in_axes=nnx.Carry, out_axes=nnx.Carry, length=2)(1.0, 2.0)
    counted = nnx.scan(lambda c: c + 1, in_axes=nnx.Carry, out_axes=nnx.Carry, length=3)(0.0)
    assert float(counted) == 3.0


class Tag(nnx.Module):
    def __init__(self, x: jax.Array) -> None:
        self.w = nnx.Param(x * jnp.ones(2))
        self.n = nnx.BatchStat(x)


# ----------------------------------------------------------------- per-step outputs
def test_per_step_outputs_may_be_objects_created_in_the_step():
    xs = jnp.arange(3.0)
    total, tags = nnx.scan(lambda c, x: (c + x, Tag(x)))(jnp.array(0.0), xs)
    assert float(total) == 3.0 and isinstance(tags, Tag)
    assert tags.w.value.shape == (3, 2) and tags.w.value[:, 0].tolist() == [0.0, 1.0, 2.0]
    assert tags.n.value.tolist() == [0.0, 1.0, 2.0]
    # a bare Variable, and arrays next to it
    _, (var, y) = nnx.scan(lambda c, x: (c, (nnx.Param(x * 2), x)))(jnp.array(0.0), xs)
    assert isinstance(var, nnx.Param) and var.value.tolist() == [0.0, 2.0, 4.0]
    assert y.tolist() == xs.tolist()
    # an out axis other than 0, and per kind of state with StateAxes
    _, var = nnx.scan(lambda c, x: (c, nnx.Param(x * jnp.ones(2))), out_axes=(nnx.Carry, 1))(
        jnp.array(0.0), xs
    )
    assert var.value.shape == (2, 3) and var.value[0].tolist() == [0.0, 1.0, 2.0]
    per_kind = nnx.StateAxes({nnx.Param: 1, ...: 0})
    _, tags = nnx.scan(lambda c, x: (c, Tag(x)), out_axes=(nnx.Carry, per_kind))(jnp.array(0.0), xs)
    assert tags.w.value.shape == (2, 3) and tags.n.value.shape == (3,)
    # an int out_axes without a carry moves plain outputs too
    assert nnx.scan(lambda x: x * jnp.ones(2), in_axes=0, out_axes=1)(xs).shape == (2, 3)


def test_per_step_output_may_return_a_scanned_argument():
    stack = make_stack()

    def step(x, layer):
        return layer(x), layer

    out, same = nnx.scan(step)(X, stack)
    assert same is stack  # the caller's object, updated like any argument
    assert stack.count.value.tolist() == [1.0] * DEPTH
    np.testing.assert_allclose(out, python_loop(stack, X), rtol=1e-5)
    _, w = nnx.scan(lambda x, layer: (x, layer.w))(X, stack)
    assert w is stack.w


def test_per_step_outputs_of_carried_or_broadcast_objects_are_rejected():
    tag, xs = Tag(jnp.array(1.0)), jnp.arange(3.0)
    with pytest.raises(
        ValueError,
        match=r"Inconsistent aliasing detected: c\.w is returned as the per-step output "
        r"output\[0\] with out axis 0 but was passed with in axis nnx\.Carry",
    ):
        nnx.scan(lambda c, x: (c, c.w))(tag, xs)
    with pytest.raises(ValueError, match=r"m\.n is returned .* in axis None"):
        nnx.scan(lambda c, m, x: (c, m), in_axes=(nnx.Carry, None, 0))(1.0, tag, xs)
    stack = make_stack()
    with pytest.raises(ValueError, match=r"out axis 1 but was passed with in axis 0"):
        nnx.scan(lambda x, layer: (x, layer), out_axes=(nnx.Carry, 1))(X, stack)
    with pytest.raises(ValueError, match=r"Cannot broadcast output state. Got StateAxes"):
        nnx.scan(
            lambda c, x: (c, Tag(x)), out_axes=(nnx.Carry, nnx.StateAxes({nnx.Param: 0, ...: None}))
        )
    assert float(tag.w.value[0]) == 1.0 and stack.count.value.tolist() == [0.0] * DEPTH


def test_carry_references_must_stay_the_same():
    xs = jnp.arange(3.0)
    with pytest.raises(ValueError, match=r"Carry references must be the same between iterations"):
        nnx.scan(lambda c, x: (Tag(x), x))(Tag(jnp.array(0.0)), xs)
    with pytest.raises(ValueError, match=r"Carry references must be the same.*0 graph node"):
        nnx.scan(lambda c, x: (c.n.value, x))(Tag(jnp.array(0.0)), xs)
    a, b = nnx.Param(jnp.array(1.0)), nnx.Param(jnp.array(2.0))
    with pytest.raises(ValueError, match=r"Carry references must be the same"):
        nnx.scan(lambda c, x: ((c[1], c[0]), x))((a, b), xs)
    assert float(a.value) == 1.0 and float(b.value) == 2.0


class WithEmptyData(nnx.Module):
    def __init__(self, x: jax.Array) -> None:
        self.w = nnx.Param(x * jnp.ones(2))
        self.cache = nnx.data(None)  # e.g. an attention cache not created yet


def test_scan_over_a_stack_with_an_empty_data_attribute():
    stack = nnx.vmap(lambda x: WithEmptyData(x))(jnp.arange(3.0))
    total = nnx.scan(lambda c, m: c + m.w.value.sum(), out_axes=nnx.Carry)(0.0, stack)
    assert float(total) == 6.0 and stack.cache is None
    _, ws = nnx.scan(lambda c, m: (c, m.w.value), in_axes=(nnx.Carry, 1))(0.0, stack)
    assert ws.shape == (2, 3)


def test_axes_mistakes_are_reported_when_scan_wraps_the_function():
    # nothing is called: the in_axes/out_axes alone are wrong
    def step(a, b):
        raise AssertionError("never called")

    with pytest.raises(ValueError, match=r"Found multiple Carry definitions at in_axes\[0\]"):
        nnx.scan(step, in_axes=(nnx.Carry, nnx.Carry))
    with pytest.raises(ValueError, match=r"Found multiple Carry definitions at out_axes\[0\]"):
        nnx.scan(step, in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, nnx.Carry))
    with pytest.raises(ValueError, match=r"Cannot broadcast output state: out_axes\[1\] is None"):
        nnx.scan(step, in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, None))
    with pytest.raises(ValueError, match=r"Cannot broadcast output state. Got StateAxes"):
        nnx.scan(step, out_axes=(nnx.Carry, nnx.StateAxes({...: None})))
    for ins, outs in [(0, (nnx.Carry, 0)), ((nnx.Carry, 0), 0)]:
        with pytest.raises(ValueError, match="the other must also have Carry"):
            nnx.scan(step, in_axes=ins, out_axes=outs)
    # the decorator form fails when it is applied, too
    decorate = nnx.scan(in_axes=(nnx.Carry, nnx.Carry))
    with pytest.raises(ValueError, match="Found multiple Carry definitions"):
        decorate(step)


def test_a_new_carry_object_names_both_phrasings_of_the_identity_rule():
    counter = nnx.Variable(jnp.array(0))

    def step(c, x):
        return nnx.Variable(c.value + 1), x

    with pytest.raises(
        ValueError, match=r"Carry references must be the same between iterations .*identity"
    ):
        nnx.scan(step)(counter, jnp.arange(3))
    assert int(counter.value) == 0


def test_returning_an_input_variable_per_step_is_refused_without_graph_updates():
    stacked = nnx.Param(jnp.arange(4.0))

    def step(v):
        return v

    with pytest.raises(ValueError, match="graph_updates=False does not support Variable aliasing"):
        nnx.scan(step, in_axes=0, out_axes=0, graph_updates=False)(stacked)
    # the default mode hands the caller's Variable back
    assert nnx.scan(step, in_axes=0, out_axes=0)(stacked) is stacked
    # returning its value is fine in every mode
    ys = nnx.scan(lambda v: v[...] * 2, in_axes=0, out_axes=0, graph_updates=False)(stacked)
    np.testing.assert_allclose(ys, 2 * np.arange(4.0))
