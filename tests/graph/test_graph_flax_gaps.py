"""Graph-API behaviours matched to Flax NNX 0.12.8 (each case checked against Flax)."""

from __future__ import annotations

import dataclasses
import typing as tp

import jax
import jax.numpy as jnp
import pytest

import nnx_graph as nnx


class Cached(nnx.Module):
    """A decode-style cache that is None until initialised (nnx.data(None))."""

    def __init__(self) -> None:
        self.w = nnx.Param(jnp.ones(2))
        self.cache = nnx.data(None)


def test_data_none_attribute_has_no_state_entry() -> None:
    m = Cached()
    assert list(nnx.state(m)) == ["w"]
    # a filter list naming only Param is exhaustive: the None cache is not state
    graphdef, params = nnx.split(m, nnx.Param)
    again = nnx.merge(graphdef, params)
    assert again.cache is None and again.w.value.tolist() == [1.0, 1.0]


def test_data_none_attribute_becomes_state_once_filled() -> None:
    m = Cached()
    m.cache = jnp.zeros(3)
    assert sorted(nnx.state(m)) == ["cache", "w"]

    @nnx.jit
    def reset(model: Cached) -> None:
        model.cache = None

    reset(m)
    assert m.cache is None and list(nnx.state(m)) == ["w"]


def test_merge_with_too_few_leaves_names_the_counts() -> None:
    shared = nnx.Dict({"a": 1, "b": nnx.Param(2)})
    graphdef, _ = nnx.split(nnx.List([shared, 3, shared, nnx.Param(4)]))
    with pytest.raises(ValueError, match=r"Incorrect number of leaves \(expected 2, found 0\)"):
        nnx.merge(graphdef, nnx.State({}))


def test_merge_with_right_count_but_wrong_paths_lists_them() -> None:
    graphdef, state = nnx.split(nnx.Dict(a=nnx.Param(jnp.ones(1))))
    with pytest.raises(ValueError, match=r"missing: state\.a") as info:
        nnx.merge(graphdef, nnx.State({"b": nnx.Param(jnp.ones(1))}))
    assert "Incorrect number of leaves" not in str(info.value)
    assert "extra:   state.b" in str(info.value)
    assert jax.tree.leaves(state)  # the original state is untouched


# ------------------------------------------- JAX-only pytrees on data attributes
@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Pair:
    z_param: tp.Any
    a_value: tp.Any


class HoldsPair(nnx.Module):
    def __init__(self) -> None:
        self.pair = nnx.data(Pair(nnx.Param(jnp.ones(2)), jnp.zeros(2)))
        self.table = nnx.data(nnx.State({"b": nnx.Param(jnp.array(1.0))}))


def test_jax_only_pytree_on_data_attribute_is_traversed() -> None:
    m = HoldsPair()
    assert sorted(nnx.state(m).flat_state().paths) == [
        ("pair", "a_value"),
        ("pair", "z_param"),
        ("table", "b"),
    ]
    graphdef, state = nnx.split(m)
    again = nnx.merge(graphdef, state)
    assert type(again.pair) is Pair and isinstance(again.table, nnx.State)
    assert isinstance(again.pair.z_param, nnx.Param)
    assert again.pair.a_value.tolist() == [0.0, 0.0]


def test_jax_only_pytree_entries_are_carried_by_jit_vmap_update_and_clone() -> None:
    m = HoldsPair()

    @nnx.jit
    def step(model: HoldsPair) -> None:
        model.pair.a_value = model.pair.a_value + 1.0
        model.pair.z_param.value += 2.0
        model.table["b"].value += 3.0

    step(m)
    assert m.pair.a_value.tolist() == [1.0, 1.0]
    assert m.pair.z_param.value.tolist() == [3.0, 3.0]
    assert float(m.table["b"].value) == 4.0

    out = nnx.vmap(lambda model, x: model.pair.a_value * x, in_axes=(None, 0))(m, jnp.ones((3, 2)))
    assert out.shape == (3, 2)

    state = nnx.state(m)
    state["pair"]["a_value"] = jnp.full(2, 7.0)
    nnx.update(m, state)
    assert m.pair.a_value.tolist() == [7.0, 7.0]

    c = nnx.clone(m)
    assert type(c.pair) is Pair and c.pair.z_param is not m.pair.z_param
    assert c.pair.z_param.value.tolist() == [3.0, 3.0]


