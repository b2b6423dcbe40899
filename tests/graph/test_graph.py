"""The graph API: split/merge/state/graphdef/update/clone/pop, traversal helpers,
sharing and cycles, GraphDef, to_tree/from_tree, compat switches."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx


def uniform(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Random init seeded from ``key`` without compiling a JAX sampler per shape
    (eager jax.random calls compile once per shape; this keeps the suite fast)."""
    seed = int(jax.random.key_data(key)[-1])
    return jnp.asarray(np.random.default_rng(seed).random(shape, np.float32))


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs):
        self.din, self.dout = din, dout
        self.w = nnx.Param(uniform(rngs.params(), (din, dout)))
        self.b = nnx.Param(jnp.zeros(dout))

    def __call__(self, x):
        return jnp.dot(x, self.w) + self.b


class Counter(nnx.Module):
    def __init__(self):
        self.count = nnx.BatchStat(jnp.array(0))
        self.w = nnx.Param(jnp.ones(2))

    def __call__(self, x):
        self.count += 1
        return x * self.w

    def scaled(self, x, k):
        return self(x) * k


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = [Linear(2, 3, rngs=rngs), Linear(3, 2, rngs=rngs)]
        self.counter = Counter()

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def leaf_paths(state) -> list[tuple]:
    return list(state.flat_state().paths)


# ----------------------------------------------------------------- split / merge
def test_split_merge_round_trip():
    model = MLP(nnx.Rngs(0))
    gdef, state = nnx.split(model)
    assert isinstance(gdef, nnx.GraphDef) and isinstance(state, nnx.State)
    assert leaf_paths(state) == [
        ("counter", "count"),
        ("counter", "w"),
        ("layers", 0, "b"),
        ("layers", 0, "w"),
        ("layers", 1, "b"),
        ("layers", 1, "w"),
    ]
    back = nnx.merge(gdef, state)
    assert type(back) is MLP and back is not model
    assert type(back.layers) is nnx.List and back.layers[1].din == 3
    x = jnp.ones((1, 2))
    assert jnp.allclose(back(x), model(x))
    # merge reuses the State's Variables; copy=True makes new ones
    assert back.layers[0].w is model.layers[0].w
    copied = nnx.merge(gdef, state, copy=True)
    assert copied.layers[0].w is not model.layers[0].w
    assert jnp.array_equal(copied.layers[0].w.value, model.layers[0].w.value)


def test_split_with_filters_and_merge_several_states():
    model = MLP(nnx.Rngs(0))
    gdef, params, rest = nnx.split(model, nnx.Param, ...)
    assert all(isinstance(v, nnx.Param) for v in params.flat_state().leaves)
    assert leaf_paths(rest) == [("counter", "count")]
    back = nnx.merge(gdef, params, rest)
    assert nnx.graphdef(back) == gdef
    _, only = nnx.split(model, ...)
    assert leaf_paths(only) == leaf_paths(nnx.state(model))
    _, empty = nnx.split(nnx.List(), nnx.Param)
    assert isinstance(empty, nnx.State) and len(empty) == 0
    _, e1, e2 = nnx.split(nnx.List(), nnx.Param, ...)
    assert len(e1) == 0 and len(e2) == 0


def test_state_and_graphdef_functions():
    model = MLP(nnx.Rngs(0))
    params, stats = nnx.state(model, nnx.Param, nnx.BatchStat)
    assert leaf_paths(stats) == [("counter", "count")]
    assert len(params.flat_state()) == 5
    params_again, rest = nnx.state(model, nnx.Param, ...)  # disjoint, first match wins
    assert leaf_paths(params_again) == leaf_paths(params) and leaf_paths(rest) == [
        ("counter", "count")
    ]
    assert nnx.graphdef(model) == nnx.split(model)[0]
    assert nnx.graphdef(model).type is MLP


