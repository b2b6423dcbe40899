"""Sharding annotations, partition specs, logical axis rules, eager placement and
abstract models (nnx_graph._sharding).

Single-device tests run in the normal session. Tests marked ``multidevice`` need 8
devices: run them with
``XLA_FLAGS=--xla_force_host_platform_device_count=8 python3 -m pytest
tests/graph/test_sharding.py -m multidevice``.
"""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import nnx_graph as nnx
from nnx_graph import spmd
from nnx_graph._sharding import (
    PARTITION_NAME,
    ShardingError,
    abstract_with_sharding,
    add_axis,
    as_abstract,
    get_abstract_model,
    get_logical_axis_rules,
    get_named_sharding,
    get_partition_spec,
    logical_axis_rules,
    remove_axis,
    use_eager_sharding,
    using_eager_sharding,
    with_partitioning,
)

ones = jax.nn.initializers.ones
lecun = jax.nn.initializers.lecun_normal()


# ----------------------------------------------------------------------------- models


class Linear(nnx.Module):
    """A Linear layer whose kernel is annotated with ``kernel_names``."""

    def __init__(
        self,
        din: int,
        dout: int,
        *,
        rngs: nnx.Rngs,
        kernel_names: tp.Any = (None, "model"),
        mesh: tp.Any = None,
        out_sharding: tp.Any = None,
    ) -> None:
        init = with_partitioning(lecun, kernel_names, mesh=mesh)
        self.kernel = nnx.Param(init(rngs.params(), (din, dout)))
        self.bias = nnx.Param(jnp.zeros((dout,)))
        # Explicit mesh axes: a contraction over a sharded axis needs its output sharding.
        self.out_sharding = out_sharding

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.out_sharding is not None:
            y = jnp.matmul(x, self.kernel.value, out_sharding=self.out_sharding)
        else:
            y = x @ self.kernel.value
        return y + self.bias.value


