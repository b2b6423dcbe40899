"""cond, switch, fori_loop, while_loop, eval_shape, checkify, make_jaxpr and shard_map
over Modules: updates reach the caller, the caller is untouched on errors, and
carry mismatches are named."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify as ck
from jax.sharding import PartitionSpec as P

import nnx_graph as nnx


class Counter(nnx.Module):
    def __init__(self) -> None:
        self.n = nnx.BatchStat(jnp.array(0.0))
        self.w = nnx.Param(jnp.array(2.0))


def add(k: float):
    def branch(c: Counter, x: jax.Array) -> jax.Array:
        c.n.value = c.n.value + k
        return x + k

    return branch


# ----------------------------------------------------------------- cond / switch
@pytest.mark.parametrize("pred, expected", [(True, 1.0), (False, 10.0)])
def test_cond_applies_the_branch_taken(pred, expected):
    c = Counter()
    out = nnx.cond(jnp.array(pred), add(1.0), add(10.0), c, jnp.array(0.0))
    assert float(out) == expected and float(c.n.value) == expected


def test_cond_inside_jit_and_graph_keywords():
    c = Counter()

    @nnx.jit
    def f(c, pred):
        return nnx.cond(pred, add(1.0), add(10.0), c, 0.0, graph=True, graph_updates=True)

    f(c, True)
    f(c, False)
    assert float(c.n.value) == 11.0


def test_switch():
    c = Counter()
    out = nnx.switch(jnp.array(2), [add(1.0), add(10.0), add(100.0)], c, 0.0, graph=True)
    assert float(out) == 100.0 and float(c.n.value) == 100.0


def test_cond_branches_must_not_change_structure():
    c = Counter()

    def grow(c):
        c.extra = nnx.Param(jnp.ones(1))

    with pytest.raises(nnx.GraphStructureError, match=r"nnx\.cond: a branch changed the structure"):
        nnx.cond(True, grow, lambda c: None, c)
    assert not hasattr(c, "extra")


def test_cond_and_switch_branches_may_change_structure_alike_and_return_modules():
    def grow(c):
        c.extra = nnx.Param(jnp.ones(1))
        return c

    c = Counter()
    out = nnx.cond(jnp.array(True), grow, grow, c)
    assert out is c and isinstance(c.extra, nnx.Param)
    c = Counter()
    assert nnx.switch(1, [grow, grow], c) is c and float(c.extra.value[0]) == 1.0
    made = nnx.cond(
        jnp.array(False), lambda: nnx.Param(jnp.ones(2)), lambda: nnx.Param(jnp.zeros(2))
    )
    assert isinstance(made, nnx.Param) and made.value.tolist() == [0.0, 0.0]


# ----------------------------------------------------------------- loops
def test_fori_loop_with_module_and_array_carry():
    c = Counter()

    def body(i, carry):
        m, total = carry
        m.n.value = m.n.value + 1
        return m, total + i

    same, total = nnx.fori_loop(0, 5, body, (c, jnp.array(0)), graph=True)
    assert same is c and int(total) == 10 and float(c.n.value) == 5.0
    nnx.fori_loop(0, 2, lambda i, m: m, c, unroll=2)


def test_while_loop():
    c = Counter()

    def body(carry):
        m, k = carry
        m.n.value = m.n.value + m.w.value
        return m, k + 1

    same, k = nnx.while_loop(lambda carry: carry[1] < 3, body, (c, 0), graph_updates=True)
    assert same is c and int(k) == 3 and float(c.n.value) == 6.0


def test_loops_inside_jit():
    c = Counter()

    @nnx.jit
    def f(m):
        return nnx.fori_loop(0, 3, lambda i, m: (m.n.__setattr__("value", m.n.value + 1), m)[1], m)

    f(c)
    f(c)
    assert float(c.n.value) == 6.0


def test_loop_body_must_return_the_same_objects():
    c = Counter()
    with pytest.raises(nnx.GraphStructureError, match="must return its carry with the same"):
        nnx.fori_loop(0, 2, lambda i, m: Counter(), c)
    with pytest.raises(
        nnx.GraphStructureError,
        match=r"nnx\.fori_loop: the loop body returned a "
        r"carry with a different structure",
    ):
        nnx.fori_loop(0, 2, lambda i, x: (x, x), jnp.zeros(()))


def test_loop_carry_dtype_and_shape_mismatch_are_named():
    with pytest.raises(
        TypeError,
        match=r"nnx\.fori_loop: the loop carry must keep its shapes "
        r"and dtypes from step to step; init_val\[1\]: float32\[\] going in, "
        r"int32\[\] coming out",
    ):
        nnx.fori_loop(
            0, 2, lambda i, c: (c[0], c[1].astype(jnp.int32)), (jnp.zeros(()), jnp.zeros(()))
        )
    c = Counter()

    def body(m):
        m.n.value = jnp.zeros(3)
        return m

    with pytest.raises(TypeError, match=r"init_val\.n: float32\[\] going in, float32\[3\]"):
        nnx.while_loop(lambda m: False, body, c)
    assert c.n.shape == ()


# ----------------------------------------------------------------- eval_shape
def test_eval_shape_builds_an_abstract_model():
    class Big(nnx.Module):
        def __init__(self, rngs):
            self.w = nnx.Param(jax.random.normal(rngs.params(), (512, 512)))
            self.rngs = rngs

    abstract = nnx.eval_shape(lambda: Big(nnx.Rngs(0)))
    assert isinstance(abstract.w.value, jax.ShapeDtypeStruct)
    assert abstract.w.value.shape == (512, 512)


def test_eval_shape_leaves_arguments_untouched():
    c = Counter()

    def f(m, x):
        m.n.value = m.n.value + x
        return m, m.w.value * x

    abstract_model, out = nnx.eval_shape(f, c, jnp.ones(3), graph=True)
    assert isinstance(out, jax.ShapeDtypeStruct) and out.shape == (3,)
    assert abstract_model is not c and isinstance(abstract_model.n.value, jax.ShapeDtypeStruct)
    assert float(c.n.value) == 0.0


def test_eval_shape_keyword_arguments_reach_the_function():
    out = nnx.eval_shape(lambda x, *, scale: x * scale, jnp.ones(2), scale=3.0)
    assert out.shape == (2,)


# ----------------------------------------------------------------- checkify / make_jaxpr
def test_checkify_reports_errors_and_carries_updates():
    c = Counter()

    def f(m, x):
        ck.check(x > 0, "x must be positive, got {x}", x=x)
        m.n.value = m.n.value + 1
        return x

    err, out = nnx.checkify(f, graph=True)(c, jnp.array(1.0))
    assert err.get() is None and float(out) == 1.0 and float(c.n.value) == 1.0
    err, _ = nnx.jit(nnx.checkify(f))(c, jnp.array(-1.0))
    assert "x must be positive" in err.get()


def test_make_jaxpr_shows_updates_and_leaves_caller_unchanged():
    c = Counter()

    def f(m):
        m.n.value = m.n.value + 1
        m.extra = nnx.Param(jnp.ones(2))

    jaxpr = nnx.make_jaxpr(f, graph=True)(c)
    assert "add" in str(jaxpr)
    assert float(c.n.value) == 0.0 and not hasattr(c, "extra")


# ----------------------------------------------------------------- shard_map
def test_shard_map_on_a_one_device_mesh():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    c = Counter()

    def f(m, x):
        m.n.value = m.n.value + 1
        return x * m.w.value

    sharded = nnx.shard_map(f, mesh=mesh, in_specs=(P(), P("x")), out_specs=P("x"), graph=True)
    assert sharded(c, jnp.ones(4)).tolist() == [2.0] * 4
    assert nnx.jit(sharded)(c, jnp.ones(4)).tolist() == [2.0] * 4
    assert float(c.n.value) == 2.0

    by_kind = nnx.StateSharding({nnx.BatchStat: P(), ...: P()})

    @nnx.shard_map(mesh=mesh, in_specs=(by_kind, (P("x"), P())), out_specs=P("x"))
    def g(m, pair):
        a, b = pair
        m.n.value = m.n.value + b
        return a * m.w.value

    np.testing.assert_allclose(g(c, (jnp.ones(4), jnp.array(3.0))), [2.0] * 4)
    assert float(c.n.value) == 5.0


def test_shard_map_spec_errors():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    c = Counter()
    with pytest.raises(ValueError, match="in_specs has 1 entries for 2 arguments"):
        nnx.shard_map(lambda m, x: x, mesh=mesh, in_specs=(P(),), out_specs=P())(c, jnp.ones(2))
    with pytest.raises(ValueError, match=r"m\.n \(BatchStat\) matches none of the StateAxes"):
        nnx.shard_map(
            lambda m: None, mesh=mesh, in_specs=nnx.StateSharding({nnx.Param: P()}), out_specs=P()
        )(c)


# ----------------------------------------------------------------- compatibility
def test_every_transform_accepts_flax_graph_keywords():
    kw = {"graph": True, "graph_updates": True}
    c = Counter()

    def bump(m, x=1.0):
        m.n.value = m.n.value + x
        return m.w.value * x

    nnx.jit(bump, **kw)(c)
    nnx.grad(bump, **kw)(c)
    nnx.value_and_grad(bump, **kw)(c)
    nnx.vjp(bump, c, **kw)
    nnx.jvp(bump, (c,), (nnx.State({"w": jnp.array(1.0)}),), **kw)
    nnx.remat(bump, **kw)(c)
    nnx.vmap(lambda m, x: m.w.value * x, in_axes=(None, 0), **kw)(c, jnp.zeros(2))
    nnx.pmap(lambda x: x, **kw)(jnp.zeros((jax.local_device_count(),)))
    nnx.scan(lambda carry, x: (carry, x), **kw)(0.0, jnp.zeros(2))
    nnx.cond(True, bump, bump, c, **kw)
    nnx.switch(0, [bump], c, **kw)
    nnx.fori_loop(0, 1, lambda i, m: m, c, **kw)
    nnx.while_loop(lambda m: False, lambda m: m, c, **kw)
    nnx.eval_shape(bump, c, **kw)
    nnx.checkify(bump, **kw)(c)
    nnx.make_jaxpr(bump, **kw)(c)
    nnx.custom_vjp(bump, **kw)
    nnx.cached_partial(nnx.jit(bump), c, **kw)()
    nnx.jit_partial(bump, c, **kw)()
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    nnx.shard_map(bump, mesh=mesh, in_specs=P(), out_specs=P(), **kw)(c)
    assert float(c.n.value) > 0


def test_loop_bodies_that_replace_a_variable_are_rejected():
    def replace(c):
        c.n = nnx.BatchStat(c.n.value + 1)  # a new object, not an update
        return c

    for run in (
        lambda c: nnx.while_loop(lambda c: c.n.value < 3, replace, c),
        lambda c: nnx.fori_loop(0, 3, lambda i, c: replace(c), c),
    ):
        counter = Counter()
        before = counter.n
        with pytest.raises(ValueError, match=r"replaced the Variable init_val\.n") as e:
            run(counter)
        assert "must stay the same between iterations" in str(e.value)
        assert counter.n is before and float(counter.n.value) == 0.0

    # updating in place is the supported form
    def _increment(c):
        c.n.value = c.n.value + 1
        return c

    counter = Counter()
    nnx.while_loop(lambda c: c.n.value < 3, _increment, counter)
    assert float(counter.n.value) == 3.0
