"""State and FlatState behave as Flax NNX 0.12's: constructors, classmethods,
FlatState.merge/split, pytree registration, to_pure_dict/replace_by_pure_dict."""

from __future__ import annotations

import inspect
import typing as tp

import jax
import jax.numpy as jnp
import pytest

import nnx_graph
import nnx_graph as nnx
from nnx_graph.statelib import FlatState


def make_state() -> nnx.State:
    return nnx.State(
        {"a": {"w": nnx.Param(jnp.ones(1)), "m": nnx.BatchStat(jnp.zeros(1))}, "b": nnx.Param(2)}
    )


# ----------------------------------------------------------------- FlatState
def test_from_sorted_keys_values_takes_the_sequences_as_given():
    keys = (("a",), ("b", 0))
    values = [1, 2]
    flat = FlatState.from_sorted_keys_values(keys, values)
    assert flat.paths is keys and flat.leaves is values
    assert list(flat) == [(("a",), 1), (("b", 0), 2)]
    assert flat.to_nested_state().to_pure_dict() == {"a": 1, "b": {0: 2}}


def test_flat_state_merge_sorts_and_keeps_every_pair():
    merged = FlatState.merge([(("z",), 1)], [(("a",), 2)], [(("m", 0), 3)])
    assert merged.paths == (("a",), ("m", 0), ("z",))
    assert merged.leaves == [2, 3, 1]
    # a path present twice is kept twice (a concatenation, not a dict merge)
    flat = make_state().flat_state()
    doubled = FlatState.merge(flat, flat)
    assert len(doubled) == 2 * len(flat)
    assert doubled.paths[:2] == (("a", "m"), ("a", "m"))
    # one FlatState: returned as is; one iterable: sorted into a FlatState
    assert FlatState.merge(flat) is flat
    assert FlatState.merge([(("b",), 1), (("a",), 2)]).paths == (("a",), ("b",))


def test_flat_state_split_one_filter_gives_one_flat_state():
    flat = make_state().flat_state()
    params = flat.split(nnx.Param, ...)[0]
    assert params.paths == (("a", "w"), ("b",))
    everything = flat.split(...)
    assert isinstance(everything, FlatState) and everything.paths == flat.paths
    with pytest.raises(ValueError, match="Non-exhaustive filters") as info:
        flat.split(nnx.BatchStat)
    assert "state.a.w" in str(info.value) and "state.b" in str(info.value)
    # merge undoes a split
    assert FlatState.merge(*flat.split(nnx.Param, ...)).paths == flat.paths


def test_flat_state_is_a_pytree_over_its_leaves():
    flat = nnx.State({"a": jnp.ones(2), "b": {"c": jnp.zeros(1)}}).flat_state()
    leaves, treedef = jax.tree.flatten(flat)
    assert [x.shape for x in leaves] == [(2,), (1,)]
    doubled = jax.tree.map(lambda x: x + 1, flat)
    assert isinstance(doubled, FlatState) and doubled.paths == flat.paths
    assert doubled.leaves[0].tolist() == [2.0, 2.0]
    assert jax.tree.unflatten(treedef, leaves).paths == flat.paths


def test_flat_state_keeps_order_when_not_sorting():
    pairs = [(("b",), 1), (("a",), 2)]
    assert FlatState(pairs, sort=False).paths == (("b",), ("a",))
    assert FlatState(pairs, sort=True).paths == (("a",), ("b",))


# ----------------------------------------------------------------- State
def test_state_copy_false_wraps_the_dict_itself():
    d = {"x": {"y": 1}}
    s = nnx.State(d, _copy=False)
    assert s.raw_mapping is d
    inner = s["x"]  # a nested plain dict reads as a State view on it
    assert isinstance(inner, nnx.State) and inner.raw_mapping is d["x"]
    inner["z"] = 3
    s["w"] = 4
    assert d == {"x": {"y": 1, "z": 3}, "w": 4}
    assert s.to_pure_dict() == {"w": 4, "x": {"y": 1, "z": 3}}
    copied = nnx.State(d)  # the default copies
    assert copied.raw_mapping is not d
    with pytest.raises(ValueError, match="Expected a dictionary when `_copy=False`"):
        nnx.State([("a", 1)], _copy=False)


def test_state_signatures_as_in_flax():
    init = inspect.signature(nnx.State.__init__).parameters
    assert init["_copy"].kind is inspect.Parameter.KEYWORD_ONLY and init["_copy"].default is True
    # keyword names user code may use
    assert nnx.State.from_flat_path({("x",): 1}).to_pure_dict() == {"x": 1}
    assert nnx.from_flat_state(flat_state=[(("x", 0), 1)]).to_pure_dict() == {"x": {0: 1}}
    assert nnx.State({"a": 1}).map(f=lambda path, v: v + 1).to_pure_dict() == {"a": 2}
    with pytest.raises(TypeError):
        nnx.State.from_flat_path(flat_state={("x",): 1})  # positional-only, as in Flax


