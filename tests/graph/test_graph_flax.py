"""Flax-NNX-compatible graph API surface: the graph-mode switches, split/merge
contexts, NodeDef/VariableDef, node-type registration, merge's single-argument
form, tree mode (graph=False) errors, and update adding missing attributes."""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import pytest

import nnx_graph as nnx
from nnx_graph._graph_tools import graph_mode_default, graph_updates_default
from nnx_graph._hijax import hijax_supported


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


def test_tree_mode_cycle_error_names_both_paths():
    outer = nnx.List([1])
    inner = nnx.List([2, outer])
    outer.append(inner)
    for call in (
        lambda: list(nnx.iter_graph(outer, graph=False)),
        lambda: nnx.recursive_map(lambda path, x: x, outer, graph=False),
    ):
        with pytest.raises(ValueError, match="Cycle detected for List found at paths") as info:
            call()
        assert "model[1][1]" in str(info.value) and "Fix:" in str(info.value)


def test_tree_mode_rejects_objects_declared_pytree_false():
    class Opaque(nnx.Pytree, pytree=False):
        def __init__(self):
            self.n = 1

    holder = nnx.List([Opaque()])
    for call in (
        lambda: nnx.flatten([Opaque()], graph=False),
        lambda: list(nnx.iter_graph(holder, graph=False)),
        lambda: nnx.recursive_map(lambda path, x: x, holder, graph=False),
        lambda: nnx.split(holder, graph=False),
    ):
        with pytest.raises(ValueError, match="pytree=False") as info:
            call()
        assert "Found at path: model[0]" in str(info.value) and "graph=True" in str(info.value)
    with pytest.raises(ValueError, match="'Opaque' instance that has pytree=False"):
        list(nnx.iter_children(Opaque(), graph=False))
    assert [p for p, _ in nnx.iter_graph(holder)][-2:] == [(0,), ()]  # graph mode: fine


def test_unpacked_graph_state_has_the_key_paths_of_the_state():
    model = Pair(Counter(), Counter())
    model.a.n.value = jnp.array(3)
    state_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(nnx.state(model))[0]]
    packed = nnx.unpack(model)
    packed_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(packed)[0]]
    assert packed_paths == state_paths and len(packed_paths) > 0
    doubled = jax.tree.map(lambda x: x * 2, packed)  # round-trips as a GraphState
    rebuilt = nnx.merge(doubled)
    assert isinstance(rebuilt, Pair)
    assert int(rebuilt.a.n.value) == 6 and int(model.a.n.value) == 3


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


# ----------------------------------------------------------------- split / merge contexts
class Holder(nnx.Module):
    def __init__(self, v) -> None:
        self.v = v
        self.w = nnx.Param(jnp.ones(2))


def test_split_context_shares_references_across_splits():
    shared = nnx.Param(jnp.zeros(3))
    a, b = Holder(shared), Holder(shared)
    with nnx.split_context() as ctx:
        assert isinstance(ctx, nnx.SplitContext)
        ga, sa = ctx.split(a)
        gb, sb = ctx.split(b)
        gb_again, sb_again = ctx.split(b)
    assert sorted(sa) == ["v", "w"] and sorted(sb) == ["w"]  # v is a reference to a.v
    assert len(sb_again) == 0 and gb_again.nodes[0].index == gb.nodes[0].index
    with nnx.merge_context() as ctx:
        assert isinstance(ctx, nnx.MergeContext)
        a2, b2, b3 = ctx.merge(ga, sa), ctx.merge(gb, sb), ctx.merge(gb_again, sb_again)
    assert a2.v is b2.v and b3 is b2
    assert a2.v is not shared  # merge copies the Variables
    assert a2.v.value.tolist() == [0.0, 0.0, 0.0]