class MLP(nnx.Module):
    """Megatron-style: first kernel column-sharded, second row-sharded on 'model'."""

    def __init__(self, *, rngs: nnx.Rngs, mesh: tp.Any = None, explicit: bool = False) -> None:
        self.up = Linear(8, 16, rngs=rngs, kernel_names=(None, "model"), mesh=mesh)
        self.down = Linear(
            16,
            4,
            rngs=rngs,
            kernel_names=("model", None),
            mesh=mesh,
            out_sharding=P("data", None) if explicit else None,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down(jax.nn.relu(self.up(x)))


def one_device_mesh(*names: str) -> jax.sharding.Mesh:
    names = names or ("model",)
    return jax.make_mesh((1,) * len(names), names)


def message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(excinfo.value)


@pytest.fixture(autouse=True)
def _restore_settings() -> tp.Iterator[None]:
    eager = using_eager_sharding()
    rules = get_logical_axis_rules()
    yield
    use_eager_sharding(eager)
    logical_axis_rules(rules)


# ------------------------------------------------------------------------ annotations


def test_partition_name_constant() -> None:
    assert PARTITION_NAME == "partition_name"


def test_with_partitioning_adds_metadata() -> None:
    init = with_partitioning(ones, [None, "model"], tag="kernel")
    v = nnx.Param(init(jax.random.key(0), (2, 4)))
    assert v.sharding_names == (None, "model")
    assert v.mesh is None
    assert v.tag == "kernel"
    assert v.shape == (2, 4)
    assert float(v.value.sum()) == 8.0


def test_with_partitioning_keeps_initializer_name() -> None:
    def my_init(key: tp.Any, shape: tp.Any, dtype: tp.Any = jnp.float32) -> jax.Array:
        return jnp.zeros(shape, dtype)

    assert with_partitioning(my_init, ("a",)).__name__ == "my_init"


def test_get_partition_spec_of_state() -> None:
    model = MLP(rngs=nnx.Rngs(0))
    specs = get_partition_spec(nnx.state(model))
    assert isinstance(specs, nnx.State)
    assert specs["up"]["kernel"].value == P(None, "model")
    assert specs["down"]["kernel"].value == P("model", None)
    assert specs["up"]["bias"].value == P()
    # Variables keep their type and metadata, so the tree matches the State's.
    assert type(specs["up"]["kernel"]) is nnx.Param
    assert specs["up"]["kernel"].sharding_names == (None, "model")
    assert jax.tree.structure(specs) == jax.tree.structure(nnx.state(model))


def test_get_partition_spec_of_module_and_pytrees() -> None:
    model = MLP(rngs=nnx.Rngs(0))
    specs = get_partition_spec(model)
    assert specs.up.kernel.value == P(None, "model")
    plain = get_partition_spec({"x": jnp.ones((2, 3)), "n": 3, "v": nnx.Variable("text")})
    assert plain["x"] == P()
    assert plain["n"] is None
    assert plain["v"].value is None
    # A Variable holding None has no leaf: its spec is None even when annotated, so
    # the spec tree keeps the structure of the State.
    absent = nnx.State({"b": nnx.Param(None, sharding_names=("model",))})
    assert get_partition_spec(absent)["b"].value is None
    assert jax.tree.structure(get_partition_spec(absent)) == jax.tree.structure(absent)


def test_get_partition_spec_reads_other_metadata_spellings() -> None:
    state = nnx.State(
        {
            "legacy": nnx.Param(jnp.ones((2, 4)), sharding=("data", None)),
            "flax": nnx.Param(jnp.ones((2, 4)), out_sharding=(None, "model")),
            "spec": nnx.Param(jnp.ones((2, 4)), sharding_names=P("data", "model")),
            "tuple_axes": nnx.Param(jnp.ones((2, 4)), sharding_names=(("data", "model"), None)),
            "scalar": nnx.Param(jnp.ones(()), sharding_names=()),
        }
    )
    specs = get_partition_spec(state)
    assert specs["legacy"].value == P("data", None)
    assert specs["flax"].value == P(None, "model")
    assert specs["spec"].value == P("data", "model")
    assert specs["tuple_axes"].value == P(("data", "model"), None)
    assert specs["scalar"].value == P()


def test_named_sharding_metadata_uses_its_spec_and_mesh() -> None:
    mesh = one_device_mesh("model")
    init = with_partitioning(ones, NamedSharding(mesh, P(None, "model")))
    v = nnx.Param(init(jax.random.key(0), (2, 4)))
    assert get_partition_spec(v).value == P(None, "model")
    # The NamedSharding's mesh places the value at creation.
    assert isinstance(v.value.sharding, NamedSharding)
    assert v.value.sharding.spec == P(None, "model")


def test_get_named_sharding_and_device_put() -> None:
    mesh = one_device_mesh("data", "model")
    model = MLP(rngs=nnx.Rngs(0))
    state = nnx.state(model)
    shardings = get_named_sharding(state, mesh)
    assert shardings["up"]["kernel"].value == NamedSharding(mesh, P(None, "model"))
    assert shardings["up"]["bias"].value == NamedSharding(mesh, P())
    placed = jax.device_put(state, shardings)
    assert placed["down"]["kernel"].value.sharding.spec == P("model", None)
    np.testing.assert_array_equal(placed["down"]["kernel"].value, state["down"]["kernel"].value)


def test_get_named_sharding_of_abstract_state() -> None:
    mesh = one_device_mesh("data", "model")
    abstract = jax.eval_shape(lambda: nnx.split(MLP(rngs=nnx.Rngs(0)))[1])
    shardings = get_named_sharding(abstract, mesh)
    assert shardings["up"]["kernel"].value.spec == P(None, "model")


# ------------------------------------------------------------------------ logical rules


def test_logical_axis_rules_context_manager() -> None:
    v = nnx.Param(jnp.ones((4, 8)), sharding_names=("embed", "mlp"))
    assert get_partition_spec(v).value == P("embed", "mlp")  # no rules: names as given
    with logical_axis_rules([("embed", None), ("mlp", "model")]):
        assert get_logical_axis_rules() == (("embed", None), ("mlp", "model"))
        assert get_partition_spec(v).value == P(None, "model")
    assert get_logical_axis_rules() == ()
    assert get_partition_spec(v).value == P("embed", "mlp")


def test_logical_axis_rules_setter_nesting_and_mapping() -> None:
    v = nnx.Param(jnp.ones((4, 8)), sharding_names=("batch", "mlp"))
    logical_axis_rules({"batch": "data", "mlp": "model"})  # setter form
    assert get_partition_spec(v).value == P("data", "model")
    with logical_axis_rules([("batch", ("data", "model")), ("mlp", None)]):
        assert get_partition_spec(v).value == P(("data", "model"), None)
    assert get_partition_spec(v).value == P("data", "model")
    logical_axis_rules(())
    assert get_logical_axis_rules() == ()


def test_variable_sharding_rules_compose_with_context_rules() -> None:
    v = nnx.Param(
        jnp.ones((4, 8)), sharding_names=("batch", "mlp"), sharding_rules=(("mlp", "model"),)
    )
    assert get_partition_spec(v).value == P("batch", "model")
    with logical_axis_rules([("batch", "data")]):
        assert get_partition_spec(v).value == P("data", "model")
    with logical_axis_rules([("mlp", "data")]), pytest.raises(ShardingError) as excinfo:
        get_partition_spec({"w": v})
    text = message(excinfo)
    assert text.startswith("tree.w: ")
    assert "logical axis 'mlp' has two different rules" in text
    assert "'data' from nnx.logical_axis_rules and 'model'" in text
    assert "Fix:" in text


def test_logical_axis_rules_rejects_malformed_rules() -> None:
    with pytest.raises(TypeError) as excinfo:
        logical_axis_rules([("embed", 3)])  # type: ignore[list-item]
    text = message(excinfo)
    assert "(logical_name, mesh_axes)" in text and "found ('embed', 3)" in text
    assert "Fix: nnx.logical_axis_rules" in text
    assert get_logical_axis_rules() == ()


def test_logical_rules_resolve_at_creation() -> None:
    mesh = one_device_mesh("data", "model")
    init = with_partitioning(ones, ("embed", "mlp"))
    with logical_axis_rules([("embed", None), ("mlp", "model")]), jax.set_mesh(mesh):
        v = nnx.Param(init(jax.random.key(0), (2, 4)))
    assert v.value.sharding.spec == P(None, "model")
    assert v.sharding_names == ("embed", "mlp")  # the annotation stays logical


# ------------------------------------------------------------------------------ errors


class Stack(nnx.Module):
    def __init__(self, names: tp.Any) -> None:
        self.layers = nnx.List([Linear(2, 4, rngs=nnx.Rngs(0)) for _ in range(2)])
        self.layers[1].kernel.set_metadata(sharding_names=names)


def test_rank_mismatch_names_the_path() -> None:
    # An extra entry that would shard a missing axis cannot be honoured.
    model = Stack(("data", None, "model"))
    with pytest.raises(ShardingError) as excinfo:
        get_partition_spec(nnx.state(model))
    text = message(excinfo)
    assert text.startswith("state.layers[1].kernel: ")
    assert "3 entries but the value has rank 2" in text
    assert "entries past axis 1 are not None" in text
    assert "Expected: at most one entry per axis (2 in all)" in text
    assert "Found: out_sharding=('data', None, 'model')" in text
    assert "Fix: give one entry per axis, e.g. (None, 'model')" in text

    with pytest.raises(ShardingError) as excinfo:
        get_partition_spec(model)
    assert message(excinfo).startswith("model.layers[1].kernel: ")


def test_shorter_annotation_leaves_the_other_axes_unsharded() -> None:
    # As in Flax/JAX: missing trailing entries mean "not sharded"; trailing Nones
    # beyond the rank are dropped.
    model = Stack(("model",))
    specs = get_partition_spec(nnx.state(model))
    assert specs["layers"][1]["kernel"].value == P("model")
    shardings = get_named_sharding(nnx.state(model), one_device_mesh("model"))
    assert shardings["layers"][1]["kernel"].value.spec == P("model")
    model = Stack(("model", None, None))
    assert get_partition_spec(nnx.state(model))["layers"][1]["kernel"].value == P("model", None)


def test_unknown_mesh_axis() -> None:
    model = Stack((None, "modle"))
    mesh = one_device_mesh("data", "model")
    with pytest.raises(ShardingError) as excinfo:
        get_named_sharding(nnx.state(model), mesh)
    text = message(excinfo)
    assert text.startswith("state.layers[1].kernel: mesh axis 'modle' is not an axis of the mesh")
    assert "Expected: one of the mesh axes ('data', 'model'), or None" in text
    assert "Found: 'modle' in out_sharding=(None, 'modle')" in text
    assert "Fix: correct the name; if 'modle' is a logical axis name" in text


def test_unknown_mesh_axis_under_set_mesh_in_get_partition_spec() -> None:
    model = Stack((None, "modle"))
    # Without a mesh nothing can be checked: names pass through.
    assert get_partition_spec(nnx.state(model))["layers"][1]["kernel"].value == P(None, "modle")
    with jax.set_mesh(one_device_mesh("data", "model")), pytest.raises(ShardingError) as excinfo:
        get_partition_spec(nnx.state(model))
    assert "mesh axis 'modle' is not an axis of the mesh" in message(excinfo)


def test_logical_axis_without_rule() -> None:
    model = Stack(("embed", "mlp"))
    mesh = one_device_mesh("data", "model")
    with logical_axis_rules([("mlp", "model")]), pytest.raises(ShardingError) as excinfo:
        get_named_sharding(nnx.state(model), mesh)
    text = message(excinfo)
    assert text.startswith("state.layers[1].kernel: logical axis 'embed' has no rule")
    assert "Expected: a logical name covered by the rules ['mlp']" in text
    assert "or one of the mesh axes ('data', 'model')" in text
    assert "Found: 'embed' in out_sharding=('embed', 'mlp')" in text
    assert "Fix: add a rule, e.g. nnx.logical_axis_rules([..., ('embed', 'data')])" in text


def test_rule_pointing_at_unknown_mesh_axis() -> None:
    model = Stack(("embed", None))
    with logical_axis_rules([("embed", "tensor")]), pytest.raises(ShardingError) as excinfo:
        get_named_sharding(nnx.state(model), one_device_mesh("data", "model"))
    text = message(excinfo)
    assert "the rule 'embed' -> 'tensor' names mesh axis 'tensor'" in text
    assert "Expected: one of the mesh axes ('data', 'model')" in text


def test_mesh_axis_used_twice() -> None:
    model = Stack(("model", "model"))
    with pytest.raises(ShardingError) as excinfo:
        get_named_sharding(nnx.state(model), one_device_mesh("data", "model"))
    text = message(excinfo)
    assert "mesh axis 'model' shards more than one axis" in text
    assert text.startswith("state.layers[1].kernel: ")


def test_errors_at_creation_describe_the_variable() -> None:
    init = with_partitioning(ones, ("model", None, "model"))
    with jax.set_mesh(one_device_mesh("model")), pytest.raises(ShardingError) as excinfo:
        nnx.Param(init(jax.random.key(0), (2, 4)))
    text = message(excinfo)
    assert text.startswith("Param(shape=(2, 4), dtype=float32) being created: ")
    assert "3 entries but the value has rank 2" in text


def test_bad_entry_type() -> None:
    with pytest.raises(ShardingError, match=r"sharding entry 3 is not a name"):
        get_partition_spec(nnx.Param(jnp.ones((2,)), sharding_names=(3,)))


# ------------------------------------------------------------------------ eager placement


def test_eager_switch() -> None:
    assert using_eager_sharding() is True  # the Flax NNX 0.12 default
    use_eager_sharding(False)
    assert using_eager_sharding() is False
    with use_eager_sharding(True):
        assert using_eager_sharding() is True
        with use_eager_sharding(False):
            assert using_eager_sharding() is False
        assert using_eager_sharding() is True
    assert using_eager_sharding() is False
    use_eager_sharding(True)
    assert "use_eager_sharding(True)" in repr(use_eager_sharding(True))
    # the statement form sets the top of a process-wide stack (as Flax): leave it empty
    use_eager_sharding.get_stack().clear()
    assert use_eager_sharding.get_stack() == [] and using_eager_sharding() is True


def test_no_mesh_leaves_value_alone() -> None:
    init = with_partitioning(ones, (None, "model"))
    v = nnx.Param(init(jax.random.key(0), (2, 4)))
    assert not isinstance(v.value.sharding, NamedSharding)


def test_eager_placement_under_set_mesh() -> None:
    mesh = one_device_mesh("model")
    init = with_partitioning(ones, (None, "model"))
    with jax.set_mesh(mesh):
        v = nnx.Param(init(jax.random.key(0), (2, 4)))
        direct = nnx.Param(jnp.ones((4,)), sharding_names=("model",))
    assert v.value.sharding == NamedSharding(mesh, P(None, "model"))
    assert direct.value.sharding.spec == P("model")


def test_eager_placement_with_mesh_metadata() -> None:
    mesh = one_device_mesh("model")
    v = nnx.Param(with_partitioning(ones, ("model",), mesh=mesh)(jax.random.key(0), (4,)))
    assert v.value.sharding == NamedSharding(mesh, P("model"))
    assert v.mesh is mesh


def test_eager_off_does_not_place() -> None:
    mesh = one_device_mesh("model")
    init = with_partitioning(ones, (None, "model"))
    with use_eager_sharding(False), jax.set_mesh(mesh):
        v = nnx.Param(init(jax.random.key(0), (2, 4)))
        forced = nnx.Param(init(jax.random.key(0), (2, 4)), eager_sharding=True)
    assert v.value.sharding.is_fully_replicated and v.value.sharding.spec != P(None, "model")
    assert forced.value.sharding.spec == P(None, "model")


def test_eager_sharding_false_metadata_opts_out() -> None:
    with jax.set_mesh(one_device_mesh("model")):
        v = nnx.Param(jnp.ones((4,)), sharding_names=("model",), eager_sharding=False)
    assert v.value.sharding.spec != P("model")


def test_eager_sharding_true_without_mesh_raises() -> None:
    with pytest.raises(ShardingError) as excinfo:
        nnx.Param(jnp.ones((4,)), sharding_names=("model",), eager_sharding=True)
    text = message(excinfo)
    assert text.startswith("Param(shape=(4,), dtype=float32) being created: ")
    assert "An auto mesh context or metadata is required" in text  # Flax's phrase
    assert "no mesh is set" in text
    assert "Fix: create the Variable under `with jax.set_mesh(mesh):`" in text
    assert isinstance(excinfo.value, ValueError)  # Flax raises ValueError here


@pytest.mark.parametrize("key", ["out_sharding", "sharding_names", "sharding"])
def test_every_metadata_key_spelling_is_an_annotation(key: str) -> None:
    mesh = one_device_mesh("data", "model")
    with jax.set_mesh(mesh):
        v = nnx.Param(jnp.ones((2, 4)), **{key: (None, "model")})
    assert v.value.sharding.spec == P(None, "model")
    assert get_partition_spec(v).value == P(None, "model")


def test_sharding_alias_is_stored_as_out_sharding() -> None:
    # Flax 0.12 keeps the `sharding=` annotation under out_sharding, so that
    # `v.sharding` is the value's placement, as for a jax.Array.
    v = nnx.Param(jnp.ones((2, 4)), sharding=(None, "model"))
    assert v.get_metadata()["out_sharding"] == (None, "model")
    assert "sharding" not in v.get_metadata()
    assert v.sharding == v.value.sharding
    assert get_partition_spec(v).value == P(None, "model")


def test_out_sharding_wins_over_the_aliases() -> None:
    v = nnx.Param(jnp.ones((2, 4)), out_sharding=("data", None), sharding_names=(None, "x"))
    assert get_partition_spec(v).value == P("data", None)


def test_annotation_without_a_mesh_is_kept_for_later() -> None:
    # Deliberate difference: Flax raises when an annotated Variable is created with
    # eager sharding on and no mesh; nnx keeps the annotation and places later.
    v = nnx.Param(jnp.ones((2, 4)), out_sharding=(None, "model"))
    assert v.value.sharding.is_fully_replicated
    shardings = get_named_sharding(v, one_device_mesh("model"))
    assert shardings.value.spec == P(None, "model")


def test_eager_placement_inside_jit() -> None:
    mesh = one_device_mesh("data", "model")

    def create() -> tp.Any:
        return nnx.split(MLP(rngs=nnx.Rngs(0)))[1]

    with jax.set_mesh(mesh):
        state = jax.jit(create)()
    assert state["up"]["kernel"].value.sharding.spec == P(None, "model")
    assert state["down"]["kernel"].value.sharding.spec == P("model", None)


def test_eager_placement_inside_jit_auto_axes_constrains() -> None:
    mesh = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    with jax.set_mesh(mesh):
        jaxpr = jax.make_jaxpr(lambda: nnx.split(MLP(rngs=nnx.Rngs(0)))[1])()
    constraints = [e for e in jaxpr.eqns if e.primitive.name == "sharding_constraint"]
    assert [e.params["sharding"].spec for e in constraints] == [P(None, "model"), P("model", None)]


def test_eager_placement_of_abstract_values() -> None:
    mesh = one_device_mesh("model")
    with jax.set_mesh(mesh):
        v = nnx.Param(jax.ShapeDtypeStruct((2, 4), jnp.float32), sharding_names=(None, "model"))
    assert isinstance(v.value, jax.ShapeDtypeStruct)
    assert v.value.sharding.spec == P(None, "model")


# ------------------------------------------------------------------------ abstract


def test_get_abstract_model() -> None:
    mesh = one_device_mesh("data", "model")
    graphdef, abstract = get_abstract_model(lambda: MLP(rngs=nnx.Rngs(0)), mesh)
    assert isinstance(graphdef, nnx.GraphDef)
    kernel = abstract["up"]["kernel"].value
    assert isinstance(kernel, jax.ShapeDtypeStruct)
    assert kernel.shape == (8, 16)
    assert kernel.sharding == NamedSharding(mesh, P(None, "model"))
    assert abstract["up"]["bias"].value.sharding.spec == P()
    for leaf in jax.tree.leaves(abstract):
        assert isinstance(leaf, jax.ShapeDtypeStruct) and leaf.sharding is not None
    # The abstract State is a valid target for sharded initialisation.
    shardings = jax.tree.map(lambda s: s.sharding, abstract)
    state = jax.jit(lambda: nnx.split(MLP(rngs=nnx.Rngs(0)))[1], out_shardings=shardings)()
    assert state["down"]["kernel"].value.sharding.spec == P("model", None)
    model = nnx.merge(graphdef, state)
    assert model.up.kernel.value.shape == (8, 16)


def test_as_abstract_module() -> None:
    mesh = one_device_mesh("data", "model")
    graphdef, state = nnx.split(MLP(rngs=nnx.Rngs(0)))  # no mesh: abstract has no shardings
    abstract = nnx.merge(
        graphdef, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    )
    with jax.set_mesh(mesh):
        annotated = as_abstract(abstract)
    assert annotated.up.kernel.value.sharding.spec == P(None, "model")
    assert annotated.up.bias.value.sharding is None  # unannotated: left alone
    assert abstract.up.kernel.value.sharding is None  # the input is not changed


def test_as_abstract_needs_a_mesh() -> None:
    state = nnx.State(
        {"w": nnx.Param(jax.ShapeDtypeStruct((2, 4), jnp.float32), sharding_names=(None, "m"))}
    )
    with pytest.raises(ShardingError) as excinfo:
        as_abstract(state)
    text = message(excinfo)
    assert text.startswith("state.w: cannot attach a sharding to the abstract value")
    assert "Fix: call it under `with jax.set_mesh(mesh):`" in text


def test_abstract_with_sharding_is_a_deprecated_alias() -> None:
    state = nnx.State(
        {"w": nnx.Param(jax.ShapeDtypeStruct((2, 4), jnp.float32), sharding_names=(None, "model"))}
    )
    with pytest.warns(DeprecationWarning, match="as_abstract"), jax.set_mesh(one_device_mesh()):
        out = abstract_with_sharding(state)
    assert out["w"].value.sharding.spec == P(None, "model")


class SharedKernel(nnx.Module):
    """``tied`` is the same Variable as ``up.kernel``: a shared reference."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.up = Linear(2, 4, rngs=rngs)
        self.tied = self.up.kernel


def test_get_abstract_model_graph_modes() -> None:
    mesh = one_device_mesh("data", "model")
    for graph in (None, True, False):  # no shared Variables: every mode gives the same
        graphdef, abstract = get_abstract_model(lambda: MLP(rngs=nnx.Rngs(0)), mesh, graph=graph)
        assert isinstance(graphdef, nnx.GraphDef)
        assert abstract["up"]["kernel"].value.sharding.spec == P(None, "model")
    # graph mode keeps the shared kernel once; tree mode rejects the shared reference
    _, abstract = get_abstract_model(lambda: SharedKernel(nnx.Rngs(0)), mesh, graph=True)
    # the shared kernel appears once, at its first path in key order
    assert abstract["tied"].value.sharding.spec == P(None, "model")
    assert "kernel" not in abstract["up"]
    with pytest.raises(ValueError, match="Duplicate Param"):
        get_abstract_model(lambda: SharedKernel(nnx.Rngs(0)), mesh, graph=False)


def test_as_abstract_graph_modes() -> None:
    with jax.set_mesh(one_device_mesh("data", "model")):
        abstract = nnx.eval_shape(lambda: SharedKernel(nnx.Rngs(0)))
        for graph in (None, True):
            annotated = as_abstract(abstract, graph=graph)
            assert annotated.tied is annotated.up.kernel  # still shared
            assert annotated.tied.value.sharding.spec == P(None, "model")
        with pytest.raises(ValueError, match="Duplicate Param"):
            as_abstract(abstract, graph=False)
        plain = nnx.eval_shape(lambda: MLP(rngs=nnx.Rngs(0)))
        tree = as_abstract(plain, graph=False)
        assert tree.up.kernel.value.sharding.spec == P(None, "model")
        with pytest.warns(DeprecationWarning, match="Use as_abstract instead"):
            old = abstract_with_sharding(plain, graph=False)
        assert old.down.kernel.value.sharding.spec == P("model", None)


def test_logical_axis_rules_keyword() -> None:
    init = with_partitioning(ones, ("embed", "hidden"))
    w = nnx.Param(init(jax.random.key(0), (2, 4)))
    with logical_axis_rules(rules=[("embed", None), ("hidden", "model")]):
        assert get_partition_spec(w).value == P(None, "model")
    assert spmd.get_var_pspec(w) == P("embed", "hidden")  # no rules: names as given


# ------------------------------------------------------------------------ transform axes


def test_add_and_remove_axis() -> None:
    w = nnx.Param(jnp.ones((2, 4)), sharding_names=(None, "model"), other=("a", "b"))
    b = nnx.Param(jnp.ones((4,)))
    add_axis([w, b], 0, {PARTITION_NAME: "layers", "other": "L"})
    assert w.sharding_names == ("layers", None, "model")
    assert w.other == ("L", "a", "b")
    assert "sharding_names" not in b.get_metadata()
    remove_axis([w, b], 0, {PARTITION_NAME: "layers", "other": "L"})
    assert w.sharding_names == (None, "model")
    assert w.other == ("a", "b")
    # No partition name: the new axis is unsharded, the annotation keeps its length.
    add_axis(w, 1, {})
    assert w.sharding_names == (None, None, "model")


def test_remove_axis_mismatch() -> None:
    w = nnx.Param(jnp.ones((3, 4)), sharding_names=("layers", "model"))
    with pytest.raises(ShardingError) as excinfo:
        remove_axis({"w": w}, 1, {PARTITION_NAME: "layers"})
    text = message(excinfo)
    assert text.startswith("tree.w: cannot remove axis 1")
    assert "Expected: 'layers' at position 1" in text and "Found: 'model'" in text


# ========================================================================= multi-device

needs_8 = pytest.mark.skipif(
    jax.device_count() < 8,
    reason="needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8",
)
AXIS_TYPES = [AxisType.Explicit, AxisType.Auto]


def make_mesh(axis_type: AxisType, shape: tuple[int, int] = (2, 4)) -> jax.sharding.Mesh:
    return jax.make_mesh(shape, ("data", "model"), axis_types=(axis_type,) * 2)


def check_mlp_shardings(state: tp.Any, mesh: jax.sharding.Mesh, *, biases: bool = True) -> None:
    expected = {("up", "kernel"): P(None, "model"), ("down", "kernel"): P("model", None)}
    if biases:
        expected.update({("up", "bias"): P(), ("down", "bias"): P()})
    for (layer, name), spec in expected.items():
        value = state[layer][name].value
        assert isinstance(value.sharding, NamedSharding), (layer, name, value.sharding)
        assert value.sharding.mesh.shape == mesh.shape
        # JAX may drop trailing Nones (P('model') is P('model', None)): compare placements.
        assert value.sharding.is_equivalent_to(NamedSharding(mesh, spec), value.ndim), (
            layer,
            name,
            value.sharding.spec,
        )
    model_size = mesh.shape["model"]
    up = state["up"]["kernel"].value
    assert up.addressable_shards[0].data.shape == (8, 16 // model_size)
    down = state["down"]["kernel"].value
    assert down.addressable_shards[0].data.shape == (16 // model_size, 4)


@pytest.mark.multidevice
@needs_8
@pytest.mark.parametrize(
    ("axis_type", "shape"), [(AxisType.Explicit, (2, 4)), (AxisType.Auto, (4, 2))]
)
def test_sharded_init_with_jax_jit(axis_type: AxisType, shape: tuple[int, int]) -> None:
    mesh = make_mesh(axis_type, shape)

    def create() -> tp.Any:
        return nnx.split(MLP(rngs=nnx.Rngs(0)))[1]

    with use_eager_sharding(False):  # only out_shardings place the values
        abstract = jax.eval_shape(create)
        state = jax.jit(create, out_shardings=get_named_sharding(abstract, mesh))()
    check_mlp_shardings(state, mesh)
    reference = create()  # no mesh: one device
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(reference)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.multidevice
@needs_8
@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_sharded_init_eager(axis_type: AxisType) -> None:
    mesh = make_mesh(axis_type)
    with jax.set_mesh(mesh):
        model = MLP(rngs=nnx.Rngs(0))
    check_mlp_shardings(nnx.state(model), mesh)
    with jax.set_mesh(mesh):
        state = jax.jit(lambda: nnx.split(MLP(rngs=nnx.Rngs(0)))[1])()
    check_mlp_shardings(state, mesh)


@pytest.mark.multidevice
@needs_8
def test_sharded_init_with_mesh_metadata() -> None:
    mesh = make_mesh(AxisType.Auto)
    model = MLP(rngs=nnx.Rngs(0), mesh=mesh)  # no jax.set_mesh needed
    # Only annotated Variables know the mesh; the biases stay where they were made.
    check_mlp_shardings(nnx.state(model), mesh, biases=False)


@pytest.mark.multidevice
@needs_8
@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_get_abstract_model_multidevice(axis_type: AxisType) -> None:
    mesh = make_mesh(axis_type)
    _, abstract = get_abstract_model(lambda: MLP(rngs=nnx.Rngs(0)), mesh)
    assert abstract["up"]["kernel"].value.sharding == NamedSharding(mesh, P(None, "model"))
    shardings = get_named_sharding(abstract, mesh)
    state = jax.jit(lambda: nnx.split(MLP(rngs=nnx.Rngs(0)))[1], out_shardings=shardings)()
    check_mlp_shardings(state, mesh)


@pytest.mark.multidevice
@needs_8
def test_logical_rules_multidevice() -> None:
    mesh = make_mesh(AxisType.Auto)
    init = with_partitioning(ones, ("embed", "mlp"))
    with logical_axis_rules([("embed", "data"), ("mlp", "model")]), jax.set_mesh(mesh):
        v = nnx.Param(init(jax.random.key(0), (8, 16)))
    assert v.value.sharding.spec == P("data", "model")
    assert v.value.addressable_shards[0].data.shape == (4, 4)


@pytest.mark.multidevice
@needs_8
@pytest.mark.skipif(not hasattr(nnx, "jit"), reason="nnx_graph.jit not available yet")
@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_sharded_init_with_nnx_jit(axis_type: AxisType) -> None:
    mesh = make_mesh(axis_type)
    _, abstract = get_abstract_model(lambda: MLP(rngs=nnx.Rngs(0)), mesh)
    shardings = get_named_sharding(abstract, mesh)

    # Explicit mesh axes need the mesh as context for jit (JAX's rule).
    with use_eager_sharding(False), jax.set_mesh(mesh):
        model = nnx.jit(lambda: MLP(rngs=nnx.Rngs(0)), out_shardings=shardings)()
    check_mlp_shardings(nnx.state(model), mesh)

    @nnx.jit
    def create_eager() -> MLP:
        return MLP(rngs=nnx.Rngs(0))

    with jax.set_mesh(mesh):
        model = create_eager()
    check_mlp_shardings(nnx.state(model), mesh)

    if axis_type == AxisType.Explicit:
        return  # with_sharding_constraint only asserts on Explicit axes (JAX's rule)

    # The Flax guide's idiom: constrain the state with its partition specs.
    @nnx.jit
    def create_constrained() -> MLP:
        model = MLP(rngs=nnx.Rngs(0))
        state = nnx.state(model)
        nnx.update(model, jax.lax.with_sharding_constraint(state, get_partition_spec(state)))
        return model

    with use_eager_sharding(False), jax.set_mesh(mesh):
        model = create_constrained()
    check_mlp_shardings(nnx.state(model), mesh)


# ----------------------------------------------------------------- train step parity

LEARNING_RATE = 0.1
STEPS = 3


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(16, 8)).astype(np.float32),
        rng.normal(size=(16, 4)).astype(np.float32),
    )


def make_step(graphdef: nnx.GraphDef) -> tp.Callable[..., tp.Any]:
    def loss_fn(state: tp.Any, x: jax.Array, y: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state)
        return jnp.mean((model(x) - y) ** 2)

    def step(state: tp.Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, tp.Any]:
        loss, grads = jax.value_and_grad(loss_fn)(state, x, y)
        return loss, jax.tree.map(lambda p, g: p - LEARNING_RATE * g, state, grads)

    return step


def single_device_run(state: tp.Any) -> tuple[float, tp.Any]:
    device = jax.devices()[0]
    x, y = batch()
    step = jax.jit(make_step(nnx.graphdef(MLP(rngs=nnx.Rngs(0)))))
    state = jax.device_put(jax.device_get(state), device)
    x, y = jax.device_put(x, device), jax.device_put(y, device)
    losses = []
    for _ in range(STEPS):
        loss, state = step(state, x, y)
        losses.append(float(loss))
    return losses[-1], state


def assert_same(sharded: tp.Any, single: tp.Any) -> None:
    leaves, single_leaves = jax.tree.leaves(sharded), jax.tree.leaves(single)
    assert len(leaves) == len(single_leaves)
    for got, want in zip(leaves, single_leaves):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


@pytest.mark.multidevice
@needs_8
@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_data_and_tensor_parallel_train_step(axis_type: AxisType) -> None:
    mesh = make_mesh(axis_type)
    explicit = axis_type == AxisType.Explicit
    graphdef, abstract = get_abstract_model(lambda: MLP(rngs=nnx.Rngs(0), explicit=explicit), mesh)
    state_shardings = get_named_sharding(abstract, mesh)
    data_sharding = NamedSharding(mesh, P("data", None))
    with jax.set_mesh(mesh):
        state = nnx.split(MLP(rngs=nnx.Rngs(0), explicit=explicit))[1]
        initial = jax.device_get(state)
        step = jax.jit(
            make_step(graphdef),
            in_shardings=(state_shardings, data_sharding, data_sharding),
            out_shardings=(NamedSharding(mesh, P()), state_shardings),
        )
        x, y = batch()
        x, y = jax.device_put(x, data_sharding), jax.device_put(y, data_sharding)
        assert x.addressable_shards[0].data.shape == (8, 8)
        for _ in range(STEPS):
            loss, state = step(state, x, y)
    check_mlp_shardings(state, mesh)

    single_loss, single_state = single_device_run(initial)
    np.testing.assert_allclose(float(loss), single_loss, rtol=1e-6)
    assert_same(state, single_state)


@pytest.mark.multidevice
@needs_8
@pytest.mark.skipif(
    not (hasattr(nnx, "jit") and hasattr(nnx, "value_and_grad")),
    reason="nnx_graph.jit / value_and_grad not available yet",
)
def test_train_step_with_nnx_jit_and_grad() -> None:
    mesh = make_mesh(AxisType.Auto)
    data_sharding = NamedSharding(mesh, P("data", None))
    with jax.set_mesh(mesh):
        model = MLP(rngs=nnx.Rngs(0))
    initial = jax.device_get(nnx.state(model))

    @nnx.jit
    def train_step(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(model: MLP) -> jax.Array:
            return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads))
        return loss

    x, y = batch()
    x, y = jax.device_put(x, data_sharding), jax.device_put(y, data_sharding)
    with jax.set_mesh(mesh):
        for _ in range(STEPS):
            loss = train_step(model, x, y)
    # Nothing constrains the biases here, so XLA may shard them as it likes (Auto axes).
    check_mlp_shardings(nnx.state(model), mesh, biases=False)

    single_loss, single_state = single_device_run(initial)
    np.testing.assert_allclose(float(loss), single_loss, rtol=1e-6)
    assert_same(nnx.state(model), single_state)


@pytest.mark.multidevice
@needs_8
@pytest.mark.parametrize("axis_type", AXIS_TYPES)
def test_linear_general_and_einsum_metadata_flax_accepts(axis_type: AxisType) -> None:
    # Per-axis annotations of the full kernel rank, and shorter ones (the rest of
    # the axes unsharded), are accepted and placed as Flax places them.
    import nnx_nn

    mesh = make_mesh(axis_type)
    with jax.set_mesh(mesh):
        lg = nnx_nn.LinearGeneral(
            (4, 2),
            (8, 4),
            axis=(-2, -1),
            kernel_metadata={"sharding_names": ("data", None, "model", None)},
            rngs=nnx.Rngs(0),
        )
        short = nnx_nn.LinearGeneral(
            (4, 2),
            (8, 4),
            axis=(-2, -1),
            kernel_metadata={"out_sharding": ("data",)},
            rngs=nnx.Rngs(0),
        )
        ein = nnx_nn.Einsum(
            "bd,dnh->bnh",
            (4, 2, 8),
            (2, 8),
            kernel_metadata={"out_sharding": ("data", None, "model")},
            bias_metadata={"out_sharding": (None, "model")},
            rngs=nnx.Rngs(0),
        )
        y = ein(jnp.ones((2, 4)))
    assert lg.kernel.value.sharding.spec == P("data", None, "model", None)
    assert short.kernel.value.sharding.is_equivalent_to(NamedSharding(mesh, P("data")), 4)
    assert ein.kernel.value.sharding.spec == P("data", None, "model")
    assert ein.bias.value.sharding.spec == P(None, "model")
    assert y.shape == (2, 2, 8)


def test_out_sharding_given_as_a_layout_format_places_by_its_sharding() -> None:
    from jax.experimental.layout import Format, Layout

    mesh = jax.make_mesh((1, 1), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    sharding = NamedSharding(mesh, P("data", None))
    v = nnx.Variable(jnp.ones((4, 4)), out_sharding=Format(Layout(major_to_minor=(1, 0)), sharding))
    assert v.value.sharding == sharding
    np.testing.assert_array_equal(v.value, np.ones((4, 4)))
