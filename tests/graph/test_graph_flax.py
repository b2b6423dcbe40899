"""Flax-NNX-compatible graph API surface: the graph-mode switches, split/merge
contexts, NodeDef/VariableDef, node-type registration, merge's single-argument
form, tree mode (graph=False) errors, and update adding missing attributes."""

from __future__ import annotations

import threading

import jax.numpy as jnp
import pytest

import nnx_graph as nnx
from nnx_graph._graph_tools import graph_mode_default, graph_updates_default


class Counter(nnx.Module):
    def __init__(self) -> None:
        self.n = nnx.Variable(jnp.array(0))


# ----------------------------------------------------------------- set_graph_mode / updates
@pytest.mark.parametrize(
    ("switch", "getter"),
    [(nnx.set_graph_mode, graph_mode_default), (nnx.set_graph_updates, graph_updates_default)],
)
def test_switch_as_context_manager_restores(switch, getter):
    assert getter() is True and switch.current_value() is True
    with switch(False):
        assert getter() is False
        with switch(True):
            assert getter() is True
        assert getter() is False
    assert getter() is True
    assert switch.get_stack() == []


@pytest.mark.parametrize(
    ("switch", "getter"),
    [(nnx.set_graph_mode, graph_mode_default), (nnx.set_graph_updates, graph_updates_default)],
)
def test_switch_as_statement_sets_default(switch, getter):
    switch(False)
    try:
        assert getter() is False and switch.current_value() is False
        switch(True)
        assert getter() is True
        switch(False)
        assert getter() is False
    finally:
        switch.get_stack().clear()
    assert getter() is True


def test_switch_as_decorator_applies_only_inside():
    @nnx.set_graph_mode(False)
    def inside() -> bool:
        return graph_mode_default()

    assert graph_mode_default() is True
    assert inside() is False
    assert graph_mode_default() is True
    assert nnx.set_graph_mode.get_stack() == []


def test_switch_is_per_thread():
    seen: list[bool] = []
    with nnx.set_graph_updates(False):
        t = threading.Thread(target=lambda: seen.append(graph_updates_default()))
        t.start()
        t.join()
        assert graph_updates_default() is False
    assert seen == [True]


def test_switch_classes_and_defaults():
    assert isinstance(nnx.set_graph_mode, type) and isinstance(nnx.set_graph_updates, type)
    assert nnx.set_graph_mode.get_default() is True
    assert nnx.set_graph_updates.get_default() is True
    assert repr(nnx.set_graph_mode(False)) == "set_graph_mode(False)"
    nnx.set_graph_mode.get_stack().clear()


# ----------------------------------------------------------------- tree mode (graph=False)
class Pair(nnx.Module):
    def __init__(self, a, b) -> None:
        self.a, self.b = a, b


def _shared_variable_model() -> Pair:
    v = nnx.Param(jnp.zeros(3))
    return Pair(v, v)


TREE_FUNCTIONS = {
    "split": lambda m, g: nnx.split(m, graph=g),
    "state": lambda m, g: nnx.state(m, graph=g),
    "graphdef": lambda m, g: nnx.graphdef(m, graph=g),
    "clone": lambda m, g: nnx.clone(m, graph=g),
    "flatten": lambda m, g: nnx.flatten(m, graph=g),
    "map": lambda m, g: nnx.map(lambda p, v: v, m, graph=g),
    "iter_graph": lambda m, g: list(nnx.iter_graph(m, graph=g)),
    "recursive_map": lambda m, g: nnx.recursive_map(lambda p, v: v, m, graph=g),
    "unpack": lambda m, g: nnx.unpack(m, graph=g),
    "variables": lambda m, g: nnx.variables(m, graph=g),
}