def test_context_graphdef_with_references_needs_its_merge_context():
    shared = nnx.Param(jnp.zeros(3))
    with nnx.split_context() as ctx:
        ctx.split(Holder(shared))
        gb, sb = ctx.split(Holder(shared))
    with pytest.raises(KeyError) as info:
        nnx.merge(gb, sb)
    assert "earlier split of the same nnx.split_context" in str(info.value)
    with nnx.merge_context() as mctx, pytest.raises(KeyError, match="Fix: merge every GraphDef"):
        mctx.merge(gb, sb)  # the first GraphDef was not merged first


def test_split_context_flatten_and_merge_context_unflatten():
    shared = nnx.Param(jnp.zeros(3))
    a, b = Holder(shared), Holder(shared)
    with nnx.split_context() as ctx:
        ga, params, rest = ctx.flatten(a, nnx.Param, ...)
        gb, leaves = ctx.flatten(b, with_paths=False)
        with pytest.raises(ValueError, match="Cannot use filters with with_paths=False"):
            ctx.flatten(a, nnx.Param, with_paths=False)
    assert sorted(params.paths) == [("v",), ("w",)] and len(rest) == 0
    assert leaves == [b.w]
    with nnx.merge_context() as ctx:
        a2 = ctx.unflatten(ga, params, rest)
        b2 = ctx.unflatten(gb, leaves)
    assert a2.v is shared and b2.v is shared and b2.w is b.w  # unflatten reuses Variables


def test_update_context_protocol_updates_the_outer_object_in_place():
    model = Counter()
    original_n = model.n
    with nnx.update_context("step") as uctx:
        assert isinstance(uctx, nnx.UpdateContext)
        with nnx.split_context("step") as ctx:
            assert ctx.is_inner is False
            g, s = ctx.split(model)
        with nnx.merge_context("step", inner=True) as ctx:
            inner = ctx.merge(g, s)
        assert inner is not model
        inner.n.value = inner.n.value + 5
        inner.extra = nnx.Param(jnp.ones(1))
        with nnx.split_context("step") as ctx:
            assert ctx.is_inner is True
            g2, s2 = ctx.split(inner)
        with nnx.merge_context("step", inner=False) as ctx:
            out = ctx.merge(g2, s2)
    assert out is model and model.n is original_n
    assert int(model.n.value) == 5 and model.extra.value.tolist() == [1.0]


def test_update_context_is_fresh_per_block_and_decorates():
    from nnx_graph import graphlib

    manager = nnx.update_context("fresh")
    assert isinstance(manager, graphlib.UpdateContextManager)
    with manager as first:
        with nnx.split_context("fresh") as ctx:
            ctx.split(Counter())  # the outer split fills `first`
        assert first.outer_index_outer_ref is not None
    with manager as second:
        assert second is not first and second.outer_index_outer_ref is None

    @nnx.update_context("deco")
    def tagged() -> object:
        return nnx.current_update_context("deco")

    assert isinstance(tagged(), nnx.UpdateContext) and tagged() is not tagged()
    with pytest.raises(ValueError, match="No update context found for tag 'deco'"):
        nnx.current_update_context("deco")


def test_context_errors():
    missing = pytest.raises(ValueError, match="No update context found for tag 'missing'")
    with missing, nnx.split_context("missing"):
        pass
    no_inner = pytest.raises(ValueError, match="inner_merge must be specified")
    with nnx.update_context("t"), no_inner, nnx.merge_context("t"):
        pass


def test_graphlib_exports():
    from nnx_graph import graphlib

    for name in ("SplitContext", "MergeContext", "split_context", "merge_context"):
        assert getattr(graphlib, name) is getattr(nnx, name)
    gdef = nnx.graphdef(Counter())
    node, var = gdef.nodes
    assert isinstance(node, graphlib.NodeDef) and isinstance(var, graphlib.VariableDef)
    assert (node.index, node.outer_index, node.num_attributes) == (0, None, 1)
    assert (var.index, var.outer_index, var.array_refdef) == (1, None, None)
    assert node.with_no_outer_index() is node and var.with_no_outer_index() is var
    with pytest.raises(NotImplementedError, match=r"Fix: call with_same_outer_index\(\) on"):
        node.with_same_outer_index()
    with pytest.raises(NotImplementedError, match="with_matching_outer_index"):
        var.with_matching_outer_index(var)