def test_split_of_containers_of_nodes():
    a, b = Counter(), Counter()
    for root in ((a, b), [a, b], {"x": a, "y": b}):
        gdef, state = nnx.split(root)
        back = nnx.merge(gdef, state)
        assert type(back) is type(root)
    gdef, state = nnx.split((a, b, a))
    back = nnx.merge(gdef, state)
    assert back[0] is back[2] and back[0] is not back[1]


def test_raw_arrays_on_modules_are_state():
    class M(nnx.Module):
        def __init__(self):
            self.arr = jnp.ones(2)
            self.nested = (jnp.zeros(1), "label", [jnp.ones(3)])

    m = M()
    gdef, state = nnx.split(m)
    assert leaf_paths(state) == [("arr",), ("nested", 0), ("nested", 2, 0)]
    back = nnx.merge(gdef, nnx.map_state(lambda p, v: v + 1, state))
    assert back.arr.tolist() == [2.0, 2.0]
    assert back.nested[1] == "label" and back.nested[2][0].tolist() == [2.0, 2.0, 2.0]
    nnx.update(m, {"nested": {2: {0: jnp.full(3, 5.0)}}, "arr": jnp.zeros(2)})
    assert m.nested[2][0].tolist() == [5.0, 5.0, 5.0] and m.arr.tolist() == [0.0, 0.0]
    assert m.nested[1] == "label"


def test_named_tuples_survive():
    import typing

    class Pair(typing.NamedTuple):
        a: nnx.Param
        b: int

    class M(nnx.Module):
        def __init__(self):
            self.pair = Pair(nnx.Param(jnp.ones(1)), 3)

    back = nnx.merge(*nnx.split(M()))
    assert type(back.pair) is Pair and back.pair.b == 3


# ----------------------------------------------------------------- sharing / cycles
def test_shared_variable_and_module_stay_shared():
    model = MLP(nnx.Rngs(0))
    model.tied = model.layers[0].w  # shared Variable
    model.alias = model.counter  # shared Module
    gdef, state = nnx.split(model)
    # a shared object appears once, at its first path in sorted order
    assert ("tied",) not in leaf_paths(state)
    assert ("alias", "count") in leaf_paths(state) and ("counter", "count") not in leaf_paths(state)
    back = nnx.merge(gdef, state)
    assert back.tied is back.layers[0].w
    assert back.alias is back.counter
    cloned = nnx.clone(model)
    assert cloned.tied is cloned.layers[0].w and cloned.tied is not model.tied
    assert cloned.alias is cloned.counter and cloned.alias is not model.counter


def test_cycles():
    a, b = Counter(), Counter()
    a.peer, b.peer = b, a
    a.me = a
    gdef, state = nnx.split(a)
    assert leaf_paths(state) == [("count",), ("peer", "count"), ("peer", "w"), ("w",)]
    back = nnx.merge(gdef, state)
    assert back.me is back and back.peer.peer is back
    cloned = nnx.clone(a)
    assert cloned.peer.peer is cloned and cloned is not a
    assert "<shared: self>" in repr(a)
    assert [p for p, _ in nnx.iter_graph(a)][-1] == ()


def test_find_duplicates():
    model = MLP(nnx.Rngs(0))
    model.tied = model.layers[0].w
    model.alias = model.counter
    dups = nnx.find_duplicates(model)
    assert [("layers", 0, "w"), ("tied",)] in dups
    assert [("alias",), ("counter",)] in dups
    assert nnx.find_duplicates(model, only=nnx.Param) == [[("layers", 0, "w"), ("tied",)]]
    assert nnx.find_duplicates(Counter()) == []


# ----------------------------------------------------------------- update
def test_update_full_and_partial():
    model = MLP(nnx.Rngs(0))
    w = model.layers[0].w
    new = nnx.map_state(lambda p, v: jnp.zeros_like(v.value), nnx.state(model))
    nnx.update(model, new)
    assert model.layers[0].w is w  # updated in place
    assert float(w.value.sum()) == 0.0
    nnx.update(model, {"counter": {"count": jnp.array(7)}})
    assert int(model.counter.count.value) == 7
    nnx.update(
        model, nnx.State({"layers": {1: {"b": jnp.ones(2)}}}), {"counter": {"w": jnp.ones(2)}}
    )
    assert model.layers[1].b.value.tolist() == [1.0, 1.0]