@pytest.mark.parametrize("name", sorted(TREE_FUNCTIONS))
def test_tree_mode_rejects_shared_variables(name):
    fn = TREE_FUNCTIONS[name]
    model = _shared_variable_model()
    with pytest.raises(ValueError) as info:
        fn(model, False)
    message = str(info.value)
    assert "Tree mode (graph=False) does not support shared references" in message
    assert "Duplicate Param found at paths" in message
    assert "model.a" in message and "model.b" in message
    assert "graph=True" in message  # the fix
    fn(model, True)  # graph mode keeps sharing
    fn(model, None)


def test_tree_mode_rejects_shared_modules_and_accepts_trees():
    inner = Counter()
    with pytest.raises(ValueError, match=r"Duplicate Counter found at paths:\n\n  - model.a\n"):
        nnx.split(Pair(inner, inner), graph=False)
    gdef, state = nnx.split(Pair(Counter(), Counter()), graph=False)
    rebuilt = nnx.merge(gdef, state)
    assert rebuilt.a is not rebuilt.b and sorted(state.flat_state().paths) == [
        ("a", "n"),
        ("b", "n"),
    ]


def test_tree_mode_rejects_cycles():
    model = Pair(Counter(), Counter())
    model.a.parent = model
    with pytest.raises(ValueError) as info:
        nnx.split(model, graph=False)
    message = str(info.value)
    assert "reference cycle" in message and "model.a.parent" in message
    assert "Tree mode (graph=False)" in message
    gdef, state = nnx.split(model)  # graph mode: cycles are fine
    rebuilt = nnx.merge(gdef, state)
    assert rebuilt.a.parent is rebuilt


def test_set_graph_mode_false_makes_tree_mode_the_default():
    model = _shared_variable_model()
    with nnx.set_graph_mode(False):
        with pytest.raises(ValueError, match="Tree mode"):
            nnx.split(model)
        nnx.split(model, graph=True)  # explicit argument wins
    _, s = nnx.split(model)
    assert len(s.flat_state()) == 1


# ----------------------------------------------------------------- update adds entries
def test_update_adds_missing_attributes_with_copies():
    model = Counter()
    new = nnx.Param(jnp.ones(3))
    nnx.update(model, nnx.State({"b": new, "raw": jnp.full(2, 7.0), "n": jnp.array(4)}))
    assert isinstance(model.b, nnx.Param) and model.b is not new
    assert model.b.value.tolist() == [1.0, 1.0, 1.0]
    assert model.raw.tolist() == [7.0, 7.0] and int(model.n.value) == 4
    assert sorted(nnx.state(model).flat_state().paths) == [("b",), ("n",), ("raw",)]


def test_update_adds_dict_keys_and_next_list_indices():
    d = nnx.Dict(a=nnx.Param(jnp.zeros(1)))
    nnx.update(d, {"b": nnx.Param(jnp.ones(1))})
    assert sorted(d) == ["a", "b"] and d["b"].value.tolist() == [1.0]
    seq = nnx.List([nnx.Param(jnp.zeros(1))])
    nnx.update(seq, {2: nnx.Param(jnp.full(1, 2.0)), 1: nnx.Param(jnp.full(1, 1.0))})
    assert [float(v.value[0]) for v in seq] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": {"x": nnx.Param(jnp.zeros(1))}},  # no parent to add to
        {"k": nnx.Param(jnp.zeros(1))},  # would replace a static attribute
    ],
)
def test_update_that_cannot_place_a_path_changes_nothing(bad):
    model = Counter()
    model.k = 3
    with pytest.raises(ValueError, match=r"extra:.*\n.*Nothing was updated"):
        nnx.update(model, {"n": jnp.array(9), **bad})
    assert int(model.n.value) == 0 and model.k == 3 and not hasattr(model, "sub")


def test_update_cannot_skip_list_positions():
    seq = nnx.List([nnx.Param(jnp.zeros(1))])
    with pytest.raises(ValueError, match=r"extra:   state\[5\]"):
        nnx.update(seq, {5: nnx.Param(jnp.zeros(1))})
    assert len(seq) == 1