# ----------------------------------------------------------------- GraphState / unpack / merge
class Two(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.ones(2))
        self.s = nnx.BatchStat(jnp.zeros(1))


def test_unpack_and_merge_graph_states():
    gs = nnx.unpack(Two())
    assert isinstance(gs, nnx.GraphState) and sorted(gs) == ["s", "w"] and "w" in gs
    assert gs.graphdef == nnx.graphdef(Two()) and len(gs) == 2
    rebuilt = nnx.merge(gs)
    assert isinstance(rebuilt, Two) and rebuilt.w is gs["w"]
    params, rest = nnx.unpack(Two(), nnx.Param, ...)
    assert list(params) == ["w"] and list(rest) == ["s"]
    assert nnx.merge(params, rest).s is rest["s"]
    assert nnx.merge(params.graphdef, params, rest).w is params["w"]  # GraphDef + GraphStates
    single = nnx.unpack(Two(), ...)
    assert isinstance(single, nnx.GraphState)


def test_graph_state_is_a_pytree_and_validates():
    import jax

    gs = nnx.unpack(Two())
    doubled = jax.tree.map(lambda x: x * 2, gs)
    assert isinstance(doubled, nnx.GraphState) and doubled["w"].value.tolist() == [2.0, 2.0]
    assert len(jax.tree.leaves(gs)) == 2
    with pytest.raises(ValueError, match="expected a State object"):
        nnx.GraphState(gs.graphdef, {"a": 1})


def test_merge_argument_errors():
    params, _ = nnx.unpack(Two(), nnx.Param, ...)
    with pytest.raises(ValueError, match="Expected GraphState object"):
        nnx.merge(params, nnx.state(Two(), nnx.BatchStat))
    other = nnx.unpack(Counter())
    with pytest.raises(ValueError, match="GraphDef must be the same for all GraphState"):
        nnx.merge(params, other)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'state'"):
        nnx.merge(nnx.graphdef(Two()))
    g, leaves = nnx.flatten(Two(), with_paths=False)
    assert nnx.merge(g, leaves).w is leaves[1]  # a list of leaves, in leaf order
    with pytest.raises(ValueError, match="Only one state can be passed as a list"):
        nnx.merge(g, leaves, leaves)


def test_vars_as_and_with_vars():
    d = nnx.Dict(w=nnx.Param(jnp.ones(2)))
    for fn in (nnx.vars_as, nnx.with_vars):
        out = fn(d, hijax=False, ref=False, mutable=True)
        assert out is not d and out["w"] is d["w"]  # nothing to change: same Variables
        with pytest.raises(ValueError) as info:
            fn(d, mutable=False)
        assert "model.w (Param) cannot be converted" in str(info.value)
        if hijax_supported():
            assert fn(d, hijax=True)["w"].hijax and not d["w"].hijax  # a converted copy
        assert fn(d, ref=True)["w"].ref and not d["w"].ref  # a converted copy
        assert fn(d, ref=True, only=nnx.BatchStat)["w"] is d["w"]  # nothing selected
    v = nnx.Param(jnp.ones(1))
    with pytest.raises(ValueError, match=r"Found duplicate at paths:\n  model.a\n  model.b"):
        nnx.vars_as(nnx.Dict(a=v, b=v), hijax=True)


def test_pure_takes_tree_by_keyword():
    out = nnx.as_pure(tree=nnx.State({"w": nnx.Param(jnp.zeros(2))}))
    assert out["w"].tolist() == [0.0, 0.0]


