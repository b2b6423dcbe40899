"""Flax NNX 0.12 object-model behaviour: Variable methods, State.map and
difference, keyword-compatible graph functions, Rngs helpers and fork_rngs as a
decorator. Written against the documented behaviour; runs without flax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import nnx_graph as nnx


class Model(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.ones(2))
        self.s = nnx.BatchStat(jnp.zeros(2))
        self.dropout_rate = 0.1


# ----------------------------------------------------------------- Variables
def test_variable_copy_and_to_state_take_a_value_and_metadata_updates():
    p = nnx.Param(jnp.zeros(2), tag="a")
    q = p.copy(jnp.ones(2), tag="b")
    assert type(q) is nnx.Param and q is not p
    assert q.tag == "b" and float(q.value.sum()) == 2.0
    assert p.tag == "a" and float(p.value.sum()) == 0.0
    r = p.to_state()
    assert r is not p and r.tag == "a"


def test_variable_metadata_methods():
    p = nnx.Param(jnp.zeros(1), tag="a")
    assert p.has_metadata("tag") and not p.has_metadata("other")
    p.del_metadata("tag")
    assert not p.has_metadata("tag")
    with pytest.raises(KeyError, match="no metadata 'tag'"):
        p.del_metadata("tag")
    assert p.get_metadata(exclude_required=True) == {}
    assert nnx.Param.required_metadata >= {"hijax", "ref", "eager_sharding"}


def test_variable_raw_value_copy_from_and_var_type():
    p = nnx.Param(jnp.zeros(2))
    p.set_raw_value(jnp.ones(2))
    assert float(p.get_raw_value().sum()) == 2.0
    source = nnx.Param(jnp.full(2, 3.0), tag="src")
    p.copy_from(source)
    assert float(p.value[0]) == 3.0 and p.tag == "src"
    other = nnx.Param(jnp.zeros(2))
    other.update_from_state(source)
    assert other.tag == "src"
    assert p.var_type is nnx.Param
    made = nnx.BatchStat.from_metadata(jnp.ones(1), {"tag": "t"})
    assert type(made) is nnx.BatchStat and made.tag == "t"
    assert made.create_value(5) == 5


# ----------------------------------------------------------------- State
def test_state_map_and_difference():
    state = nnx.state(Model())
    doubled = state.map(lambda path, v: v.replace(v.value * 2))
    assert float(doubled["w"].value.sum()) == 4.0
    assert float(state["w"].value.sum()) == 2.0  # the original is untouched
    rest = state - nnx.state(Model(), nnx.Param)
    assert list(rest) == ["s"]
    assert list(state - nnx.State({})) == list(state)


# ----------------------------------------------------------------- graph API
def test_graph_functions_accept_node_by_keyword():
    m = Model()
    graphdef, state = nnx.split(node=m)
    assert list(nnx.state(node=m)) == ["s", "w"]
    assert nnx.clone(node=m).w is not m.w
    assert nnx.merge(graphdef, state).w is m.w


def test_set_attributes_accepts_graph():
    m = Model()
    m.set_attributes(dropout_rate=0.5, graph=True)
    assert m.dropout_rate == 0.5


# ----------------------------------------------------------------- Rngs
def test_rngs_random_helpers_draw_from_the_streams():
    rngs = nnx.Rngs(0, params=1)
    a = rngs.normal((3,))
    b = rngs.normal((3,))
    assert a.shape == (3,) and not bool(jnp.all(a == b))  # fresh keys each call
    u = rngs.params.uniform((2, 2), minval=1.0, maxval=2.0)
    assert u.shape == (2, 2) and bool(jnp.all((u >= 1.0) & (u < 2.0)))
    assert int(rngs.params.count.value) == 1
    init = rngs.params.lecun_normal()
    assert init((4, 5)).shape == (4, 5)
    same_seed = nnx.Rngs(0).normal((3,))
    assert bool(jnp.all(same_seed == a))


def test_rng_stream_broadcast_repeats_one_key():
    stream = nnx.Rngs(3).default
    wide = stream.broadcast((2, 3))
    assert wide.key.shape == (2, 3)
    data = jax.random.key_data(wide.key.value).reshape(6, -1)
    assert bool(jnp.all(data == data[0]))


def test_fork_rngs_as_decorator_and_graph_keywords():
    rngs = nnx.Rngs(0)
    seen = []

    @nnx.fork_rngs(split=4)
    def f(r):
        seen.append(r.default.key.shape)

    f(rngs)
    assert seen == [(4,)] and rngs.default.key.shape == ()
    # graph_updates=False returns a split copy; the original only advances
    copy = nnx.split_rngs(rngs, splits=2, graph=True, graph_updates=False)
    assert copy.default.key.shape == (2,) and rngs.default.key.shape == ()
    with nnx.fork_rngs(rngs, split=3, graph=True):
        assert rngs.default.key.shape == (3,)
    nnx.reseed(rngs, graph=True, default=5)
    # the new key is the first key drawn from Rngs(5), as in Flax
    assert bool(jnp.all(rngs.normal((2,)) == nnx.Rngs(nnx.Rngs(5)()).normal((2,))))


# ----------------------------------------------------------------- bare Variables
def test_bare_variable_through_split_state_graphdef_merge():
    p = nnx.Param(jnp.ones(2), tag="t")
    graphdef, state = nnx.split(p)
    assert state is p  # a Variable is its own state
    assert nnx.state(p) is p
    assert graphdef.type is nnx.Param and nnx.graphdef(p) == graphdef
    assert nnx.merge(graphdef, state) is p
    copied = nnx.merge(graphdef, state, copy=True)
    assert copied is not p and copied.tag == "t"
    _, params, rest = nnx.split(p, nnx.Param, ...)
    assert params is p and len(rest) == 0


# ----------------------------------------------------------------- iter_graph
def test_iter_graph_yields_static_attributes():
    class Net(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones(1))
            self.sizes = [3, 4]
            self.name = "net"

    items = [(p, v) for p, v in nnx.iter_graph(Net())]
    assert [p for p, _ in items] == [
        ("name",),
        ("sizes", 0),
        ("sizes", 1),
        ("sizes",),
        ("w",),
        (),
    ]
    assert items[0][1] == "net" and items[3][1] == [3, 4]


# ----------------------------------------------------------------- keywords
def test_flatten_unflatten_and_merge_state_keywords():
    m = Model()
    graphdef, flat = nnx.flatten(m, ref_index=None, ref_outer_index=None)
    back = nnx.unflatten(graphdef, flat, index_ref=None, outer_index_outer_ref=None)
    assert back.w is m.w
    with pytest.raises(ValueError, match="expected None"):
        nnx.flatten(m, ref_index={})

    class MyState(nnx.State):
        pass

    merged = nnx.merge_state(nnx.State({"a": 1}), nnx.State({"b": 2}), cls=MyState)
    assert type(merged) is MyState and sorted(merged) == ["a", "b"]


# ----------------------------------------------------------------- sow errors
def test_sow_errors_use_flax_types_and_phrases():
    class Net(nnx.Module):
        def __init__(self):
            self.h = nnx.Param(jnp.ones(1))
            self.k = 3

        def __call__(self, x, name):
            self.sow(nnx.Intermediate, name, x)
            return x

    net = Net()
    with pytest.raises(ValueError, match="Expected 'h' to be of type 'Intermediate', got 'Param'"):
        net(jnp.ones(1), "h")
    with pytest.raises(ValueError, match="Expected 'k' to be a Variable, got int"):
        net(jnp.ones(1), "k")
    net(jnp.ones(1), "fresh")
    assert isinstance(net.fresh, nnx.Intermediate)


# ----------------------------------------------------------------- GraphDef
def test_graphdef_nodes_and_attributes():
    class Net(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.ones(1))
            self.n = 3
            self.items = nnx.List([nnx.BatchStat(jnp.ones(1))])
            self.alias = self.w

    graphdef = nnx.graphdef(Net())
    kinds = [type(r).__name__ for r in graphdef.nodes]
    assert kinds == ["NodeDef", "VariableDef", "NodeDef", "VariableDef", "RefDef"]
    attrs = [(k, type(r).__name__) for k, r in graphdef.attributes]
    assert attrs == [
        ("alias", "NodeAttr"),
        ("items", "NodeAttr"),
        (0, "NodeAttr"),
        ("n", "Static"),
        ("w", "NodeAttr"),
    ]
    annotated: nnx.GraphDef[Net] = graphdef
    assert annotated.type is Net


# ----------------------------------------------------------------- capture
def test_capture_method_outputs_sows_every_method_output():
    class Inner(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.full((2, 2), 0.5))

        def __call__(self, x):
            return x @ self.w

    class Outer(nnx.Module):
        def __init__(self):
            self.inner = Inner()

        def __call__(self, x):
            return self.inner(x) * 2

    model = Outer()
    out, captured = nnx.capture(model, method_outputs=nnx.Intermediate)(jnp.ones(2))
    assert sorted(captured) == ["__call__", "inner"]
    assert float(captured["__call__"].value[0][0]) == float(out[0]) == 2.0
    assert float(captured["inner"]["__call__"].value[0][0]) == 1.0
    # the methods are restored and nothing stays on the model
    assert "__call__" not in vars(model) and "__call__" not in vars(model.inner)
    assert Outer.__call__.__qualname__.endswith("Outer.__call__")
    plain = model(jnp.ones(2))
    assert float(plain[0]) == 2.0 and len(nnx.state(model, nnx.Intermediate)) == 0


# ----------------------------------------------------------------- var_defaults
def test_var_defaults_as_function_context_manager_and_decorator():
    assert dict(nnx.var_defaults()) == {"hijax": False, "ref": False}
    context = nnx.var_defaults(ref=True)  # function form: applies at once
    assert nnx.var_defaults().ref is True
    with context:
        assert nnx.var_defaults().ref is True
    assert nnx.var_defaults().ref is False  # the with block undid it

    @nnx.var_defaults(hijax=True)
    def inside():
        return nnx.var_defaults().hijax

    assert nnx.var_defaults().hijax is False  # decorating changes nothing yet
    assert inside() is True
    assert nnx.var_defaults().hijax is False