def test_update_copies_metadata_and_accepts_flat_state():
    model = Counter()
    st = nnx.state(model)
    replacement = nnx.State({"w": st["w"].replace(jnp.full(2, 3.0), tag="new")})
    nnx.update(model, replacement)
    assert model.w.tag == "new" and model.w.value.tolist() == [3.0, 3.0]
    nnx.update(model, nnx.state(Counter()).flat_state())
    assert model.w.value.tolist() == [1.0, 1.0]


def test_update_with_string_integer_keys():
    model = MLP(nnx.Rngs(0))
    nnx.update(model, {"layers": {"1": {"b": jnp.full(2, 4.0)}}})
    assert model.layers[1].b.value.tolist() == [4.0, 4.0]


def test_functional_round_trip_with_update():
    model = Counter()
    gdef, state = nnx.split(model)
    inner = nnx.merge(gdef, state, copy=True)
    inner(jnp.ones(2))
    assert int(model.count.value) == 0
    nnx.update(model, nnx.state(inner))
    assert int(model.count.value) == 1


# ----------------------------------------------------------------- clone / pop
def test_clone_is_independent():
    model = MLP(nnx.Rngs(0))
    cloned = nnx.clone(model)
    assert nnx.graphdef(cloned) == nnx.graphdef(model)
    assert cloned.layers[0].w is not model.layers[0].w
    cloned.layers[0].w.value = jnp.zeros((2, 3))
    assert float(model.layers[0].w.value.sum()) != 0.0
    cloned.layers.append(Counter())
    assert len(model.layers) == 2


def test_pop():
    class M(nnx.Module):
        def __call__(self, x):
            self.sow(nnx.Intermediate, "h", x)
            self.inner.sow(nnx.Intermediate, "g", x)
            return x

        def __init__(self):
            self.inner = Counter()

    m = M()
    m(jnp.ones(1))
    popped = nnx.pop(m, nnx.Intermediate)
    assert leaf_paths(popped) == [("h",), ("inner", "g")]
    assert not hasattr(m, "h") and not hasattr(m.inner, "g")
    assert leaf_paths(nnx.state(m)) == [("inner", "count"), ("inner", "w")]
    m(jnp.ones(1))
    inter, stats = nnx.pop(m, nnx.Intermediate, nnx.BatchStat)
    assert leaf_paths(inter) == [("h",), ("inner", "g")]
    assert leaf_paths(stats) == [("inner", "count")]


def test_pop_from_lists_keeps_positions_valid():
    lst = nnx.List([nnx.Intermediate(1), nnx.Param(jnp.ones(1)), nnx.Intermediate(2)])
    popped = nnx.pop(lst, nnx.Intermediate)
    assert leaf_paths(popped) == [(0,), (2,)]
    assert len(lst) == 1 and isinstance(lst[0], nnx.Param)


def test_pop_from_a_tuple_fails_without_changing_anything():
    class M(nnx.Module):
        def __init__(self):
            self.a = nnx.Intermediate(jnp.ones(1))
            self.pair = (nnx.Intermediate(jnp.ones(1)), 1)

    m = M()
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.pop(m, nnx.Intermediate)
    message = str(info.value)
    assert "model.pair[0] (Intermediate)" in message
    assert "stored in a tuple" in message and "Fix:" in message
    assert hasattr(m, "a")  # nothing was removed


def test_pop_takes_plain_array_leaves_matching_a_callable_filter():
    tree = {"x": {"small": jnp.array(1), "w": nnx.Param(jnp.array(5)), "big": jnp.array(7.0)}}
    below_3 = lambda path, value: value < 3
    popped = nnx.pop(tree, (nnx.Param, below_3))
    assert leaf_paths(popped) == [("x", "small"), ("x", "w")]
    assert int(popped["x"]["small"]) == 1 and int(popped["x"]["w"].value) == 5
    assert list(tree["x"]) == ["big"]


