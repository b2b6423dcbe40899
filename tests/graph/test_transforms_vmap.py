"""vmap, pmap, StateAxes and transform_metadata: per-Variable axes, stacked Module
creation, updates on the right axis, structural changes, and errors that name the
arguments and Variables involved."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph._sharding import PARTITION_NAME


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs) -> None:
        self.w = nnx.Param(jax.random.normal(rngs.params(), (din, dout)))
        self.b = nnx.Param(jnp.zeros(dout))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.w + self.b


class Block(nnx.Module):
    def __init__(self, d: int, *, rngs: nnx.Rngs) -> None:
        self.linear = Linear(d, d, rngs=rngs)
        self.count = nnx.BatchStat(jnp.array(0.0))

    def __call__(self, x: jax.Array) -> jax.Array:
        self.count.value = self.count.value + 1
        return jnp.tanh(self.linear(x))


XS = jnp.arange(12.0).reshape(4, 3) / 12


# ----------------------------------------------------------------- vmap
def test_vmap_broadcast_module_over_batch():
    block = Block(3, rngs=nnx.Rngs(0))
    reference = nnx.clone(block)

    @nnx.vmap(in_axes=(nnx.StateAxes({nnx.BatchStat: None, ...: None}), 0))
    def apply(m, x):
        return m.linear(x)

    out = apply(block, XS)
    np.testing.assert_allclose(out, reference.linear(XS), rtol=1e-5)


def test_vmap_create_stacked_modules_with_split_rngs():
    @nnx.split_rngs(splits=5)
    @nnx.vmap(in_axes=(0,), out_axes=0, graph=True, graph_updates=True)
    def create(rngs):
        return Block(3, rngs=rngs)

    stack = create(nnx.Rngs(0))
    assert stack.linear.w.shape == (5, 3, 3) and stack.count.shape == (5,)
    kernels = np.asarray(stack.linear.w.value)
    assert len({k.tobytes() for k in kernels}) == 5  # different keys per layer


def test_vmap_updates_go_out_on_their_axis():
    @nnx.split_rngs(splits=4)
    @nnx.vmap
    def create(rngs):
        return Block(3, rngs=rngs)

    stack = nnx.jit(create)(nnx.Rngs(0))  # jitted: one compilation, not one per op

    @nnx.vmap(in_axes=(0, 0))
    def apply(m, x):
        return m(x)

    out = apply(stack, XS)
    assert out.shape == (4, 3) and stack.count.value.tolist() == [1.0] * 4
    for i in range(4):
        layer = nnx.merge(nnx.graphdef(stack), jax.tree.map(lambda a, i=i: a[i], nnx.state(stack)))
        np.testing.assert_allclose(out[i], jnp.tanh(layer.linear(XS[i])), rtol=1e-5)


def test_stateaxes_mixes_mapped_and_broadcast_state():
    block = Block(3, rngs=nnx.Rngs(0))
    block.count.value = jnp.zeros(4)  # one counter per example
    axes = nnx.StateAxes({nnx.BatchStat: 0, ...: None})
    out = nnx.vmap(lambda m, x: m(x), in_axes=(axes, 0))(block, XS)
    assert out.shape == (4, 3) and block.count.value.tolist() == [1.0] * 4
    assert block.linear.w.shape == (3, 3)


def test_out_axes_for_created_modules_and_arrays():
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=0, out_axes=(1, 0))
    def create(rngs):
        layer = Linear(2, 5, rngs=rngs)
        return layer, layer.w.value.sum()

    layer, sums = nnx.jit(create)(nnx.Rngs(0))
    assert layer.w.shape == (2, 3, 5) and layer.b.shape == (5, 3) and sums.shape == (3,)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(1, None))(layer, jnp.ones(2))
    assert out.shape == (3, 5)


def test_out_axes_stateaxes_for_created_module():
    @nnx.vmap(in_axes=0, out_axes=nnx.StateAxes({nnx.BatchStat: None, ...: 0}), axis_size=3)
    def create(x):
        block = Block(2, rngs=nnx.Rngs(0))
        block.linear.b.value = block.linear.b.value + x
        return block

    block = create(jnp.arange(3.0))
    assert block.linear.b.shape == (3, 2) and block.count.shape == ()


def test_in_axes_prefix_trees_keywords_and_containers():
    out = nnx.vmap(lambda d: d["a"] + d["b"], in_axes=({"a": 0, "b": None},))(
        {"a": jnp.ones((3, 2)), "b": jnp.arange(2.0)}
    )
    assert out.shape == (3, 2)
    scaled = nnx.vmap(lambda x, scale: x * scale)(jnp.ones(3), scale=jnp.arange(3.0))
    assert scaled.tolist() == [0.0, 1.0, 2.0]
    model = Linear(3, 3, rngs=nnx.Rngs(0))
    out = nnx.vmap(lambda pair, x: pair[0](x), in_axes=(None, 0))((model, 1), XS)
    np.testing.assert_allclose(out, model(XS), rtol=1e-5)


def test_axis_size_axis_name_and_variable_argument():
    block = Block(3, rngs=nnx.Rngs(0))
    sums = nnx.vmap(lambda m: m.linear.w.value.sum(), in_axes=None, axis_size=3)(block)
    assert sums.shape == (3,)
    total = nnx.vmap(lambda x: jax.lax.psum(x, "i"), axis_name="i")(jnp.arange(3.0))
    assert total.tolist() == [3.0, 3.0, 3.0]
    v = nnx.BatchStat(jnp.zeros((3, 2)))

    def inc(var):
        var.value = var.value + 1

    nnx.vmap(inc)(v)
    assert v.value.tolist() == [[1.0, 1.0]] * 3


def test_new_attribute_takes_its_arguments_axis():
    @nnx.split_rngs(splits=3)
    @nnx.vmap
    def create(rngs):
        return Linear(2, 2, rngs=rngs)

    stack = nnx.jit(create)(nnx.Rngs(0))

    @nnx.vmap(in_axes=(0, 0))
    def remember(m, x):
        m.last = nnx.BatchStat(x)

    remember(stack, jnp.arange(3.0))
    assert stack.last.value.tolist() == [0.0, 1.0, 2.0]

    single = Linear(2, 2, rngs=nnx.Rngs(0))

    @nnx.vmap(in_axes=(nnx.StateAxes({...: 1}), 0), axis_size=2)
    def remember_on_axis_1(m, x):
        m.seen = nnx.BatchStat(jnp.full(4, x))

    single.w.value = jnp.ones((2, 2))
    single.b.value = jnp.ones((1, 2))
    remember_on_axis_1(single, jnp.arange(2.0))  # new leaf with axis 1: traced again
    assert single.seen.shape == (4, 2)
    assert single.seen.value[0].tolist() == [0.0, 1.0]

    bcast = Linear(2, 2, rngs=nnx.Rngs(0))

    @nnx.vmap(in_axes=(None, 0))
    def constant(m, x):
        m.flag = nnx.Variable(jnp.array(7.0))
        return x

    constant(bcast, jnp.ones(3))
    assert float(bcast.flag.value) == 7.0


def test_vmap_exception_leaves_caller_unchanged():
    block = Block(3, rngs=nnx.Rngs(0))
    block.count.value = jnp.zeros(4)

    @nnx.vmap(in_axes=(nnx.StateAxes({nnx.BatchStat: 0, ...: None}), 0))
    def bad(m, x):
        m(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        bad(block, XS)
    assert block.count.value.tolist() == [0.0] * 4


def test_transform_metadata_partition_axis():
    @nnx.split_rngs(splits=3)
    @nnx.vmap(transform_metadata={PARTITION_NAME: "layers"})
    def create(rngs):
        return nnx.Dict(
            w=nnx.Param(jax.random.normal(rngs.params(), (2, 4)), sharding_names=(None, "model"))
        )

    stack = nnx.jit(create)(nnx.Rngs(0))
    assert stack["w"].sharding_names == ("layers", None, "model")
    seen = []

    @nnx.vmap(transform_metadata={PARTITION_NAME: "layers"})
    def inspect(d):
        seen.append(d["w"].sharding_names)
        d["w"].value = d["w"].value * 2

    inspect(stack)
    assert seen == [(None, "model")]  # removed inside
    assert stack["w"].sharding_names == ("layers", None, "model")  # back outside


def test_transform_metadata_decorator():
    @nnx.transform_metadata(in_axes=0, out_axes=0, partition="layers")
    def f(d):
        assert d["w"].sharding_names == ("model",)
        d["w"].value = d["w"].value + 1
        return nnx.Param(jnp.ones((2, 3)), sharding_names=("model",))

    d = nnx.Dict(w=nnx.Param(jnp.zeros((2, 3)), sharding_names=("layers", "model")))
    out = f(d)
    assert out.sharding_names == ("layers", "model")
    assert d["w"].sharding_names == ("layers", "model") and float(d["w"].value[0, 0]) == 1.0
    assert nnx.transform_metadata(lambda: 1, partition=None)() == 1


# ----------------------------------------------------------------- errors
def test_axis_size_mismatch_names_arguments():
    with pytest.raises(
        ValueError,
        match=r"nnx\.vmap: the mapped inputs have different sizes "
        r"along their mapped axes \(size 3: a \(axis 0\); "
        r"size 4: b \(axis 0\)\)",
    ):
        nnx.vmap(lambda a, b: a + b)(jnp.ones(3), jnp.ones(4))


def test_axis_size_mismatch_names_variables():
    stack = nnx.vmap(lambda x: Linear(2, 2, rngs=nnx.Rngs(0)), axis_size=5)(jnp.zeros(5))

    def f(model, batch):
        return model(batch["x"])

    with pytest.raises(
        ValueError,
        match=r"size 5: model\.b \(axis 0\), model\.w \(axis 0\); "
        r"size 4: batch\['x'\] \(axis 0\)",
    ):
        nnx.vmap(f)(stack, {"x": jnp.ones((4, 2))})
    with pytest.raises(ValueError, match=r"size 2: axis_size.*size 5: model\.b"):
        nnx.vmap(f, in_axes=(0, None), axis_size=2)(stack, {"x": jnp.ones(2)})


def test_mapping_a_scalar_names_it():
    with pytest.raises(
        ValueError,
        match=r"nnx\.vmap: m\.b is mapped over axis 0 but has "
        r"shape \(\)",
    ):
        nnx.vmap(lambda m: m.b.value)(nnx.Dict(b=nnx.Param(jnp.array(1.0))))


def test_broadcast_state_updated_per_example_is_named():
    block = Block(3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError,
        match=r"state passed with axis None \(broadcast\) was set to a "
        r"value that differs per example: m\.count\.",
    ):
        nnx.vmap(lambda m, x: m.count.__setattr__("value", x.sum()), in_axes=(None, 0))(block, XS)
    with pytest.raises(ValueError, match=r"differs per example: m\.extra"):
        nnx.vmap(lambda m, x: setattr(m, "extra", nnx.BatchStat(x)), in_axes=(None, 0))(block, XS)
    assert float(block.count.value) == 0.0 and not hasattr(block, "extra")


def test_users_own_out_axes_error_is_not_blamed_on_state():
    with pytest.raises(ValueError, match="got axis spec None but output was batched") as info:
        nnx.vmap(lambda x: x * 2, out_axes=None)(jnp.ones(3))
    assert "broadcast" not in str(info.value)


def test_stateaxes_filter_matching_nothing_is_fine_so_one_spec_serves_init_and_call():
    axes = nnx.StateAxes({(nnx.Param, nnx.RngState): 0, ...: None})

    class Stacked(nnx.Module):
        @nnx.split_rngs(splits=4)
        @nnx.vmap(in_axes=(axes, axes))  # self is still empty here: nothing matches
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.w = nnx.Param(jax.random.normal(rngs.params(), (3,)))
            self.calls = nnx.BatchStat(jnp.array(0))

        @nnx.vmap(in_axes=(axes, None))
        def __call__(self, x: jax.Array) -> jax.Array:
            self.calls.value = self.calls.value + 1
            return x * self.w.value

    model = Stacked(nnx.Rngs(0))
    assert model.w.value.shape == (4, 3) and model.calls.value.shape == ()
    assert model(jnp.ones(3)).shape == (4, 3)
    assert int(model.calls.value) == 1  # broadcast state updated once
    # a filter for state the argument does not have (no Cache here) is ignored too
    block = Block(3, rngs=nnx.Rngs(0))
    nnx.vmap(lambda m: None, in_axes=nnx.StateAxes({nnx.Cache: 0, ...: None}), axis_size=2)(block)


def test_stateaxes_filter_shadowed_by_an_earlier_one():
    block = Block(3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError,
        match=r"the filter nnx\.Variable \(axis None\) comes before "
        r"nnx\.Param \(axis 0\) and already takes every Variable "
        r"nnx\.Param matches, e\.g\. m\.linear\.b \(Param\)",
    ):
        nnx.vmap(
            lambda m: None, in_axes=nnx.StateAxes({nnx.Variable: None, nnx.Param: 0}), axis_size=2
        )(block)
    with pytest.raises(
        ValueError,
        match=r"the filter \.\.\. \(axis None\) comes before "
        r"nnx\.BatchStat",
    ):
        nnx.vmap(lambda m: None, in_axes=nnx.StateAxes({...: None, nnx.BatchStat: 0}), axis_size=2)(
            block
        )


def test_stateaxes_without_catch_all_names_the_unmatched_variable():
    block = Block(3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError,
        match=r"m\.count \(BatchStat\) matches none of the StateAxes "
        r"filters \[nnx\.Param\]",
    ):
        nnx.vmap(lambda m: None, in_axes=nnx.StateAxes({nnx.Param: None}), axis_size=2)(block)


def test_bad_axis_specs():
    block = Block(3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_axes has 1 entries but the function got 2"):
        nnx.vmap(lambda a, b: a, in_axes=(0,))(jnp.ones(2), jnp.ones(2))
    with pytest.raises(TypeError, match="argument 0 holds Modules/Variables, so its axis spec"):
        nnx.vmap(lambda pair: 0, in_axes=({"b": 0},))({"a": block})
    with pytest.raises(TypeError, match="keyword-only arguments"):
        nnx.vmap(lambda x, *, k: x)(jnp.ones(2), k=jnp.ones(2))


# ----------------------------------------------------------------- pmap
def test_pmap_over_local_devices():
    n = jax.local_device_count()
    block = Block(3, rngs=nnx.Rngs(0))
    block.count.value = jnp.zeros(n)
    axes = nnx.StateAxes({nnx.BatchStat: 0, ...: None})

    @nnx.pmap(in_axes=(axes, 0), axis_name="d", graph=True)
    def step(m, x):
        return jax.lax.psum(m(x), "d")

    out = step(block, jnp.ones((n, 2, 3)))
    assert out.shape == (n, 2, 3) and block.count.value.tolist() == [1.0] * n


def test_pmap_static_broadcasted_argnums():
    n = jax.local_device_count()

    @nnx.pmap(static_broadcasted_argnums=(1,))
    def scale(x, mode):
        return x * 2 if mode == "double" else x

    assert scale(jnp.ones((n, 2)), "double").tolist() == [[2.0, 2.0]] * n
