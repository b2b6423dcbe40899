"""nnx.List / nnx.Dict and plain containers on Modules; the structural epoch."""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import pytest

import nnx_graph as nnx
from nnx_graph import _epoch


class Leaf(nnx.Module):
    def __init__(self, value: float = 1.0):
        self.w = nnx.Param(jnp.full((2,), value))


class Holder(nnx.Module):
    def __init__(self):
        self.layers = []
        self.table = {}


# ----------------------------------------------------------------- conversion
def test_plain_list_and_dict_of_modules_become_containers():
    class M(nnx.Module):
        def __init__(self):
            self.layers = [Leaf(), Leaf()]
            self.heads = {"a": Leaf(), "b": Leaf()}
            self.names = ["x", "y"]  # no data: stays a plain (static) list

    m = M()
    assert type(m.layers) is nnx.List and type(m.heads) is nnx.Dict
    assert type(m.names) is list
    assert nnx.state(m).to_pure_dict().keys() == {"layers", "heads"}
    assert list(nnx.state(m)["layers"]) == [0, 1]


def test_append_after_assignment_is_tracked():
    h = Holder()
    assert type(h.layers) is nnx.List and type(h.table) is nnx.Dict
    h.layers.append(Leaf())
    h.layers.append(Leaf(2.0))
    h.table["enc"] = Leaf()
    state = nnx.state(h)
    assert list(state["layers"]) == [0, 1]
    assert list(state["table"]) == ["enc"]
    m2 = nnx.merge(*nnx.split(h))
    assert type(m2.layers) is nnx.List and len(m2.layers) == 2
    assert m2.layers[1].w.value.tolist() == [2.0, 2.0]


def test_plain_list_that_acquires_data_is_converted_on_traversal():
    class M(nnx.Module):
        def __init__(self):
            self.items = nnx.static([])  # hidden from conversion at assignment
            self.later = ["a"]

    m = M()
    m.later.append(Leaf())
    assert type(m.later) is list
    assert list(nnx.state(m)) == ["later"]
    assert type(m.later) is nnx.List  # converted so further appends are tracked


def test_nested_containers_are_converted():
    lst = nnx.List([[Leaf()], {"k": Leaf()}])
    assert type(lst[0]) is nnx.List and type(lst[1]) is nnx.Dict
    d = nnx.Dict(a=[Leaf()])
    assert type(d["a"]) is nnx.List


# ----------------------------------------------------------------- List API
def test_list_mutators():
    a, b, c = Leaf(1.0), Leaf(2.0), Leaf(3.0)
    lst = nnx.List([a])
    lst.extend([b])
    lst.insert(0, c)
    assert list(lst) == [c, a, b]
    assert lst.pop() is b
    lst.remove(c)
    assert list(lst) == [a]
    lst += [b, c]
    lst[0] = c
    assert list(lst) == [c, b, c]
    del lst[0]
    lst.reverse()
    assert list(lst) == [c, b]
    lst[0:1] = [[Leaf()]]
    assert type(lst[0]) is nnx.List
    lst.clear()
    assert len(lst) == 0
    ints = nnx.List([3, 1, 2])
    ints.sort()
    assert list(ints) == [1, 2, 3]
    ints *= 2
    assert list(ints) == [1, 2, 3, 1, 2, 3]


def test_list_with_static_entries_keeps_them():
    lst = nnx.List([Leaf(), "tag", 3, Leaf()])
    state = nnx.state(lst)
    assert list(state) == [0, 3]
    back = nnx.merge(*nnx.split(lst))
    assert back[1] == "tag" and back[2] == 3
    tree = jax.tree.map(lambda x: x * 0, lst)
    assert type(tree) is nnx.List and tree[1] == "tag" and tree[2] == 3
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(lst)]
    assert paths == ["[0].w.value", "[3].w.value"]


def test_list_is_a_graph_node_root():
    lst = nnx.List([Leaf(), Leaf()])
    lst.append(lst[0])
    gdef, state = nnx.split(lst)
    assert list(state) == [0, 1]
    back = nnx.merge(gdef, state)
    assert type(back) is nnx.List and back[2] is back[0]


# ----------------------------------------------------------------- Dict API
def test_dict_attribute_access_and_mutators():
    d = nnx.Dict(a=Leaf())
    assert d.a is d["a"]
    d.b = Leaf()
    assert "b" in d
    del d.b
    assert "b" not in d
    d.update({"c": Leaf()}, e=Leaf())
    d |= {"f": Leaf()}
    assert sorted(d) == ["a", "c", "e", "f"]
    assert d.setdefault("a") is d["a"]
    d.setdefault("g", [Leaf()])
    assert type(d["g"]) is nnx.List
    assert isinstance(d.pop("g"), nnx.List)
    d.popitem()
    d.clear()
    assert len(d) == 0


def test_dict_missing_attribute_error_lists_keys():
    d = nnx.Dict(a=1)
    with pytest.raises(AttributeError, match=r"nnx.Dict has no key 'zz'; its keys are \['a'\]"):
        d.zz


def test_dict_with_int_and_str_keys_round_trips():
    d = nnx.Dict({0: Leaf(), "1": Leaf(2.0), "x": Leaf()})
    gdef, state = nnx.split(d)
    assert set(state) == {0, "1", "x"}
    back = nnx.merge(gdef, state)
    assert set(back) == {0, "1", "x"}
    assert back["1"].w.value.tolist() == [2.0, 2.0]