@pytest.mark.parametrize("graph", [True, False])
def test_a_bare_variable_round_trips_through_split_update_and_merge(graph):
    v = nnx.Param(jnp.array(1))
    gdef, state = nnx.split(v, graph=graph)
    assert state is v
    state2 = nnx.Param(jnp.array(4))
    nnx.update(v, state2)  # a Variable is accepted where a State is expected
    assert int(v.value) == 4
    gdef, stats, params, rest = nnx.split(v, nnx.BatchStat, nnx.Param, ..., graph=graph)
    assert isinstance(params, nnx.Param) and len(stats) == 0 and len(rest) == 0
    nnx.update(v, stats, nnx.Param(jnp.array(6)), rest)
    assert int(v.value) == 6
    out = nnx.merge(gdef, stats, params, rest)
    assert isinstance(out, nnx.Param) and int(out.value) == 6


@pytest.mark.parametrize("graph", [True, False])
def test_a_plain_array_splits_into_itself_and_empty_states(graph):
    x = jnp.array(2.0)
    gdef, arrays, rest = nnx.split(x, jax.Array, ..., graph=graph)
    assert arrays is x and len(rest) == 0
    assert nnx.merge(gdef, arrays, rest) is x
    gdef, flat = nnx.flatten(x, graph=graph)
    assert nnx.merge(gdef, flat) is x


def test_pop_requires_a_filter():
    with pytest.raises(TypeError, match="at least one filter"):
        nnx.pop(Counter())


# ----------------------------------------------------------------- traversal
def test_iter_graph_order_and_sharing():
    model = MLP(nnx.Rngs(0))
    model.tied = model.counter.w
    items = list(nnx.iter_graph(model))
    paths = [p for p, _ in items]
    assert paths == [
        ("counter", "count"),
        ("counter", "w"),
        ("counter",),
        ("layers", 0, "b"),
        ("layers", 0, "din"),  # static attributes are yielded too, as in Flax
        ("layers", 0, "dout"),
        ("layers", 0, "w"),
        ("layers", 0),
        ("layers", 1, "b"),
        ("layers", 1, "din"),
        ("layers", 1, "dout"),
        ("layers", 1, "w"),
        ("layers", 1),
        ("layers",),
        (),
    ]
    assert items[-1][1] is model and items[2][1] is model.counter


def test_recursive_map():
    model = MLP(nnx.Rngs(0))
    model.tied = model.layers[0].w

    def zero_params(path, node):
        if isinstance(node, nnx.Param):
            return node.replace(jnp.zeros_like(node.value))
        return node

    new = nnx.recursive_map(zero_params, model)
    assert new is not model and type(new.layers) is nnx.List
    assert float(new.layers[0].w.value.sum()) == 0.0
    assert float(model.layers[0].w.value.sum()) != 0.0
    assert new.tied is new.layers[0].w  # shared references map once

    seen = []
    nnx.recursive_map(lambda p, n: seen.append(p) or n, Counter())
    assert seen == [("count",), ("w",), ()]


def test_map():
    model = Counter()
    doubled = nnx.map(lambda path, v: v.value * 2, model)
    assert doubled.w.value.tolist() == [2.0, 2.0]
    assert model.w.value.tolist() == [1.0, 1.0]
    assert type(doubled.w) is nnx.Param


def test_flatten_and_unflatten():
    model = MLP(nnx.Rngs(0))
    gdef, flat = nnx.flatten(model)
    assert isinstance(flat, nnx.FlatState)
    assert flat.paths == gdef.leaf_paths
    assert nnx.unflatten(gdef, flat).layers[0].w is model.layers[0].w
    gdef2, leaves = nnx.flatten(model, with_paths=False)
    assert gdef2 == gdef and leaves[0] is model.counter.count
    assert nnx.unflatten(gdef, leaves).counter.count is model.counter.count
    assert type(nnx.unflatten(gdef, nnx.state(model))) is MLP
    with pytest.raises(nnx.GraphStructureError, match=r"expected 6 leaves.*found 2"):
        nnx.unflatten(gdef, leaves[:2])