# ----------------------------------------------------------------- to_tree / from_tree
def test_to_tree_with_prefix_checks_aliasing():
    model = Two()
    seen = []

    def record(ctx, path, prefix, node):
        seen.append((jax.tree_util.keystr(path), prefix))
        return nnx.NodeStates.from_split(*ctx.split(node), metadata=prefix)

    tree = nnx.to_tree({"a": model, "b": 3}, prefix={"a": 0, "b": None}, split_fn=record)
    assert seen == [("['a']", 0)] and tree["b"] == 3 and tree["a"].metadata == 0
    with pytest.raises(ValueError) as info:
        nnx.to_tree((model, model), prefix=(0, 1))
    assert "Inconsistent aliasing detected" in str(info.value) and "w: 0" in str(info.value)
    assert isinstance(
        nnx.to_tree((model, model), prefix=(0, 1), check_aliasing=False)[0], nnx.NodeStates
    )
    with pytest.raises(ValueError, match="not a tree prefix"):
        nnx.to_tree((model, model), prefix=(0, 1, 2))


def test_to_tree_shares_and_from_tree_copies():
    model = Two()
    v = nnx.Param(jnp.ones(1))
    tree = nnx.to_tree({"m": model, "again": model, "v": v})
    # keys are visited sorted: "again" is split first, "m" is a reference to it
    assert len(tree["again"].states[0]) == 2 and len(tree["m"].states[0]) == 0
    back = nnx.from_tree(tree)
    assert back["m"] is back["again"] and back["m"] is not model
    assert isinstance(back["v"], nnx.Param) and back["v"] is not v
    with pytest.raises(ValueError, match="Expected TreeNode"):
        nnx.from_tree([1], map_non_graph_nodes=True)


def test_node_states_interface():
    ns = nnx.NodeStates.from_prefixes([0, None], metadata="axes")
    assert ns.states == (0, None) and ns.metadata == "axes"
    with pytest.raises(ValueError, match="No graphdef available"):
        ns.graphdef
    with pytest.raises(ValueError, match="Expected exactly one state, got 2"):
        ns.state
    assert nnx.NodeStates.from_states(1).state == 1
    assert ns.replace(metadata=None).metadata is None and ns.metadata == "axes"


# ----------------------------------------------------------------- GraphDef extras
class Tied(nnx.Module):
    def __init__(self) -> None:
        self.a = nnx.Param(jnp.zeros(1))
        self.b = self.a

    def __call__(self, x):
        self.a.value = self.a.value + x
        return self.b.value


def test_graphdef_apply_graph_argument():
    gdef, state = nnx.split(Tied())
    out, (g2, s2) = gdef.apply(state)(1.0)
    assert out.tolist() == [1.0] and g2 == gdef and s2["a"].value.tolist() == [1.0]
    with pytest.raises(ValueError, match=r"Tree mode \(graph=False\) does not support shared"):
        gdef.apply(state, graph=False)(1.0)


def test_graphdef_outer_index_copies():
    gdef = nnx.graphdef(Pair(Counter(), Counter()))
    same = gdef.with_same_outer_index()
    assert same == gdef and same._outer == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}
    assert gdef.with_no_outer_index()._outer is None
    other = nnx.graphdef(Pair(Counter(), Counter())).with_same_outer_index()
    assert gdef.with_matching_outer_index(other)._outer == same._outer


def test_graphlib_is_graph_node_takes_x():
    from nnx_graph import graphlib

    assert graphlib.is_graph_node(x=Counter()) and not graphlib.is_graph_node(x=[1])


