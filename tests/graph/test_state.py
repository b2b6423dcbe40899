"""State and FlatState: nesting, access, filters, pure dicts with integer keys,
pytree behaviour."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx


class Block(nnx.Module):
    def __init__(self, n: int):
        self.w = nnx.Param(jnp.full((n,), float(n)))
        self.s = nnx.BatchStat(jnp.zeros(n))


class Net(nnx.Module):
    def __init__(self):
        self.layers = [Block(1), Block(2)]
        self.head = Block(3)


def make_state() -> nnx.State:
    return nnx.State(
        {
            "layers": {0: {"w": nnx.Param(jnp.ones(1))}, 1: {"w": nnx.Param(jnp.ones(2))}},
            "head": {"w": nnx.Param(jnp.zeros(3)), "s": nnx.BatchStat(jnp.zeros(3))},
        }
    )


# ----------------------------------------------------------------- mapping
def test_nested_access_by_key_and_attribute():
    s = make_state()
    assert isinstance(s["layers"], nnx.State)
    assert s.layers[0].w is s["layers"][0]["w"]
    assert s.head.w.shape == (3,)
    assert len(s) == 2 and set(s) == {"layers", "head"}
    s.extra = {"x": jnp.ones(1)}
    assert isinstance(s["extra"], nnx.State)
    del s.extra
    s["tmp"] = 1
    del s["tmp"]
    assert set(s) == {"layers", "head"}
    with pytest.raises(
        AttributeError, match=r"No attribute 'nope' in State: expected one of its keys"
    ):
        s.nope
    assert s.raw_mapping is s._mapping


def test_state_of_module_holds_the_modules_variables():
    net = Net()
    state = nnx.state(net)
    assert state["layers"][1]["w"] is net.layers[1].w
    state["head"]["w"].value = jnp.ones(3)
    assert net.head.w.value.tolist() == [1.0, 1.0, 1.0]
    assert nnx.variables is nnx.state


def test_equality():
    s = make_state()
    t = nnx.State(s.raw_mapping)
    assert s == t
    assert s != nnx.State({})
    assert (s == 3) is False


def test_flat_state_and_from_flat():
    s = make_state()
    flat = s.flat_state()
    assert flat.paths == (("head", "s"), ("head", "w"), ("layers", 0, "w"), ("layers", 1, "w"))
    assert len(flat) == 4 and flat[0] == (("head", "s"), s.head.s)
    assert flat.leaves[1] is s.head.w
    assert isinstance(flat[1:], nnx.FlatState) and len(flat[1:]) == 3
    assert nnx.to_flat_state(s).paths == flat.paths
    back = flat.to_nested_state()
    assert back == s
    assert nnx.State.from_flat_path(flat) == s
    assert nnx.State.from_flat_path({("a", 0): 1}) == nnx.State({"a": {0: 1}})
    assert nnx.from_flat_state([(("x",), 2)]) == {"x": 2}
    assert "FlatState([" in repr(flat)


def test_flat_state_sorts_ints_before_strings():
    flat = nnx.FlatState([(("b",), 1), ((10,), 2), ((2,), 3), (("a", 1), 4)])
    assert flat.paths == ((2,), (10,), ("a", 1), ("b",))
    unsorted = nnx.FlatState([(("b",), 1), (("a",), 2)], sort=False)
    assert unsorted.paths == (("b",), ("a",))


def test_flat_state_filter_and_split():
    flat = make_state().flat_state()
    assert flat.filter(nnx.BatchStat).paths == (("head", "s"),)
    stats, params = flat.filter(nnx.BatchStat, nnx.Param)
    assert stats.paths == (("head", "s"),) and len(params) == 3
    params, rest = flat.split(nnx.Param, ...)
    assert len(params) == 3 and rest.paths == (("head", "s"),)


def test_empty_substates_are_dropped_from_flat_state():
    s = nnx.State({"a": {}, "b": {"c": {}}, "d": 1})
    assert s.flat_state().paths == (("d",),)


# ----------------------------------------------------------------- filter/split/merge
def test_filter_split_merge_methods_and_functions():
    s = make_state()
    params = s.filter(nnx.Param)
    assert params.flat_state().paths == (("head", "w"), ("layers", 0, "w"), ("layers", 1, "w"))
    p2, stats = s.filter(nnx.Param, nnx.BatchStat)
    assert p2 == params and list(stats["head"]) == ["s"]
    assert nnx.filter_state(s, nnx.BatchStat) == stats
    a, b = s.split(nnx.Param, ...)
    assert a == params and b == stats
    only = nnx.split_state(s, ...)
    assert only == s
    merged = nnx.State.merge(a, b)
    assert merged == s
    assert nnx.merge_state(a, b) == s
    assert (a | b) == s


def test_merge_state_later_wins():
    a = nnx.State({"x": 1, "y": {"z": 2}})
    b = nnx.State({"y": {"z": 3}})
    assert nnx.merge_state(a, b) == {"x": 1, "y": {"z": 3}}


def test_map_state():
    s = make_state()
    doubled = nnx.map_state(lambda path, v: v.value * 2, s)
    assert doubled["layers"][1]["w"].tolist() == [2.0, 2.0]
    assert isinstance(s["layers"][1]["w"], nnx.Param)
    seen = []
    nnx.map_state(lambda path, v: seen.append(path), s)
    assert seen == list(s.flat_state().paths)


# ----------------------------------------------------------------- pure dicts
def test_to_pure_dict_keeps_int_keys():
    pure = nnx.state(Net()).to_pure_dict()
    assert set(pure) == {"layers", "head"}
    assert set(pure["layers"]) == {0, 1}
    assert isinstance(pure["layers"][1]["w"], jax.Array)
    assert nnx.to_pure_dict(nnx.state(Net()))["layers"][1]["w"].tolist() == [2.0, 2.0]
    # extract_fn gets the leaf only (as in Flax)
    custom = make_state().to_pure_dict(lambda v: type(v).__name__)
    assert custom["layers"][0]["w"] == "Param"
    assert nnx.to_pure_dict(make_state(), lambda v: v.value.shape)["head"]["w"] == (3,)


def test_replace_by_pure_dict_round_trip_with_int_keys():
    src, dst = Net(), Net()
    nnx.update(src, nnx.map_state(lambda p, v: v.value + 10, nnx.state(src)))
    pure = nnx.state(src).to_pure_dict()
    target = nnx.state(dst)
    old_w = dst.layers[1].w
    target.replace_by_pure_dict(pure)
    # the State holds new Variables; the model keeps its own until nnx.update
    assert target["layers"][1]["w"].value.tolist() == [12.0, 12.0]
    assert type(target["layers"][1]["w"]) is nnx.Param and target["layers"][1]["w"] is not old_w
    assert dst.layers[1].w.value.tolist() == [2.0, 2.0]
    nnx.update(dst, target)
    assert dst.layers[1].w.value.tolist() == [12.0, 12.0]
    assert dst.head.s.value.tolist() == [10.0, 10.0, 10.0]


def test_replace_by_pure_dict_accepts_string_integer_keys():
    # checkpoint formats (JSON, orbax, safetensors) store {0: ...} as {"0": ...}
    dst = Net()
    pure = jax.tree.map(np.asarray, nnx.state(Net()).to_pure_dict())
    stringly = {"head": pure["head"], "layers": {str(k): v for k, v in pure["layers"].items()}}
    state = nnx.state(dst)
    nnx.replace_by_pure_dict(state, stringly)
    nnx.update(dst, state)
    assert dst.layers[1].w.value.tolist() == [2.0, 2.0]


def test_replace_by_pure_dict_with_genuine_string_digit_keys():
    d = nnx.Dict({"1": nnx.Param(jnp.zeros(1)), 2: nnx.Param(jnp.zeros(2))})
    state = nnx.state(d)
    state.replace_by_pure_dict({"1": jnp.ones(1), "2": jnp.ones(2)})
    nnx.update(d, state)
    assert d["1"].value.tolist() == [1.0] and d[2].value.tolist() == [1.0, 1.0]
    state.replace_by_pure_dict(nnx.restore_int_paths({"1": jnp.zeros(1)}))
    nnx.update(d, state)
    assert d["1"].value.tolist() == [0.0]


def test_replace_by_pure_dict_errors_and_leaves_state_untouched():
    net = Net()
    state = nnx.state(net)
    before = [v.value for v in state.flat_state().leaves]
    bad = {
        "head": {"w": jnp.ones(5), "s": jnp.ones(3)},  # wrong shape
        "layers": {0: {"w": jnp.ones(1)}, 7: {"w": jnp.ones(1)}},  # 7 does not exist
    }
    with pytest.raises(ValueError) as info:  # a GraphStructureError, as Flax's type
        state.replace_by_pure_dict(bad)
    assert isinstance(info.value, nnx.GraphStructureError)
    message = str(info.value)
    assert "state.head.w: expected shape (3,), found (5,)" in message
    assert "state.layers[7].w: key in pure_dict not available in state ('layers', 7, 'w')" in (
        message
    )
    assert "Fix:" in message
    after = [v.value for v in state.flat_state().leaves]
    assert all(a is b for a, b in zip(before, after))


def test_replace_by_pure_dict_missing_keys():
    state = nnx.state(Net())
    state.replace_by_pure_dict({"head": {"w": jnp.ones(3)}})  # partial: allowed
    assert state.head.w.value.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(nnx.GraphStructureError, match=r"state.head.s: missing from the pure"):
        state.replace_by_pure_dict({"head": {"w": jnp.ones(3)}}, allow_missing=False)


def test_replace_by_pure_dict_replace_fn_and_raw_leaves():
    state = nnx.State({"a": jnp.zeros(2), "v": nnx.Param(jnp.zeros(2))})
    state.replace_by_pure_dict({"a": jnp.ones(2), "v": jnp.ones(2)})
    assert state["a"].tolist() == [1.0, 1.0]
    assert isinstance(state["v"], nnx.Param)
    state.replace_by_pure_dict({"v": jnp.ones(4)}, lambda old, new: old.replace(new))
    assert state["v"].shape == (4,)


def test_restore_int_paths():
    assert nnx.restore_int_paths({"layers": {"0": {"w": 1}, "10": 2}, "x": 3}) == {
        "layers": {0: {"w": 1}, 10: 2},
        "x": 3,
    }


# ----------------------------------------------------------------- pytree
def test_state_is_a_pytree():
    s = make_state()
    leaves = jax.tree.leaves(s)
    assert len(leaves) == 4 and all(isinstance(x, jax.Array) for x in leaves)
    doubled = jax.tree.map(lambda x: x * 2, s)
    assert isinstance(doubled, nnx.State)
    assert isinstance(doubled["layers"][1]["w"], nnx.Param)
    assert doubled["layers"][1]["w"].value.tolist() == [2.0, 2.0]
    assert s["layers"][1]["w"].value.tolist() == [1.0, 1.0]
    keyed = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(s)]
    assert keyed[0] == "['head']['s'].value"
    assert keyed[2] == "['layers'][0]['w'].value"
    out = jax.jit(lambda st: jax.tree.map(lambda x: x + 1, st))(s)
    assert out["head"]["w"].value.tolist() == [1.0, 1.0, 1.0]


def test_pure_helpers():
    s = make_state()
    pure = nnx.pure(s)
    assert isinstance(pure, nnx.State)
    assert isinstance(pure["layers"][0]["w"], jax.Array)
    assert nnx.as_pure is nnx.pure


def test_state_copy_deepcopy_pickle():
    s = make_state()
    s["tied"] = s["head"]["w"]
    shallow = copy.copy(s)
    assert shallow == s and shallow["head"]["w"] is s["head"]["w"]
    deep = copy.deepcopy(s)
    assert deep["head"]["w"] is not s["head"]["w"]
    assert deep["tied"] is deep["head"]["w"]  # sharing kept inside the copy
    loaded = pickle.loads(pickle.dumps(s))
    assert isinstance(loaded, nnx.State)
    assert loaded["layers"][1]["w"].value.tolist() == [1.0, 1.0]


def test_state_repr():
    text = repr(nnx.State({"a": {0: nnx.Param(jnp.zeros(2))}, "b": jnp.ones(())}))
    assert text.splitlines() == [
        "State({",
        "  'a': {",
        "    0: Param(value=Array(shape=(2,), dtype=float32)),",
        "  },",
        "  'b': Array(1.0, dtype=float32),",
        "})",
    ]
    assert repr(nnx.State()) == "State({})"


def test_pure_state_alias():
    assert nnx.PureState is nnx.State


def test_from_flat_state_rejects_a_path_that_is_both_leaf_and_prefix():
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.from_flat_state([(("a",), nnx.Param(jnp.ones(1))), (("a", "b"), jnp.ones(1))])
    message = str(info.value)
    assert "state.a.b: expected state.a to be a nested State, found a leaf (Param)" in message
    assert "Fix:" in message
    with pytest.raises(nnx.GraphStructureError):
        nnx.merge_state(nnx.State({"a": 1}), nnx.State({"a": {"b": 2}}))


def test_several_filters_give_disjoint_states_first_match_wins():
    class LoraParam(nnx.Param):
        pass

    s = nnx.State(
        {"a": LoraParam(jnp.ones(1)), "b": nnx.Param(jnp.ones(1)), "c": nnx.BatchStat(jnp.ones(1))}
    )
    lora, params = s.filter(LoraParam, nnx.Param)  # non-exhaustive: "c" is left out
    assert list(lora) == ["a"] and list(params) == ["b"]
    lora, params = nnx.filter_state(s, LoraParam, nnx.Param)
    assert list(lora) == ["a"] and list(params) == ["b"]
    params, stats, rest = nnx.filter_state(s, nnx.Param, nnx.BatchStat, ...)
    assert list(params) == ["a", "b"] and list(stats) == ["c"] and len(rest) == 0
    with pytest.raises(nnx.FilterError, match="can only be used as the last filters"):
        nnx.filter_state(s, ..., nnx.Param)