def test_set_metadata():
    model = MLP(nnx.Rngs(0))
    nnx.set_metadata(model, only=nnx.Param, frozen=True)
    assert model.layers[0].w.frozen is True
    assert "frozen" not in model.counter.count.get_metadata()
    nnx.set_metadata(model, note="all")
    assert model.counter.count.note == "all"


def test_call_and_graphdef_apply():
    model = Counter()
    gdef, state = nnx.split(model)
    out, (_gdef2, new_state) = nnx.call((gdef, state))(jnp.ones(2))
    assert out.tolist() == [1.0, 1.0]
    assert int(new_state["count"].value) == 1
    assert int(model.count.value) == 0  # inputs are not modified
    out, _ = nnx.call((gdef, state)).scaled(jnp.ones(2), 3)
    assert out.tolist() == [3.0, 3.0]
    params, rest = nnx.state(model, nnx.Param, ...)
    out, (_, applied) = gdef.apply(params, rest)(jnp.ones(2))
    assert int(applied["count"].value) == 1
    assert gdef.merge(state).w is model.w


def test_call_reaches_items_of_a_container_by_index():
    models = {"first": Counter(), "second": Counter()}
    out, (gdef, new_state) = nnx.call(nnx.split(models))["second"](jnp.ones(2))
    assert out.tolist() == [1.0, 1.0]
    rebuilt = nnx.merge(gdef, new_state)
    assert int(rebuilt["second"].count.value) == 1 and int(rebuilt["first"].count.value) == 0
    layers = nnx.List([Counter(), Counter()])
    out, (_, st) = nnx.call(nnx.split(layers))[1].scaled(jnp.ones(2), 2)
    assert out.tolist() == [2.0, 2.0] and int(st[1]["count"].value) == 1
    assert int(layers[1].count.value) == 0  # the input is unchanged


def test_prefix():
    model = Counter()
    axes = nnx.prefix(model, {nnx.Param: 0, ...: None})
    assert axes.to_pure_dict() == {"count": None, "w": 0}
    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.prefix(model, {nnx.Param: 0})
    assert "No filter matched leaf at path model.count (BatchStat)" in str(info.value)
    assert "Fix: add `...: default`" in str(info.value)
    by_type = nnx.prefix(model, lambda path, leaf: 1 if isinstance(leaf, nnx.Param) else None)
    assert by_type.to_pure_dict() == {"count": None, "w": 1}
    by_path = nnx.prefix(model, lambda path, leaf: "/".join(map(str, path)))
    assert by_path.to_pure_dict() == {"count": "count", "w": "w"}


def test_to_tree_and_from_tree_keep_sharing():
    a, b = Counter(), Counter()
    tree = {"x": a, "y": [a, 1], "z": b}
    pure = nnx.to_tree(tree)
    leaves = jax.tree.leaves(pure)
    assert [leaf for leaf in leaves if isinstance(leaf, int)] == [1]
    arrays = [leaf for leaf in leaves if isinstance(leaf, jax.Array)]
    assert len(arrays) == 4  # a and b have two Variables each; a counted once
    back = nnx.from_tree(jax.jit(lambda t: t)(pure))
    assert back["x"] is back["y"][0] and back["y"][1] == 1
    assert back["z"] is not back["x"]
    assert nnx.to_tree([1, 2]) == [1, 2]

    def filtered(ctx, path, prefix, node):
        return nnx.NodeStates.from_split(*ctx.split(node, nnx.Param, ...))

    split = nnx.to_tree(a, split_fn=filtered)
    assert isinstance(split, nnx.NodeStates) and len(split.states) == 2
    assert type(nnx.from_tree(split)) is Counter