# ----------------------------------------------------------------- register_graph_node_type
class Bag:
    """A user type made a graph node: its entries live in a plain dict."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.items: dict[str, object] = {}


def _register_bag() -> None:
    from nnx_graph import graphlib

    graphlib.register_graph_node_type(
        Bag,
        flatten=lambda b: (sorted(b.items.items()), b.tag),
        set_key=lambda b, k, v: b.items.__setitem__(k, v),
        pop_key=lambda b, k: b.items.pop(k),
        create_empty=lambda tag: Bag(tag),
        clear=lambda b: b.items.clear(),
        init=lambda b, pairs: b.items.update(pairs),
    )


_register_bag()


def _bag() -> Bag:
    bag = Bag("first")
    bag.items.update(w=nnx.Param(jnp.ones(2)), n=3, arr=jnp.zeros(1))
    return bag


def test_registered_type_splits_and_merges():
    from nnx_graph import graphlib

    bag = _bag()
    assert graphlib.is_graph_node(bag)
    gdef, state = nnx.split(bag)
    assert sorted(state.flat_state().paths) == [("arr",), ("w",)]
    rebuilt = nnx.merge(gdef, state)
    assert isinstance(rebuilt, Bag) and rebuilt.tag == "first"  # aux data kept
    assert rebuilt.items["n"] == 3 and rebuilt.items["w"] is state["w"]
    assert gdef == nnx.graphdef(_bag()) and gdef != nnx.graphdef(Bag("other"))
    with pytest.raises(ValueError, match="is already registered"):
        _register_bag()


def test_registered_type_inside_a_module_keeps_sharing_and_works_in_jit():
    bag = _bag()
    model = Pair(bag, bag)
    assert sorted(nnx.state(model).flat_state().paths) == [("a", "arr"), ("a", "w")]
    clone = nnx.clone(model)
    assert clone.a is clone.b and clone.a is not bag

    @nnx.jit
    def step(m):
        m.a.items["w"].value += 1
        m.a.items["arr"] = m.a.items["arr"] + 1

    step(model)
    step(model)
    assert bag.items["w"].value.tolist() == [3.0, 3.0] and bag.items["arr"].tolist() == [2.0]
    bag.items["new"] = nnx.Param(jnp.zeros(1))  # changed behind the cache's back

    @nnx.jit
    def total(m):
        return m.a.items["new"].value.sum()

    assert float(total(model)) == 0.0
    bag.items["new"] = nnx.Param(jnp.ones(1))
    assert float(total(model)) == 1.0  # the cached traversal noticed the new Variable
    step(model)
    assert sorted(bag.items) == ["arr", "n", "new", "w"]


def test_update_adds_entries_to_registered_types():
    bag = _bag()
    nnx.update(bag, {"arr": jnp.full(1, 7.0), "b": nnx.Param(jnp.zeros(1))})
    assert bag.items["arr"].tolist() == [7.0] and isinstance(bag.items["b"], nnx.Param)


# ----------------------------------------------------------------- register_pytree_node_type
class Point:
    def __init__(self, x, y, name: str) -> None:
        self.x, self.y, self.name = x, y, name


def _register_point() -> None:
    from nnx_graph import graphlib

    graphlib.register_pytree_node_type(
        Point,
        flatten=lambda p: ([("x", p.x), ("y", p.y)], p.name),
        unflatten=lambda pairs, name: Point(**dict(pairs), name=name),
    )


_register_point()


def test_registered_pytree_type_splits_and_merges():
    point = Point(nnx.Param(jnp.ones(1)), jnp.zeros(2), "p")
    gdef, state = nnx.split(point)
    assert sorted(state) == ["x", "y"]
    rebuilt = nnx.merge(gdef, state)
    assert isinstance(rebuilt, Point) and rebuilt is not point and rebuilt.name == "p"
    assert rebuilt.x is point.x and rebuilt.y is point.y
    assert gdef != nnx.graphdef(Point(nnx.Param(jnp.ones(1)), jnp.zeros(2), "other"))
    with pytest.raises(ValueError, match="is already registered"):
        _register_point()


def test_registered_pytree_type_as_module_attribute():
    point = Point(nnx.Param(jnp.ones(1)), jnp.zeros(2), "p")
    static = Counter()
    static.p = point  # not data unless declared (as Flax)
    assert sorted(nnx.state(static).flat_state().paths) == [("n",)]
    model = Counter()
    model.p = nnx.data(point)
    assert sorted(nnx.state(model).flat_state().paths) == [("n",), ("p", "x"), ("p", "y")]
    nnx.update(model, {"p": {"y": jnp.ones(2)}})
    assert model.p.y.tolist() == [1.0, 1.0] and model.p.name == "p"

    @nnx.jit
    def step(m):
        m.p.x.value += 1

    step(model)
    assert model.p.x.value.tolist() == [2.0]