def test_dict_pytree():
    d = nnx.Dict(b=Leaf(), a=Leaf())
    tree = jax.tree.map(lambda x: x + 1, d)
    assert type(tree) is nnx.Dict and list(tree) == ["a", "b"]
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(d)]
    assert paths == ["['a'].w.value", "['b'].w.value"]


# ----------------------------------------------------------------- copies
def test_pickle_and_deepcopy_containers():
    lst = nnx.List([Leaf(), 1])
    d = nnx.Dict(a=Leaf())
    for obj in (lst, d):
        for other in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
            assert type(other) is type(obj)
            assert nnx.graphdef(other) == nnx.graphdef(obj)


def test_container_repr():
    text = repr(nnx.List([Leaf()]))
    assert text.startswith("List([\n  Leaf( # Param: 2 (8 B)\n    w=Param( # 2 (8 B)\n")
    assert text.endswith("\n  )\n])")
    assert repr(nnx.List()) == "List([])"
    assert repr(nnx.Dict()) == "Dict({})"
    assert "'a': Leaf(" in repr(nnx.Dict(a=Leaf()))


# ----------------------------------------------------------------- epoch
def test_structural_changes_of_observed_objects_bump_the_epoch():
    h = Holder()
    h.layers.append(Leaf())
    h.table["a"] = Leaf()
    nnx.graphdef(h)  # a traversal observes every object in the graph

    def bumps(action) -> bool:
        before = _epoch.current()
        action()
        return _epoch.current() != before

    assert bumps(lambda: h.layers.append(Leaf()))
    assert bumps(lambda: h.table.__setitem__("b", Leaf()))
    assert bumps(lambda: setattr(h, "new_attr", 1))
    nnx.graphdef(h)
    assert bumps(lambda: h.layers[0].w.set_metadata(tag="x"))
    assert bumps(lambda: delattr(h, "new_attr"))
    # value changes are not structural
    assert not bumps(lambda: setattr(h.layers[0].w, "value", jnp.zeros(2)))
    assert not bumps(lambda: h.layers[0].w.__setitem__(..., jnp.ones(2)))


def test_unobserved_objects_do_not_bump():
    before = _epoch.current()
    h = Holder()
    h.layers.append(Leaf())
    h.x = 1
    assert _epoch.current() == before


def test_copy_and_pickle_of_self_referencing_containers():
    lst = nnx.List([Leaf()])
    lst.append(lst)
    d = nnx.Dict(leaf=Leaf())
    d["me"] = d
    for other in (copy.deepcopy(lst), pickle.loads(pickle.dumps(lst))):
        assert type(other) is nnx.List and other[1] is other
    for other in (copy.deepcopy(d), pickle.loads(pickle.dumps(d))):
        assert type(other) is nnx.Dict and other["me"] is other
        assert other.leaf.w.value.tolist() == [1.0, 1.0]


def test_deepcopy_of_a_module_keeps_sharing():
    h = Holder()
    leaf = Leaf()
    h.layers.append(leaf)
    h.table["same"] = leaf
    h.tied = leaf.w
    other = copy.deepcopy(h)
    assert other.layers[0] is other.table["same"] and other.tied is other.layers[0].w
    assert other.tied is not h.tied
    assert nnx.graphdef(other) == nnx.graphdef(h)


# ----------------------------------------------------------------- Module methods
class Drop(nnx.Module):
    def __init__(self):
        self.deterministic = False
        self.use_running_average = False


def test_list_and_dict_have_module_methods():
    layers = nnx.List([Drop(), Drop()])
    layers.eval()
    assert all(d.deterministic and d.use_running_average for d in layers)
    layers.train()
    assert not any(d.deterministic for d in layers)
    layers.set_attributes(deterministic=True)
    assert all(d.deterministic for d in layers)
    assert [p for p, _ in layers.iter_modules()] == [(0,), (1,), ()]  # the List is a Module
    assert [k for k, _ in layers.iter_children()] == [0, 1]
    with pytest.raises(AttributeError, match="no selected Module in List has them"):
        layers.set_attributes(missing=1)

    blocks = nnx.Dict(a=Drop())
    blocks.eval()
    assert blocks.a.deterministic
    assert [k for k, _ in blocks.iter_children()] == ["a"]


def test_list_takes_flax_it_argument_and_dict_sows_entries():
    assert list(nnx.List()) == [] and list(nnx.List(None)) == []
    assert list(nnx.List(iter([1, 2]))) == [1, 2]
    d = nnx.Dict()
    d.sow(nnx.Intermediate, "h", jnp.ones(1))
    d.sow(nnx.Intermediate, "h", jnp.zeros(1))
    assert isinstance(d["h"], nnx.Intermediate) and len(d["h"].value) == 2
    assert "h" in nnx.state(d, nnx.Intermediate)
    assert d.perturb("p", jnp.ones(2)).tolist() == [1.0, 1.0]
    assert isinstance(d["p"], nnx.Perturbation)


def test_list_and_dict_mutated_inside_plain_jax_jit_raise_trace_context_error():
    items, table = nnx.List([1]), nnx.Dict(a=1)

    @jax.jit
    def f(x):
        items.append(2)
        return x

    @jax.jit
    def g(x):
        table["b"] = 2
        return x

    with pytest.raises(nnx.TraceContextError, match="Cannot mutate 'List' from different trace"):
        f(1)
    with pytest.raises(nnx.TraceContextError, match="changing its items"):
        g(1)
    assert list(items) == [1] and dict(table) == {"a": 1}

    @nnx.jit
    def h(items):
        items.append(3)  # an nnx transform rebuilds it inside the trace

    h(items)
    assert list(items) == [1, 3]