def test_node_states():
    gdef, state = nnx.split(Counter())
    ns = nnx.NodeStates.from_split(gdef, state)
    assert ns.state is state and ns.graphdef is gdef
    copy = jax.tree.map(lambda x: x, ns)
    assert isinstance(copy, nnx.NodeStates) and copy.graphdef == gdef
    assert repr(ns).startswith("NodeStates(_graphdef=GraphDef(")


# ----------------------------------------------------------------- GraphDef
def test_graphdef_hashable_and_equal_for_equal_structures():
    g1 = nnx.graphdef(MLP(nnx.Rngs(0)))
    g2 = nnx.graphdef(MLP(nnx.Rngs(1)))
    assert g1 == g2 and hash(g1) == hash(g2)
    assert len({g1, g2}) == 1
    other = MLP(nnx.Rngs(0))
    other.layers.append(Counter())
    assert nnx.graphdef(other) != g1
    tied = MLP(nnx.Rngs(0))
    tied.extra = tied.counter
    assert nnx.graphdef(tied) != g1
    changed = MLP(nnx.Rngs(0))
    changed.counter.w.set_metadata(tag="x")
    assert nnx.graphdef(changed) != g1
    static = MLP(nnx.Rngs(0))
    static.layers[0].din = 99
    assert nnx.graphdef(static) != g1


def test_graphdef_with_unhashable_static_values():
    class M(nnx.Module):
        def __init__(self, cfg):
            self.cfg = cfg
            self.w = nnx.Param(jnp.ones(1))

    g1 = nnx.graphdef(M({"sizes": [1, 2], "np": jnp.arange(2)}))
    g2 = nnx.graphdef(M({"sizes": [1, 2], "np": jnp.arange(2)}))
    g3 = nnx.graphdef(M({"sizes": [1, 3], "np": jnp.arange(2)}))
    assert g1 == g2 and hash(g1) == hash(g2)
    assert g1 != g3


def test_graphdef_is_immutable_picklable_and_usable_as_jit_static():
    g = nnx.graphdef(MLP(nnx.Rngs(0)))
    loaded = pickle.loads(pickle.dumps(g))
    assert loaded == g and hash(loaded) == hash(g)
    with pytest.raises(AttributeError):
        g.new_attribute = 1
    gdef, state = nnx.split(Counter())

    @jax.jit
    def f(state):
        return nnx.merge(gdef, state)(jnp.ones(2))

    assert f(state).tolist() == [1.0, 1.0]
    out = jax.jit(lambda g, s: nnx.merge(g, s)(jnp.ones(2)), static_argnums=0)(gdef, state)
    assert out.tolist() == [1.0, 1.0]


def test_graphdef_repr_and_properties():
    gdef = nnx.graphdef(Counter())
    assert repr(gdef) == "GraphDef(Counter(count=BatchStat, w=Param))"
    assert gdef.leaf_paths == (("count",), ("w",))
    assert gdef.num_leaves == 2 and gdef.type is Counter


# ----------------------------------------------------------------- bad input
def test_non_graph_inputs():
    with pytest.raises(TypeError) as info:
        nnx.state(3)
    assert "expected a graph node" in str(info.value) and "found int" in str(info.value)
    # split/graphdef/merge/clone take a plain leaf as a one-leaf graph (as Flax)
    gdef, leaf = nnx.split(3)
    assert leaf == 3 and nnx.graphdef(3) == gdef and gdef.num_leaves == 1
    assert nnx.merge(gdef, 5) == 5 and nnx.clone("abc") == "abc"
    assert nnx.split(3, nnx.Param, ...)[1:] == (nnx.State({}), 3)
    gdef, state = nnx.split(None)
    assert len(state) == 0 and nnx.merge(gdef, state) is None
    with pytest.raises(
        TypeError, match="expected a GraphDef or GraphState as first argument, found State"
    ):
        nnx.merge(nnx.State({}), nnx.State({}))
    with pytest.raises(TypeError, match=r"Expected a State .* found int"):
        nnx.merge(nnx.graphdef(Counter()), 3)