def test_jax_only_pytree_as_split_root() -> None:
    graphdef, state = nnx.split(Pair(nnx.Param(jnp.array(10.0)), jnp.array(20.0)))
    assert list(state) == ["a_value", "z_param"]  # sorted, as Flax lists them
    back = nnx.merge(graphdef, state)
    assert type(back) is Pair and float(back.z_param.value) == 10.0


def test_nested_pytrees_inside_a_jax_only_pytree_are_state_not_static() -> None:
    # a State of States (what nnx.state returns for nested Modules) and a dataclass
    # inside a dataclass: the inner values are state, never frozen into the GraphDef
    inner = nnx.State({"k": nnx.Param(jnp.ones(2))})
    outer = nnx.State({"inner": inner, "b": nnx.Param(jnp.zeros(1))})
    graphdef, state = nnx.split(outer)
    assert sorted(state.flat_state().paths) == [("b",), ("inner", "k")]
    assert len(jax.tree.leaves(state)) == 2
    back = nnx.merge(graphdef, state)
    assert isinstance(back["inner"], nnx.State)
    assert back["inner"]["k"].value.tolist() == [1.0, 1.0]

    nested = Pair(Pair(nnx.Param(jnp.array(1.0)), jnp.array(2.0)), "label")
    graphdef, state = nnx.split(nested)
    assert sorted(state.flat_state().paths) == [("z_param", "a_value"), ("z_param", "z_param")]
    assert nnx.merge(graphdef, state).a_value == "label"


def test_jax_only_pytree_with_state_on_undeclared_attribute_still_raises() -> None:
    class Undeclared(nnx.Module):
        def __init__(self) -> None:
            self.pair = Pair(nnx.Param(jnp.ones(1)), jnp.zeros(1))

    with pytest.raises(ValueError, match=r"nnx\.data"):
        Undeclared()


# ------------------------------------------------- update of static entries
def test_update_replaces_static_entries_with_plain_values() -> None:
    node = {"a": {"b": 1, "c": nnx.Param(jnp.array(2)), "d": 3}}
    nnx.update(node, {"a": {"b": 4, "c": jnp.array(10)}})
    assert node["a"]["b"] == 4 and node["a"]["d"] == 3
    assert int(node["a"]["c"].value) == 10

    class Config(nnx.Module):
        def __init__(self) -> None:
            self.n = 3
            self.w = nnx.Param(jnp.ones(1))

    m = Config()
    nnx.update(m, {"n": 5})
    assert m.n == 5
    items = nnx.List([1, nnx.Param(jnp.ones(1))])
    nnx.update(items, {0: 7})
    assert items[0] == 7


def test_update_does_not_turn_a_static_entry_into_data() -> None:
    class Config(nnx.Module):
        def __init__(self) -> None:
            self.n = 3

    m = Config()
    with pytest.raises(ValueError, match=r"extra:   state\.n"):
        nnx.update(m, {"n": jnp.ones(1)})
    assert m.n == 3


def test_map_without_recreating_variables_stores_plain_values() -> None:
    class Model(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones(2))
            self.n = 3

    m = Model()
    plain = nnx.map(lambda path, v: v.value * 2, m, recreate_variables=False)
    assert not isinstance(plain.w, nnx.Variable) and plain.w.tolist() == [2.0, 2.0]
    assert plain.n == 3 and isinstance(m.w, nnx.Param)  # the original is unchanged
    wrapped = nnx.map(lambda path, v: v.value * 2, m)
    assert isinstance(wrapped.w, nnx.Param) and wrapped.w.value.tolist() == [2.0, 2.0]