def test_state_subclass_is_a_pytree_of_its_own_class():
    class MyState(nnx.State):
        pass

    s = MyState({"a": jnp.ones(1), "b": {"c": jnp.zeros(2)}})
    assert [x.shape for x in jax.tree.leaves(s)] == [(1,), (2,)]
    mapped = jax.tree.map(lambda x: x + 1, s)
    assert type(mapped) is MyState
    assert mapped["a"].tolist() == [2.0]
    assert type(MyState.from_flat_path([(("a",), 1)])) is MyState
    assert type(MyState.merge(MyState({"a": 1}), {"b": 2})) is nnx.State  # as Flax


def test_missing_attribute_names_the_keys():
    with pytest.raises(AttributeError, match="No attribute 'zzz' in State") as info:
        _ = make_state().zzz
    assert "['a', 'b']" in str(info.value)
    with pytest.raises(KeyError):
        make_state()["zzz"]


def test_to_pure_dict_extract_fn_gets_the_leaf():
    s = make_state()
    assert s.to_pure_dict(lambda v: type(v).__name__) == {
        "a": {"m": "BatchStat", "w": "Param"},
        "b": "Param",
    }
    assert nnx.to_pure_dict(s)["b"] == 2


def test_replace_by_pure_dict_puts_new_variables_in_the_state():
    model = nnx.Dict(w=nnx.Param(jnp.zeros(2)), s=nnx.BatchStat(jnp.zeros(1)))
    state = nnx.state(model)
    before = state["w"]
    assert before is model["w"]
    state.replace_by_pure_dict({"w": jnp.ones(2)})
    after = state["w"]
    assert type(after) is nnx.Param and after is not before
    assert after.value.tolist() == [1.0, 1.0]
    assert model["w"].value.tolist() == [0.0, 0.0]  # untouched until nnx.update
    assert state["s"] is model["s"]  # not in the dict: kept
    nnx.update(model, state)
    assert model["w"].value.tolist() == [1.0, 1.0]


def test_replace_by_pure_dict_replace_fn_result_goes_in_the_state():
    state = nnx.State({"x": nnx.Param(jnp.ones(1))})
    state.replace_by_pure_dict({"x": 7}, lambda old, new: new * 2)
    assert state["x"] == 14


def test_replace_by_pure_dict_unknown_key_is_a_value_error():
    state = nnx.State({"x": nnx.Param(jnp.ones(1))})
    with pytest.raises(ValueError, match=r"key in pure_dict not available in state \('c',\)"):
        state.replace_by_pure_dict({"c": jnp.ones(1)})
    assert state["x"].value.tolist() == [1.0]


def test_replace_by_pure_dict_accepts_abstract_leaves():
    abstract = nnx.State({"w": nnx.Param(jax.ShapeDtypeStruct((2,), jnp.float32))})
    abstract.replace_by_pure_dict({"w": jnp.arange(2.0)})
    assert abstract["w"].value.tolist() == [0.0, 1.0]


def test_split_merge_or_sub_round_trip():
    s = make_state()
    params, rest = s.split(nnx.Param, ...)
    assert (params | rest) == s
    assert nnx.State.merge(params, rest) == s
    assert (s - params) == rest
    assert nnx.statelib.diff(s, params) == rest
    assert s.filter(nnx.Param, ...)[1] == rest


def test_create_path_filters_groups_paths_by_value():
    from nnx_graph.statelib import create_path_filters

    state = nnx.State({"a": nnx.Param(1), "b": {"c": nnx.Param(1)}, "d": 2})
    filters = create_path_filters(state)
    by_value = {value: f for f, value in filters.items()}
    assert set(by_value) == {1, 2}
    assert by_value[1](("b", "c"), None) and by_value[1](("a",), None)
    assert not by_value[1](("d",), None) and by_value[2](("d",), None)
    # usable as filters: split the State with them
    ones, twos = nnx.split_state(state, by_value[1], by_value[2])
    assert ones.flat_state().paths == (("a",), ("b", "c")) and list(twos) == ["d"]


def test_filterlib_type_aliases():
    from nnx_graph import filterlib

    assert filterlib.Filter is nnx_graph._filters.Filter
    assert int not in tp.get_args(filterlib.FilterLiteral)
    assert str in tp.get_args(filterlib.FilterLiteral)
    assert filterlib.PathParts == tuple[filterlib.Key, ...]
