"""Ref-mode Variables: ``nnx.vars_as(..., ref=True)`` and values held in JAX
mutable array references (``jax.new_ref``), as Flax NNX 0.12 handles them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import nnx


def _is_ref(x: object) -> bool:
    return isinstance(x, jax.Ref)


def test_vars_as_ref_converts_plain_variables_into_new_ones() -> None:
    plain = nnx.Param(jnp.arange(3.0), tag="w")
    stat = nnx.BatchStat(jnp.zeros(2))
    d = nnx.Dict(p=plain, s=stat)
    out = nnx.vars_as(d, ref=True)
    assert out is not d
    assert out["p"] is not plain and type(out["p"]) is nnx.Param
    assert out["p"].ref and _is_ref(out["p"].get_raw_value())
    assert out["p"].tag == "w"  # metadata kept
    assert out["p"][...].tolist() == [0.0, 1.0, 2.0]
    # the originals are untouched and do not share the new reference
    assert not plain.ref and not _is_ref(plain.get_raw_value())
    out["p"][...] = jnp.full(3, 7.0)
    assert plain[...].tolist() == [0.0, 1.0, 2.0]


def test_vars_as_ref_false_reads_references_back_into_arrays() -> None:
    d = nnx.vars_as(nnx.Dict(w=nnx.Param(jnp.ones(2))), ref=True)
    back = nnx.vars_as(d, ref=False)
    assert not back["w"].ref
    assert isinstance(back["w"].get_raw_value(), jax.Array)
    assert not _is_ref(back["w"].get_raw_value())
    assert back["w"][...].tolist() == [1.0, 1.0]


def test_vars_as_keeps_variables_already_in_the_mode() -> None:
    already = nnx.Variable(jnp.array(2.0), ref=True)
    plain = nnx.Variable(jnp.array(1.0))
    out = nnx.vars_as([plain, already], ref=True)
    assert out[1] is already
    assert out[0] is not plain and _is_ref(out[0].get_raw_value())


def test_vars_as_only_filter_picks_what_converts() -> None:
    node = [nnx.Variable(jnp.array(1.0)), nnx.Variable(jnp.array(2.0))]
    out = nnx.vars_as(node, ref=True, only=lambda path, x: path[0] == 0)
    assert _is_ref(out[0].get_raw_value())
    assert out[1] is node[1] and not _is_ref(out[1].get_raw_value())
    model = nnx.Dict(p=nnx.Param(jnp.ones(1)), s=nnx.BatchStat(jnp.ones(1)))
    out2 = nnx.vars_as(model, ref=True, only=nnx.BatchStat)
    assert out2["p"] is model["p"] and out2["s"].ref


def test_vars_as_shared_variable_needs_allow_duplicates() -> None:
    v = nnx.Variable(jnp.array(1.0))
    with pytest.raises(ValueError, match=r"Found duplicate at path"):
        nnx.vars_as([v, v], ref=True)
    out = nnx.vars_as([v, v], ref=True, allow_duplicates=True)
    assert out[0].ref and out[1].ref


def test_vars_as_immutable_still_refuses_with_a_fix() -> None:
    d = nnx.Dict(w=nnx.Param(jnp.ones(2)))
    with pytest.raises(ValueError) as info:
        nnx.vars_as(d, mutable=False)
    msg = str(info.value)
    assert "model.w (Param) cannot be converted" in msg
    assert "mutable=False" in msg and "Fix:" in msg


def test_ref_converted_pytree_is_updated_in_place_by_plain_jax_jit() -> None:
    class Params(nnx.Pytree):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones((3, 2)))
            self.count = nnx.Variable(jnp.array(0))

    params = nnx.vars_as(Params(), ref=True)
    leaves = jax.tree.leaves(params)
    assert sorted(x.shape for x in leaves) == [(), (3, 2)]

    @jax.jit
    def apply(p: Params, x: jax.Array) -> jax.Array:
        p.count[...] += 1
        return x @ p.w[...]

    y = apply(params, jnp.ones((1, 3)))
    apply(params, jnp.ones((1, 3)))
    assert y.tolist() == [[3.0, 3.0]]
    assert int(params.count[...]) == 2


# ----------------------------------------------------------------- nnx.jit and refs
def test_nnx_jit_returns_a_passed_in_reference_itself_and_new_ones_as_new_refs() -> None:
    r = jax.new_ref(jnp.array(1.0))

    @nnx.jit
    def f(x: jax.Ref) -> tuple[jax.Ref, jax.Ref]:
        x[...] += 1.0
        return jax.new_ref(jnp.array(10.0)), x

    made, same = f(r)
    assert same is r and float(r[...]) == 2.0
    assert _is_ref(made) and float(made[...]) == 10.0
    made2, _ = f(r)  # the cached path does the same
    assert made2 is not made and float(r[...]) == 3.0


def test_nnx_jit_returns_modules_holding_references() -> None:
    model = nnx.vars_as(nnx.Linear(1, 1, rngs=nnx.Rngs(0)), ref=True)
    kernel_ref = model.kernel.get_raw_value()
    inside: list[nnx.Linear] = []

    @nnx.jit
    def f(m: nnx.Linear) -> tuple[nnx.Linear, nnx.Linear]:
        m.bias[...] += 1.0
        new = nnx.vars_as(nnx.Linear(1, 1, rngs=nnx.Rngs(1)), ref=True)
        inside.append(new)
        return new, m

    new, same = f(model)
    assert same is model and model.kernel.get_raw_value() is kernel_ref
    assert model.bias[...].tolist() == [1.0]
    assert new is not inside[0] and isinstance(new.kernel, nnx.Param)
    assert new.kernel.ref and _is_ref(new.kernel.get_raw_value())
    assert new.kernel[...].shape == (1, 1)


def test_nnx_jit_with_a_ref_pytree_attribute_returns_the_same_object() -> None:
    class Box(nnx.Pytree):
        def __init__(self, r: jax.Ref) -> None:
            self.a = nnx.data(r)

    box = Box(jax.new_ref(jnp.array(1)))

    @nnx.jit
    def bump(b: Box) -> Box:
        b.a[...] += 1
        return b

    out = bump(box)
    assert out is box and _is_ref(out.a) and int(out.a[...]) == 2
    shapes = bump.eval_shape(box)
    assert shapes.a.shape == ()


def test_nnx_jit_refs_with_static_arguments_trees_and_ahead_of_time() -> None:
    r = jax.new_ref(jnp.array(1.0))
    with_static = nnx.jit(lambda x, n: (x, jax.new_ref(jnp.ones(n))), static_argnums=1)
    same, made = with_static(r, 3)
    assert same is r and made[...].shape == (3,)
    in_tree = nnx.jit(lambda d: {"r": d["r"], "new": jax.new_ref(d["r"][...] * 2)})
    out = in_tree({"r": r})
    assert out["r"] is r and float(out["new"][...]) == 2.0
    plus_one = nnx.jit(lambda x: jax.new_ref(x[...] + 1))
    compiled = plus_one.lower(r).compile()
    assert _is_ref(compiled(r)) and float(compiled(r)[...]) == 2.0
    model = nnx.vars_as(nnx.Linear(1, 1, rngs=nnx.Rngs(0)), ref=True)
    plain = nnx.jit(lambda m: nnx.vars_as(m, ref=False))(model)
    assert not plain.kernel.ref and not _is_ref(plain.kernel.get_raw_value())
    assert model.kernel.ref  # the argument keeps its references
