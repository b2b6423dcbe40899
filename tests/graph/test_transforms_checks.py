"""Flax's checks on transform arguments: aliasing with two specs, Modules returned
with another axis, bound methods under grad, scan's out_axes, branches that change
references. Each raises Flax's error type with our path detail."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

import nnx_graph as nnx


class M(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.ones(3))
        self.b = nnx.Param(jnp.zeros(3))

    def loss(self, x: jax.Array) -> jax.Array:
        return (self.w.value * x).sum()


def _values(m: M) -> list[object]:
    return [m.w.raw_value, m.b.raw_value]


# ------------------------------------------------------------------ aliasing
def test_vmap_one_module_through_two_arguments_with_different_axes():
    m = M()
    before = _values(m)
    pattern = r"Inconsistent aliasing detected: a\.([wb]) and b\.\1"
    with pytest.raises(ValueError, match=pattern) as e:
        nnx.vmap(lambda a, b: a.w.value + b.w.value, in_axes=(0, None))(m, m)
    # each path with its axis
    assert re.search(r"different axes \(a\.([wb]): 0, b\.\1: None\)", str(e.value))
    assert all(x is y for x, y in zip(_values(m), before))
    # the same axis through both is fine
    out = nnx.vmap(lambda a, b: a.w.value + b.w.value, in_axes=(0, 0))(m, m)
    assert out.shape == (3,)


def test_vmap_shared_variable_inside_two_modules_with_different_axes():
    a, b = M(), M()
    b.w = a.w  # one Variable reached through both arguments
    with pytest.raises(ValueError, match=r"Inconsistent aliasing detected: a\.w and b\.w"):
        nnx.vmap(lambda a, b: a.w.value * b.b.value, in_axes=(0, None))(a, b)
    with pytest.raises(ValueError, match=r"Inconsistent aliasing"):
        nnx.vmap(
            lambda a, b: a.w.value,
            in_axes=(0, nnx.StateAxes({nnx.Param: None})),
        )(a, b)


def test_scan_and_shard_map_check_aliasing_too():
    m = M()
    with pytest.raises(ValueError, match=r"nnx\.scan: Inconsistent aliasing detected"):
        nnx.scan(lambda a, b: (a, None), in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))(m, m)
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    with pytest.raises(ValueError, match=r"nnx\.shard_map: Inconsistent aliasing detected"):
        nnx.shard_map(lambda a, b: a.w.value, mesh=mesh, in_specs=(P("x"), P()), out_specs=P())(
            m, m
        )


def test_vmap_returning_an_argument_with_another_axis_is_rejected():
    m = M()
    before = _values(m)
    with pytest.raises(
        ValueError,
        match=r"Inconsistent aliasing detected: m\.\w+ is returned as output\[0\]\.\w+ with "
        r"out axis 0 but was passed with in axis None",
    ):
        nnx.vmap(lambda m, x: m, in_axes=(None, 0))(m, jnp.ones((2, 3)))
    assert all(x is y for x, y in zip(_values(m), before))
    same = nnx.vmap(lambda m, x: m, in_axes=(0, 0), out_axes=0)(m, jnp.ones((3, 3)))
    assert same is m
    kept = nnx.vmap(lambda m, x: m, in_axes=(None, 0), out_axes=None)(m, jnp.ones((2, 3)))
    assert kept is m


def test_vmap_returning_part_of_an_argument_checks_each_variable():
    m = M()
    xs = jnp.ones((2, 3))
    # a Variable of a broadcast argument, returned on axis 0
    with pytest.raises(ValueError, match=r"m\.w is returned as output\[0\] with out axis 0"):
        nnx.vmap(lambda m, x: m.w, in_axes=(None, 0))(m, xs)
    # an argument inside a new container, or returned twice with two axes
    with pytest.raises(ValueError, match=r"m\.\w+ is returned as output\[0\]\[0\]\.\w+"):
        nnx.vmap(lambda m, x: nnx.List([m]), in_axes=(None, 0))(m, xs)
    with pytest.raises(ValueError, match=r"is returned as output\[1\]\.\w+ with out axis 0"):
        nnx.vmap(lambda m, x: (m, m), in_axes=(None, 0), out_axes=(None, 0))(m, xs)
    # returned on the axis it came in on: the caller's object
    w = nnx.vmap(lambda m, x: m.w, in_axes=(None, 0), out_axes=None)(m, xs)
    assert w is m.w


def test_vmap_returning_a_captured_object_is_rejected():
    m = M()
    with pytest.raises(
        ValueError,
        match=r"output\[0\]\.\w+ is a \w+ created outside the function and not passed in "
        r"\(captured\): Cannot extract graph node from different trace level \(Cannot return "
        r"captured Variable\)",
    ):
        nnx.vmap(lambda x: m)(jnp.ones((2, 3)))
    made = nnx.vmap(lambda x: M())(jnp.ones((2, 3)))  # created inside: stacked
    assert made.w.value.shape[0] == 2


# ------------------------------------------------------------------ bound methods
@pytest.mark.parametrize("transform", [nnx.grad, nnx.value_and_grad])
def test_autodiff_of_a_bound_method_is_rejected(transform):
    m = M()
    name = transform.__name__
    with pytest.raises(ValueError, match=rf"nnx\.{name} does not support bound methods") as e:
        transform(m.loss)
    assert f"nnx.{name}(M.loss)(instance, ...)" in str(e.value)
    grads = transform(M.loss)(m, jnp.ones(3))  # the unbound method works
    g = grads[1] if name == "value_and_grad" else grads
    assert g["w"].value.tolist() == [1.0, 1.0, 1.0]


class Counting(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.ones(3))
        self.calls = nnx.BatchStat(jnp.array(0))

    def apply(self, x: jax.Array) -> jax.Array:
        self.calls.value = self.calls.value + 1
        return x * self.w.value


_MESH = jax.make_mesh((1,), ("d",))
_WRAPPERS = {
    "jit": lambda f: nnx.jit(f),
    "vmap": lambda f: nnx.vmap(f, in_axes=0),
    "pmap": lambda f: nnx.pmap(f),
    "scan": lambda f: nnx.scan(f, in_axes=0, out_axes=0),
    "remat": lambda f: nnx.remat(f),
    "checkify": lambda f: nnx.checkify(f),
    "shard_map": lambda f: nnx.shard_map(f, mesh=_MESH, in_specs=P(), out_specs=P()),
    "eval_shape": lambda f: nnx.eval_shape(f, jnp.ones(3)),
    "make_jaxpr": lambda f: nnx.make_jaxpr(f),
}


@pytest.mark.parametrize("name", sorted(_WRAPPERS))
def test_transforming_a_bound_method_of_a_module_is_rejected_up_front(name):
    # the Module would be closed over, so its updates (calls) could not come out
    m = Counting()
    with pytest.raises(ValueError, match=rf"nnx\.{name} does not support bound methods") as e:
        _WRAPPERS[name](m.apply)
    assert f"nnx.{name}(Counting.apply)(instance, ...)" in str(e.value)
    assert int(m.calls.value) == 0
    # hidden inside functools.partial it is still found
    import functools

    with pytest.raises(ValueError, match="does not support bound methods"):
        _WRAPPERS[name](functools.partial(m.apply))


def test_unbound_method_under_jit_carries_the_update_out():
    m = Counting()
    out = nnx.jit(Counting.apply)(m, jnp.full(3, 2.0))
    assert out.tolist() == [2.0, 2.0, 2.0] and int(m.calls.value) == 1

    # bound methods of plain objects (not Modules) are ordinary callables
    class Scale:
        def times(self, x: jax.Array) -> jax.Array:
            return 3 * x

    assert nnx.jit(Scale().times)(jnp.ones(2)).tolist() == [3.0, 3.0]


# ------------------------------------------------------------------ scan out_axes
def test_scan_out_axes_with_two_carries_is_rejected():
    with pytest.raises(
        ValueError, match=r"Found multiple Carry definitions at out_axes\[0\] and out_axes\[1\]"
    ):
        nnx.scan(
            lambda c, x: (c, c, x), in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, nnx.Carry, 0)
        )(jnp.zeros(()), jnp.ones(3))


def test_scan_broadcast_out_axes_is_rejected():
    with pytest.raises(ValueError, match=r"Cannot broadcast output state: out_axes\[1\] is None"):
        nnx.scan(lambda c, x: (c, x), in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, None))(
            jnp.zeros(()), jnp.ones(3)
        )


def test_scan_carry_that_changes_structure_is_a_value_error():
    with pytest.raises(ValueError, match="different structure than the carry passed in"):
        nnx.scan(lambda c, x: ((c, c), x), in_axes=(nnx.Carry, 0), out_axes=(nnx.Carry, 0))(
            jnp.zeros(()), jnp.ones(3)
        )


# ------------------------------------------------------------------ branches
def _alias(m: M) -> None:
    m.b = m.w  # changes which object m.b refers to


def test_cond_branch_changing_references_is_a_type_error_and_changes_nothing():
    m = M()
    before = _values(m)
    b_before = m.b
    with pytest.raises(
        TypeError,
        match=r"nnx\.cond: a branch changed the structure of its graph-node arguments .* and "
        r"another branch did not do the same: cond branch outputs must have the same pytree",
    ) as e:
        nnx.cond(True, _alias, lambda m: None, m)
    assert isinstance(e.value, nnx.GraphStructureError)
    assert m.b is b_before and all(x is y for x, y in zip(_values(m), before))
    with pytest.raises(TypeError, match=r"nnx\.switch"):
        nnx.switch(0, [_alias, lambda m: None], m)


def test_loop_body_changing_references_is_rejected():
    def body(i: jax.Array, m: M) -> M:
        _alias(m)
        return m

    m = M()
    with pytest.raises(ValueError, match=r"nnx\.fori_loop: the loop body replaced"):
        nnx.fori_loop(0, 2, body, m)
    with pytest.raises(ValueError, match=r"nnx\.while_loop"):
        nnx.while_loop(lambda m: False, lambda m: (_alias(m), m)[1], m)
    assert m.b is not m.w


# ------------------------------------------------------------------ eval_shape + mesh
def test_eval_shape_under_a_mesh_gives_named_shardings():
    mesh = jax.make_mesh((1,), ("model",), axis_types=(jax.sharding.AxisType.Auto,))

    class Sharded(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            init = nnx.with_partitioning(jax.nn.initializers.lecun_normal(), (None, "model"))
            self.w = nnx.Param(init(rngs.params(), (4, 8)))
            self.b = nnx.Param(jnp.zeros(8))  # no annotation

    with jax.set_mesh(mesh):
        abstract = nnx.eval_shape(lambda: Sharded(nnx.Rngs(0)))
    w = abstract.w.get_value()
    assert isinstance(w, jax.ShapeDtypeStruct) and w.shape == (4, 8)
    assert isinstance(w.sharding, jax.sharding.NamedSharding)
    assert w.sharding.spec == P(None, "model")
    assert abstract.b.get_value().sharding is None
    outside = nnx.eval_shape(lambda: Sharded(nnx.Rngs(0)))  # no mesh: no sharding
    assert outside.w.get_value().sharding is None


def test_eval_shape_under_a_mesh_keeps_shared_references():
    class Holder(nnx.Module):
        def __init__(self, inner):
            self.inner = inner

    def create():
        inner = nnx.Dict(w=nnx.Param(jnp.ones((2, 2))))
        return inner, Holder(inner)

    with jax.set_mesh(jax.make_mesh((1,), ("model",))):
        inner, holder = nnx.eval_shape(create)
    assert holder.inner is inner, "the two outputs must share the inner node"
