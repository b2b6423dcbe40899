"""Variables as in Flax NNX 0.12: required metadata (hijax/ref/eager_sharding),
jax Ref values, hooks, metadata rules, trace-level checks, collection names,
var_defaults/VarDefaults, use_eager_sharding and AbstractVariable."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph import variablelib
from nnx_graph._errors import TraceContextError
from nnx_graph._hijax import hijax_supported

REQUIRED = {"hijax": False, "ref": False, "eager_sharding": True}


# ------------------------------------------------------------ required metadata
@pytest.mark.parametrize("typ", [nnx.Variable, nnx.Param, nnx.BatchStat, nnx.Cache])
def test_every_variable_carries_the_required_metadata(typ: type) -> None:
    v = typ(jnp.ones(2))
    assert v.get_metadata() == REQUIRED
    assert v.get_metadata(exclude_required=True) == {}
    assert typ.required_metadata == frozenset(REQUIRED)
    assert (v.hijax, v.ref) == (False, False)
    assert repr(v) == f"{typ.__name__}(value=Array(shape=(2,), dtype=float32))"


def test_explicit_flags_are_stored_and_shown() -> None:
    v = nnx.Param(jnp.ones(2), ref=True, eager_sharding=False, tag="t")
    assert v.get_metadata() == {"tag": "t", "hijax": False, "ref": True, "eager_sharding": False}
    assert "ref=True" in repr(v) and "eager_sharding=False" in repr(v)


@pytest.mark.skipif(not hijax_supported(), reason="this JAX has no jax._src.hijax.Box")
def test_hijax_flag_from_argument_or_defaults() -> None:
    assert nnx.Param(jnp.ones(2), hijax=True).hijax is True
    with nnx.var_defaults(hijax=True):
        assert nnx.Param(jnp.ones(2)).hijax is True
    assert nnx.Param(jnp.ones(2)).hijax is False


@pytest.mark.skipif(hijax_supported(), reason="this JAX provides the hijax box")
def test_hijax_without_the_jax_box_raises_with_the_fix() -> None:
    with pytest.raises(ValueError) as info:
        nnx.Param(jnp.ones(2), hijax=True)
    message = str(info.value)
    assert "hijax=True is not supported by this JAX version" in message
    assert jax.__version__ in message


def test_flags_cannot_be_given_twice() -> None:
    boxed = nnx.VariableMetadata(jnp.ones(2), metadata={"ref": True})
    assert nnx.Param(boxed).ref is True
    with pytest.raises(ValueError, match="Cannot specify ref both in VariableMetadata"):
        nnx.Param(boxed, ref=False)


def test_hijax_and_ref_cannot_change_or_be_deleted() -> None:
    v = nnx.Param(jnp.ones(2))
    with pytest.raises(ValueError, match="Cannot change `ref` metadata, expected False, got True"):
        v.set_metadata(ref=True)
    with pytest.raises(ValueError, match="Cannot change `hijax` metadata"):
        v.set_metadata({"hijax": True})
    with pytest.raises(ValueError, match="Cannot delete `ref` metadata"):
        v.del_metadata("ref")
    v.set_metadata({"tag": 1})  # replacing all metadata keeps the required entries
    assert v.get_metadata() == {"tag": 1, **REQUIRED}


def test_get_metadata_argument_errors() -> None:
    v = nnx.Param(jnp.ones(2))
    with pytest.raises(TypeError, match="cannot specify both 'name' and 'exclude_required'"):
        v.get_metadata("ref", exclude_required=True)
    with pytest.raises(TypeError, match="cannot provide a default value when 'name'"):
        v.get_metadata(default=1)
    with pytest.raises(KeyError, match="has no metadata 'nope'"):
        v.get_metadata("nope")
    assert v.get_metadata("nope", 3) == 3


# ----------------------------------------------------------------- sharding keys
@pytest.mark.parametrize("alias", ["sharding_names", "sharding"])
def test_sharding_aliases_are_stored_as_out_sharding(alias: str) -> None:
    v = nnx.Param(jnp.ones((2, 4)), **{alias: (None, "model")})
    assert v.get_metadata(exclude_required=True) == {"out_sharding": (None, "model")}
    assert v.sharding_names == (None, "model")
    v.sharding_names = ("model", None)
    assert v.get_metadata("out_sharding") == ("model", None)
    v.set_metadata("sharding_names", None)
    assert v.sharding_names is None and "sharding_names" not in v.get_metadata()


def test_out_sharding_given_with_an_alias_wins() -> None:
    v = nnx.Param(jnp.ones(2), out_sharding=("a",), sharding_names=("b",))
    assert v.get_metadata("out_sharding") == ("a",)


# ------------------------------------------------------------------------- refs
def test_ref_holds_the_value_in_a_jax_ref_updated_in_place() -> None:
    v = nnx.Param(jnp.zeros(3), ref=True)
    ref = v.get_raw_value()
    assert "Ref" in type(ref).__name__
    v[...] = jnp.ones(3)
    assert v.get_raw_value() is ref  # written through the reference
    assert v[...].tolist() == [1.0, 1.0, 1.0] and v.shape == (3,)
    v[1] = 5.0
    assert v.get_value().tolist() == [1.0, 5.0, 1.0]

    @jax.jit
    def bump(var: nnx.Param[jax.Array]) -> None:
        var[...] = var[...] + 1  # plain jax.jit: the Ref is updated in place

    bump(v)
    assert v[...].tolist() == [2.0, 6.0, 2.0]


def test_ref_variables_in_nnx_jit() -> None:
    class Counter(nnx.Module):
        def __init__(self) -> None:
            self.n = nnx.Variable(jnp.array(0), ref=True)

    c = Counter()
    step = nnx.jit(lambda c: c.n.set_value(c.n[...] + 1))
    step(c)
    step(c)
    assert int(c.n[...]) == 2 and c.n.ref


def test_copy_makes_a_new_ref_unless_told_not_to() -> None:
    v = nnx.Param(jnp.zeros(2), ref=True)
    fresh = v.copy()
    shared = v.copy(_copy_ref=False)
    assert fresh.get_raw_value() is not v.get_raw_value() and fresh.ref
    assert shared.get_raw_value() is v.get_raw_value()
    fresh[...] = jnp.ones(2)
    assert v[...].tolist() == [0.0, 0.0]
    assert v.to_state().ref and v.replace(jnp.ones(2)).ref


def test_a_ref_cannot_be_passed_as_the_value() -> None:
    with pytest.raises(ValueError, match=r"(?s)Cannot pass a Ref directly.*ref=True"):
        nnx.Param(jax.new_ref(jnp.ones(2)))


def test_var_defaults_ref_function_context_and_decorator() -> None:
    assert dict(nnx.var_defaults()) == {"hijax": False, "ref": False}
    assert isinstance(nnx.var_defaults(), variablelib.VarDefaults)
    with nnx.var_defaults(ref=True) as current:
        assert current.ref and nnx.Param(jnp.ones(1)).ref
    assert not nnx.Param(jnp.ones(1)).ref

    @nnx.var_defaults(ref=True)
    def make() -> nnx.Param[jax.Array]:
        return nnx.Param(jnp.ones(1))

    assert not nnx.var_defaults().ref  # decorating changes nothing
    assert make().ref and not nnx.Param(jnp.ones(1)).ref


# ------------------------------------------------------------------------ hooks
def test_value_hooks_from_with_metadata_run_on_create_get_and_set() -> None:
    seen: list[str] = []

    def on_create(v: object, x: jax.Array) -> jax.Array:
        seen.append("create")
        return x + 1

    init = nnx.with_metadata(
        jax.nn.initializers.zeros,
        on_create_value=on_create,
        on_get_value=lambda v, x: x * 10,
        on_set_value=[lambda v, x: x + 1, lambda v, x: x * 2],
        tag="hooked",
    )
    boxed = init(jax.random.key(0), (2,))
    assert boxed.on_set_value and len(boxed.on_set_value) == 2 and boxed.on_add_axis == ()
    p = nnx.Param(boxed)
    assert seen == ["create"] and p.tag == "hooked"
    assert p.get_raw_value().tolist() == [1.0, 1.0]
    assert p[...].tolist() == [10.0, 10.0]  # read through on_get_value
    p[...] = jnp.ones(2)  # (1 + 1) * 2
    assert p.get_raw_value().tolist() == [4.0, 4.0]
    assert callable(p.get_metadata("on_get_value")[0])


def test_subclass_hook_methods_are_used() -> None:
    class Clipped(nnx.Variable[jax.Array]):
        def on_set_value(self, value: jax.Array) -> jax.Array:
            return jnp.clip(value, 0, 1)

    v = Clipped(jnp.zeros(2))
    v[...] = jnp.array([-3.0, 3.0])
    assert v[...].tolist() == [0.0, 1.0]


def test_axis_hooks_run_when_vmap_adds_and_removes_the_axis() -> None:
    calls: list[tuple[str, int, object]] = []
    init = nnx.with_metadata(
        jax.nn.initializers.ones,
        on_add_axis=lambda v, i, name: calls.append(("add", i, name)),
        on_remove_axis=lambda v, i, name: calls.append(("remove", i, name)),
    )
    p = nnx.Param(init(jax.random.key(0), (3, 2)))

    class Holder(nnx.Module):
        def __init__(self) -> None:
            self.p = p

    f = nnx.vmap(
        lambda m, x: m.p[...] * x,
        in_axes=(0, None),
        transform_metadata={nnx.PARTITION_NAME: "batch"},
    )
    f(Holder(), 2.0)
    assert calls == [("remove", 0, "batch"), ("add", 0, "batch")]
    calls.clear()
    p.add_axis(1, None)
    assert calls == [("add", 1, None)]


# ------------------------------------------------------------- container methods
def test_contains_and_delitem_act_on_the_value() -> None:
    v = nnx.Variable({"a": 1, "b": 2})
    assert "a" in v and "c" not in v
    del v["a"]
    assert v.get_value() == {"b": 2}
    lst = nnx.Variable([1, 2, 3])
    del lst[0]
    assert 3 in lst and lst.get_value() == [2, 3]


def test_ellipsis_assignment_broadcasts_like_jax() -> None:
    v = nnx.Param(jnp.ones((2, 3)))
    v[...] = 0.0
    assert v.shape == (2, 3) and float(v[...].sum()) == 0.0
    same = jnp.full((2, 3), 4.0)
    v[...] = same
    assert v.get_raw_value() is same  # same shape and dtype: replaced outright


def test_copy_from_requires_the_same_type_and_update_from_state_keeps_flags() -> None:
    p = nnx.Param(jnp.zeros(2), tag="a")
    with pytest.raises(ValueError, match="Cannot copy from incompatible container"):
        p.copy_from(nnx.BatchStat(jnp.ones(2)))
    p.copy_from(nnx.Param(jnp.ones(2), tag="b"))
    assert p.tag == "b" and p[...].tolist() == [1.0, 1.0]
    q = nnx.Param(jnp.zeros(2), ref=True)
    state = nnx.Param(jnp.full(2, 3.0), tag="c")
    q.update_from_state(variable_state=state)
    assert q.tag == "c" and q.ref is True


def test_from_metadata_builds_without_running_hooks() -> None:
    v = nnx.Param.from_metadata(jnp.ones(2), {"tag": "x"})
    assert type(v) is nnx.Param and v.get_metadata() == {"tag": "x", **REQUIRED}


# ------------------------------------------------------------------ trace level
def test_mutating_a_captured_variable_inside_jax_jit_raises() -> None:
    v = nnx.Param(jnp.zeros(2))

    @jax.jit
    def write(x: jax.Array) -> jax.Array:
        v[...] = x
        return x

    with pytest.raises(TraceContextError, match="Cannot mutate Param from a different trace level"):
        write(jnp.ones(2))
    assert v[...].tolist() == [0.0, 0.0]  # left as it was

    @jax.jit
    def tag(x: jax.Array) -> jax.Array:
        v.set_metadata(tag=1)
        return x

    with pytest.raises(TraceContextError, match="set its metadata"):
        tag(jnp.ones(2))


def test_variables_made_inside_or_passed_in_can_be_mutated() -> None:
    @jax.jit
    def inner(x: jax.Array) -> jax.Array:
        w = nnx.Param(jnp.zeros(2))
        w[...] = x + 1
        return w[...]

    assert inner(jnp.ones(2)).tolist() == [2.0, 2.0]
    v = nnx.Param(jnp.zeros(2))

    @jax.jit
    def passed(var: nnx.Param[jax.Array]) -> nnx.Param[jax.Array]:
        var[...] = var[...] + 1
        return var

    assert passed(v)[...].tolist() == [1.0, 1.0]
    model = nnx.Dict(w=v)
    nnx.jit(lambda m: m["w"].set_value(m["w"][...] + 2))(model)
    assert v[...].tolist() == [2.0, 2.0]


# --------------------------------------------------------------- collection names
def test_register_variable_name_as_decorator_and_errors() -> None:
    @nnx.register_variable_name("test_flax_counts")
    class Counts(nnx.Variable[jax.Array]):
        pass

    assert nnx.variable_type_from_name("test_flax_counts") is Counts
    assert nnx.variable_name_from_type(Counts) == "test_flax_counts"
    with pytest.raises(ValueError, match="already mapped to type Counts"):
        nnx.register_variable_name("test_flax_counts", nnx.Param)
    assert nnx.register_variable_name("test_flax_counts", Counts, overwrite=True) is Counts


def test_variable_type_from_name_base_and_errors() -> None:
    with pytest.raises(ValueError, match="not registered in the registry"):
        nnx.variable_type_from_name("test_flax_unknown")
    made = nnx.variable_type_from_name("test_flax_made", base=nnx.Param, allow_register=True)
    assert issubclass(made, nnx.Param) and made.__name__ == "test_flax_made"

    class Unnamed(nnx.Variable[jax.Array]):
        pass

    with pytest.raises(ValueError, match="Type Unnamed is not registered"):
        nnx.variable_name_from_type(Unnamed)


# ------------------------------------------------------------- use_eager_sharding
def test_use_eager_sharding_stack_members() -> None:
    cls = nnx.use_eager_sharding
    assert cls.get_default() is True and cls.current_value() is True and cls.get_stack() == []
    with cls(False):
        assert cls.current_value() is False and cls.get_stack() == [False]
        assert nnx.Param(jnp.ones(1)).eager_sharding is False
    assert cls.get_stack() == [] and nnx.using_eager_sharding()

    @cls(False)
    def make() -> nnx.Param[jax.Array]:
        return nnx.Param(jnp.ones(1))

    assert cls.current_value() is True
    assert make().eager_sharding is False


# ---------------------------------------------------------------- AbstractVariable
def test_abstract_variable_describes_type_and_leaves() -> None:
    value = np.ones((2, 3), np.float32)
    leaves, treedef = jax.tree.flatten(value)
    avals = tuple(map(jax.typeof, leaves))
    a = variablelib.AbstractVariable(nnx.Param, treedef, avals, False)
    b = variablelib.AbstractVariable(nnx.Param, treedef, avals, False)
    assert a == b and hash(a) == hash(b) and repr(a) == "Param()"
    assert a.type is nnx.Param and a.ref is False and a.hijax is False
    assert type(a.from_metadata(jnp.ones(1), {})) is nnx.Param
    with pytest.raises(ValueError, match="treedef and leaves must be both provided or both None"):
        variablelib.AbstractVariable(nnx.Param, treedef, None, False)


def test_abstract_variable_value_members_explain_themselves() -> None:
    a = variablelib.AbstractVariable(nnx.Param, None, None, False)
    with pytest.raises(TypeError, match=r"AbstractVariable\.get_value: Param\(\) describes"):
        a.get_value()
    with pytest.raises(AttributeError, match="AbstractVariable has no shape"):
        _ = a.shape