# ----------------------------------------------------------------- compat
def test_set_graph_mode_and_updates_are_context_managers():
    with nnx.set_graph_mode(False):
        assert nnx.merge(*nnx.split(Counter())) is not None
    with nnx.set_graph_updates(False):
        pass


def test_update_context():
    model = Counter()
    with nnx.update_context("demo") as ctx:
        assert isinstance(ctx, nnx.UpdateContext)
        assert nnx.current_update_context("demo") is ctx
        with nnx.update_context("demo") as inner_ctx:
            assert nnx.current_update_context("demo") is inner_ctx
        assert nnx.current_update_context("demo") is ctx
        gdef, state = ctx.split(model)
        inner = ctx.merge(gdef, state)
        assert inner.w is not model.w
        inner(jnp.ones(2))
        ctx.update(model, nnx.state(inner))
    assert int(model.count.value) == 1
    with pytest.raises(ValueError, match=r"No update context found for tag 'demo'.*Fix"):
        nnx.current_update_context("demo")


def test_ordered_dict_of_modules_keeps_its_order():
    import collections

    class M(nnx.Module):
        def __init__(self):
            self.od = collections.OrderedDict([("z", Counter()), ("a", Counter())])

    m = M()
    gdef, state = nnx.split(m)
    assert ("od", "z", "w") in leaf_paths(state)
    back = nnx.merge(gdef, state)
    assert type(back.od) is collections.OrderedDict and list(back.od) == ["z", "a"]
    nnx.update(m, {"od": {"z": {"count": jnp.array(3)}}})
    assert int(m.od["z"].count.value) == 3


def test_unsupported_container_subclass_holding_data_is_an_error():
    import collections

    class M(nnx.Module):
        def __init__(self):
            self.table = collections.defaultdict(list, {"a": Counter()})

    with pytest.raises(nnx.GraphStructureError) as info:
        nnx.split(M())
    message = str(info.value)
    assert "model.table is a defaultdict holding Variables" in message
    assert "Expected a list, tuple, dict" in message and "Fix: assign nnx.Dict(value)" in message


def test_clone_variables_and_arrays_options():
    model = Counter()
    shared = nnx.clone(model, variables=False)
    assert shared is not model and shared.w is model.w
    deep = nnx.clone(model, arrays=True)
    assert deep.w is not model.w and deep.w.value is not model.w.value
    assert deep.w.value.tolist() == model.w.value.tolist()
    assert nnx.clone(model).w.value is model.w.value  # default: buffers shared
    with pytest.raises(ValueError, match=r"expected variables=True.*Fix"):
        nnx.clone(model, False, arrays=True)


def test_flax_compatibility_keywords_are_accepted():
    model = MLP(nnx.Rngs(0))
    gdef, state = nnx.split(model, graph=True)
    assert nnx.merge(gdef, state, recreate_variables=True).layers[0].w is model.layers[0].w
    assert len(nnx.state(model, nnx.Param, graph=False).flat_state()) == 5
    assert nnx.graphdef(model, graph=True) == gdef
    assert nnx.variables(model, graph=None).flat_state().paths == state.flat_state().paths
    assert len(list(nnx.iter_graph(model, graph=True))) == 15
    assert len(list(nnx.iter_modules(model, graph=True))) == 4
    assert nnx.recursive_map(lambda p, x: x, model, graph=True) is not model
    assert nnx.map(lambda p, v: v, model, graph=True, recreate_variables=True) is not model
    gdef2, flat = nnx.flatten(model, graph=True)
    copied = nnx.unflatten(gdef2, flat, copy_variables=True)
    assert copied.layers[0].w is not model.layers[0].w
    _, leaves = nnx.flatten(model, with_paths=False)
    assert nnx.unflatten(gdef2, leaves, copy_variables=True).counter.w is not model.counter.w
    assert nnx.prefix(model, {...: 0}, graph=True).flat_state().leaves == [0] * 6
    assert nnx.clone(model, graph=True).layers[0].w is not model.layers[0].w
