"""GraphDef / NodeDef / VariableDef built from Flax's flat description.

``GraphDef(nodes, attributes, num_leaves)`` must give back exactly the GraphDef
``split`` made (equal, same hash, merges to the same structure) for every kind of
structure, accept descriptions written by hand, and reject ones that do not add up.
"""

from __future__ import annotations

import copy
import pickle
import typing as tp
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx
from nnx_graph import graphlib
from nnx_graph.graphlib import (
    LEAF_ATTR,
    NODE_ATTR,
    GraphDef,
    NodeDef,
    NodeRef,
    Static,
    VariableDef,
)


# ----------------------------------------------------------------- structures
class Leaf(nnx.Module):
    def __init__(self, seed: int) -> None:
        self.w = nnx.Param(jnp.full((2,), float(seed)))
        self.count = nnx.BatchStat(jnp.array(seed))
        self.size = 2


class Tree(nnx.Module):
    def __init__(self) -> None:
        self.left = Leaf(1)
        self.right = Leaf(2)
        self.alias = self.left  # shared reference
        self.w_alias = self.right.w  # shared Variable
        self.me = self  # cycle
        self.act = "relu"
        self.scale = jnp.ones(3)  # raw array on the node


class Point(tp.NamedTuple):
    x: tp.Any
    y: tp.Any


class Holder(nnx.Module):
    def __init__(self) -> None:
        self.tup = nnx.data((jnp.zeros(1), "tag", [jnp.ones(2), 4], {"k": jnp.ones(1), "j": 1}))
        self.mapping = nnx.data({"b": jnp.ones(1), "a": nnx.Param(jnp.zeros(2))})
        self.ordered = nnx.data(OrderedDict([("z", jnp.ones(1)), ("y", jnp.zeros(1))]))
        self.point = nnx.data(Point(jnp.ones(1), 3))
        self.items = nnx.List([Leaf(3), nnx.Param(jnp.ones(1)), 7])
        self.table = nnx.Dict(first=Leaf(4), second=jnp.zeros(2))
        self.empty = nnx.List([])
        self.config = {"depth": 2, "names": ("a", "b")}  # static


class Declared(nnx.Module):
    def __init__(self) -> None:
        self.data_number = nnx.data(5)  # a Python number declared data
        self.label = nnx.static("named")


class Bundle:
    """A user type registered as a graph node (entries in a dict, aux = label)."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.entries: dict[str, tp.Any] = {}


graphlib.register_graph_node_type(
    Bundle,
    flatten=lambda b: (sorted(b.entries.items()), b.label),
    set_key=lambda b, k, v: b.entries.__setitem__(k, v),
    pop_key=lambda b, k: b.entries.pop(k),
    create_empty=lambda label: Bundle(label),
    clear=lambda b: b.entries.clear(),
    init=lambda b, pairs: b.entries.update(pairs),
)


class Span:
    """A user type registered as a pytree container (aux = unit)."""

    def __init__(self, lo: tp.Any, hi: tp.Any, unit: str) -> None:
        self.lo, self.hi, self.unit = lo, hi, unit


graphlib.register_pytree_node_type(
    Span,
    flatten=lambda s: ([("hi", s.hi), ("lo", s.lo)], s.unit),
    unflatten=lambda pairs, unit: Span(dict(pairs)["lo"], dict(pairs)["hi"], unit),
)


def _spanned(unit: str) -> nnx.Module:
    module = nnx.Module()
    module.s = nnx.data(Span(jnp.zeros(1), nnx.Param(jnp.ones(1)), unit))
    return module


def _bundle() -> Bundle:
    bundle = Bundle("b1")
    bundle.entries.update(w=nnx.Param(jnp.ones(2)), n=3, leaf=Leaf(5))
    bundle.entries["again"] = bundle.entries["leaf"]
    return bundle


def _chain(depth: int) -> nnx.Module:
    root = node = nnx.Module()
    for _ in range(depth):
        node.child = nnx.Module()
        node.v = nnx.Param(jnp.ones(1))
        node = node.child
    return root


STRUCTURES: dict[str, tp.Callable[[], tp.Any]] = {
    "nested_modules_shared_and_cycle": Tree,
    "containers_list_dict": Holder,
    "declared_data_and_static": Declared,
    "bare_variable": lambda: nnx.Param(jnp.ones(3), tag="x"),
    "raw_array_root": lambda: jnp.arange(3.0),
    "static_root": lambda: (1, "two"),
    "none_root": lambda: None,
    "tuple_root_with_data": lambda: (jnp.ones(1), nnx.Param(jnp.zeros(2)), 3, Leaf(6)),
    "dict_root": lambda: {"m": Leaf(7), "x": jnp.ones(1)},
    "registered_graph_node": _bundle,
    "registered_pytree_in_module": lambda: _spanned("m"),
    "deep_chain": lambda: _chain(1500),
}


def _roundtrip(graphdef: GraphDef[tp.Any]) -> GraphDef[tp.Any]:
    return GraphDef(graphdef.nodes, graphdef.attributes, graphdef.num_leaves)


def _same_leaves(a: tp.Any, b: tp.Any) -> None:
    if isinstance(a, nnx.State):  # flat: deep chains need no recursion
        fa, fb = a.flat_state(), b.flat_state()
        assert fa.paths == fb.paths
        pairs = list(zip(fa.leaves, fb.leaves))
    else:
        pairs = list(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    for x, y in pairs:
        x = x.get_value() if isinstance(x, nnx.Variable) else x
        y = y.get_value() if isinstance(y, nnx.Variable) else y
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_flat_view_round_trips_in_graph_mode(name: str) -> None:
    obj = STRUCTURES[name]()
    graphdef, state = nnx.split(obj)
    rebuilt = _roundtrip(graphdef)
    assert rebuilt == graphdef and hash(rebuilt) == hash(graphdef)
    assert rebuilt.num_leaves == graphdef.num_leaves
    assert rebuilt.num_nodes == graphdef.num_nodes
    assert rebuilt.leaf_paths == graphdef.leaf_paths
    merged = nnx.merge(rebuilt, state)
    again, state_again = nnx.split(merged)
    assert again == graphdef
    _same_leaves(state_again, state)


@pytest.mark.parametrize(
    "name", ["containers_list_dict", "declared_data_and_static", "bare_variable", "dict_root"]
)
def test_flat_view_round_trips_in_tree_mode(name: str) -> None:
    obj = STRUCTURES[name]()
    graphdef, state = nnx.split(obj, graph=False)
    rebuilt = _roundtrip(graphdef)
    assert rebuilt == graphdef and hash(rebuilt) == hash(graphdef)
    merged = nnx.merge(rebuilt, state)
    assert nnx.graphdef(merged, graph=False) == graphdef


def test_round_trip_keeps_sharing_and_cycles() -> None:
    graphdef, state = nnx.split(Tree())
    model = nnx.merge(_roundtrip(graphdef), state)
    assert model.alias is model.left and model.me is model
    assert model.w_alias is model.right.w
    assert model.act == "relu" and model.left.size == 2


def test_round_trip_of_registered_types_keeps_their_static_data() -> None:
    graphdef, state = nnx.split(_bundle())
    bundle = nnx.merge(_roundtrip(graphdef), state)
    assert isinstance(bundle, Bundle) and bundle.label == "b1"
    assert bundle.entries["again"] is bundle.entries["leaf"] and bundle.entries["n"] == 3
    graphdef, state = nnx.split(STRUCTURES["registered_pytree_in_module"]())
    span = nnx.merge(_roundtrip(graphdef), state).s
    assert isinstance(span, Span) and span.unit == "m"
    # the registered types' static data is part of the structure
    other = nnx.graphdef(_spanned("cm"))
    assert _roundtrip(other) != graphdef


def test_split_context_graphdefs_round_trip_and_merge() -> None:
    shared = Leaf(8)
    first_obj, second_obj = nnx.Dict(a=shared), nnx.Dict(b=shared, c=Leaf(9))
    with nnx.split_context() as ctx:
        g1, s1 = ctx.split(first_obj)
        g2, s2 = ctx.split(second_obj)
    r1, r2 = _roundtrip(g1), _roundtrip(g2)
    assert (r1, r2) == (g1, g2) and hash(r2) == hash(g2)
    # the second refers to a node the first defined
    assert any(isinstance(n, NodeRef) for n in r2.nodes)
    with nnx.merge_context() as ctx:
        a = ctx.merge(r1, s1)
        b = ctx.merge(r2, s2)
    assert b["b"] is a["a"] and isinstance(b["c"], Leaf)


def test_flat_view_matches_flax_layout() -> None:
    """Containers are NodeDef headers with index None; a node entry precedes the
    entries of the node it stands for."""
    graphdef = nnx.graphdef(Holder())
    nodes, attributes = graphdef.nodes, graphdef.attributes
    assert all(isinstance(n, (NodeDef, VariableDef, NodeRef)) for n in nodes)
    containers = [n for n in nodes if isinstance(n, NodeDef) and n.index is None]
    assert {n.type for n in containers} >= {tuple, list, dict, OrderedDict, Point}
    own = sum(n.num_attributes for n in nodes if isinstance(n, NodeDef))
    assert own == len(attributes)
    kinds = dict(attributes[:3])  # Holder's first entries, sorted: config, empty, items
    assert kinds == {
        "config": Static({"depth": 2, "names": ("a", "b")}),
        "empty": NODE_ATTR,
        "items": NODE_ATTR,
    }
    assert (0, LEAF_ATTR) in attributes and (1, Static("tag")) in attributes
    keys = [k for k, _ in attributes]
    tup = keys.index("tup")
    # the tuple's entries follow it; the list's (its entry 2) come right after
    # entry 2, then entry 3 (a dict) and the dict's entries, sorted
    assert keys[tup + 1 : tup + 9] == [0, 1, 2, 0, 1, 3, "j", "k"]
    assert nodes[0].index == 0 and nodes[0].type is Holder


def test_static_root_is_a_single_attribute() -> None:
    graphdef = nnx.graphdef((1, "two"))
    assert graphdef.nodes == ()
    [(key, kind)] = graphdef.attributes
    assert key is None and kind == Static((1, "two"))


# ----------------------------------------------------------------- records
def test_nodedef_takes_flax_parameters() -> None:
    header = NodeDef(Leaf, 3, 7, 2, Leaf)
    assert isinstance(header, NodeDef) and type(header) is NodeDef
    assert (header.type, header.index, header.outer_index) == (Leaf, 3, 7)
    assert (header.num_attributes, header.metadata) == (2, Leaf)
    by_name = NodeDef(type=Leaf, index=3, outer_index=7, num_attributes=2, metadata=Leaf)
    assert by_name == header and hash(by_name) == hash(header)
    assert "NodeDef(type=Leaf, index=3, outer_index=7, num_attributes=2" in repr(header)
    container = NodeDef(tuple, None, None, 2, None)
    assert container.index is None and container.metadata is None


def test_nodedef_metadata_of_split_records() -> None:
    plain = nnx.graphdef(Leaf(0)).nodes[0]
    assert plain.metadata is Leaf  # as Flax: the type for a Module
    declared = nnx.graphdef(Declared()).nodes[0]
    assert declared.metadata == {"data_number": True, "label": False}
    rebuilt = NodeDef(Declared, 0, None, declared.num_attributes, declared.metadata)
    assert rebuilt.explicit == declared.explicit


def test_variabledef_takes_flax_parameters_and_equals_split_record() -> None:
    var = nnx.Param(jnp.ones(2), tag="t")
    vdef = VariableDef(nnx.Param, 0, None, var.get_metadata(), None)
    assert vdef == nnx.graphdef(var).nodes[0]
    assert hash(vdef) == hash(nnx.graphdef(var).nodes[0])
    assert (vdef.index, vdef.outer_index, vdef.array_refdef) == (0, None, None)
    with_outer = VariableDef(type=nnx.Param, index=0, outer_index=4, metadata={}, array_refdef=None)
    assert with_outer.outer_index == 4 and "outer_index=4" in repr(with_outer)


def test_records_survive_pickle_and_copy() -> None:
    records = [
        NodeDef(Leaf, 0, None, 3, Leaf),
        VariableDef(nnx.Param, 1, 2, {"a": 1}, None),
        NodeRef(0),
        *nnx.graphdef(Tree()).nodes,
    ]
    for record in records:
        for clone in (pickle.loads(pickle.dumps(record)), copy.copy(record)):
            assert clone == record and type(clone) is type(record)
    graphdef = nnx.graphdef(STRUCTURES["registered_pytree_in_module"]())
    assert pickle.loads(pickle.dumps(graphdef)) == graphdef
    assert copy.deepcopy(nnx.graphdef(Holder())) == nnx.graphdef(Holder())


# ----------------------------------------------------------------- written by hand
def test_hand_written_graphdef_merges() -> None:
    meta = nnx.Param(jnp.zeros(1)).get_metadata()
    stat_meta = nnx.BatchStat(jnp.zeros(1)).get_metadata()
    graphdef = GraphDef(
        nodes=[
            NodeDef(Leaf, 0, None, 3, Leaf),
            VariableDef(nnx.BatchStat, 1, None, stat_meta, None),
            VariableDef(nnx.Param, 2, None, meta, None),
        ],
        attributes=[("count", NODE_ATTR), ("size", Static(2)), ("w", NODE_ATTR)],
        num_leaves=2,
    )
    assert graphdef == nnx.graphdef(Leaf(0))  # the same structure split would give
    state = nnx.state(Leaf(4))
    model = nnx.merge(graphdef, state)
    assert isinstance(model, Leaf) and model.size == 2
    assert model.w.value.tolist() == [4.0, 4.0] and int(model.count.value) == 4


def test_hand_written_graphdef_with_containers_references_and_raw_arrays() -> None:
    meta = nnx.Param(jnp.zeros(1)).get_metadata()
    graphdef = GraphDef(
        [
            NodeDef(nnx.Dict, 0, None, 3, None),
            VariableDef(nnx.Param, 1, None, meta, None),
            NodeDef(list, None, None, 3, None),
            NodeRef(1),
        ],
        [
            ("a", NODE_ATTR),
            ("b", NODE_ATTR),
            (0, LEAF_ATTR),
            (1, NODE_ATTR),
            (2, Static("s")),
            ("c", Static(1.5)),
        ],
        2,
    )
    obj = nnx.merge(graphdef, {"a": jnp.ones(2), "b": {0: jnp.zeros(3)}})
    assert isinstance(obj, nnx.Dict) and obj["c"] == 1.5
    assert obj["b"][1] is obj["a"] and obj["b"][2] == "s"
    assert obj["b"][0].tolist() == [0.0, 0.0, 0.0]
    assert nnx.graphdef(obj) == graphdef


def test_outer_indices_from_headers_are_kept_off_equality() -> None:
    meta = nnx.Param(jnp.zeros(1)).get_metadata()
    plain = GraphDef(
        [NodeDef(Leaf, 0, None, 1, None), VariableDef(nnx.Param, 1, None, meta, None)],
        [("w", NODE_ATTR)],
        1,
    )
    outer = GraphDef(
        [NodeDef(Leaf, 0, 5, 1, None), VariableDef(nnx.Param, 1, 6, meta, None)],
        [("w", NODE_ATTR)],
        1,
    )
    assert plain == outer and hash(plain) == hash(outer)
    assert outer.with_no_outer_index() == outer


def test_outer_indices_of_a_graphdef_show_on_its_nodes_and_round_trip() -> None:
    def outer_indices(g: GraphDef[tp.Any]) -> list[tp.Any]:
        return [(n.index, n.outer_index) for n in g.nodes if not isinstance(n, NodeRef)]

    graphdef = nnx.graphdef(Tree())
    assert all(o is None for _, o in outer_indices(graphdef))
    inner = graphdef.with_same_outer_index()
    assert all(i == o for i, o in outer_indices(inner)) and len(outer_indices(inner)) == 7
    rebuilt = _roundtrip(inner)
    assert rebuilt == graphdef and outer_indices(rebuilt) == outer_indices(inner)
    assert all(o is None for _, o in outer_indices(rebuilt.with_no_outer_index()))


# ----------------------------------------------------------------- wrong input
def _meta() -> dict[str, tp.Any]:
    return nnx.Param(jnp.zeros(1)).get_metadata()


def test_too_few_attributes_for_num_attributes() -> None:
    with pytest.raises(ValueError) as info:
        GraphDef([NodeDef(Leaf, 0, None, 3, None)], [("size", Static(2))], 0)
    message = str(info.value)
    assert "nodes[0]" in message and "declares more attributes" in message
    assert "Expected 3 attribute(s)" in message and "found 1" in message
    assert "Fix: make each NodeDef's num_attributes" in message


def test_unused_attributes_and_nodes() -> None:
    with pytest.raises(ValueError, match=r"entries no node uses.*found 1 nodes and 1 attributes"):
        GraphDef([NodeDef(Leaf, 0, None, 1, None)], [("a", Static(1)), ("b", Static(2))], 0)
    extra_node = [NodeDef(Leaf, 0, None, 0, None), VariableDef(nnx.Param, 1, None, _meta(), None)]
    with pytest.raises(ValueError, match=r"use all 2 nodes.*found 1 nodes"):
        GraphDef(extra_node, [], 1)


def test_node_attribute_without_a_node() -> None:
    with pytest.raises(ValueError) as info:
        GraphDef([NodeDef(Leaf, 0, None, 1, None)], [("w", NODE_ATTR)], 1)
    message = str(info.value)
    assert "the attribute at model.w is a node entry" in message
    assert "no item left" in message and "Fix:" in message


def test_num_leaves_mismatch() -> None:
    nodes = [NodeDef(Leaf, 0, None, 2, None), VariableDef(nnx.Param, 1, None, _meta(), None)]
    attributes = [("a", LEAF_ATTR), ("w", NODE_ATTR)]
    with pytest.raises(ValueError) as info:
        GraphDef(nodes, attributes, 1)
    message = str(info.value)
    assert "Expected num_leaves=2" in message and "found num_leaves=1" in message
    assert "Fix: pass num_leaves=2" in message
    with pytest.raises(ValueError, match="an int >= 0; found -1"):
        GraphDef(nodes, attributes, -1)


def test_duplicate_index_and_forward_reference() -> None:
    meta = _meta()
    dup = [NodeDef(Leaf, 0, None, 1, None), VariableDef(nnx.Param, 0, None, meta, None)]
    with pytest.raises(ValueError, match=r"defines node index 0 again.*NodeRef\(index\)"):
        GraphDef(dup, [("w", NODE_ATTR)], 1)
    forward = [
        NodeDef(Leaf, 0, None, 2, None),
        NodeRef(1),
        VariableDef(nnx.Param, 1, None, meta, None),
    ]
    with pytest.raises(ValueError, match=r"nodes\[1\] refers to node 1 before nodes\[2\]"):
        GraphDef(forward, [("a", NODE_ATTR), ("b", NODE_ATTR)], 1)


def test_wrong_types_for_index_none_or_index() -> None:
    with pytest.raises(ValueError, match=r"index=None.*Leaf is not one.*Fix: give graph nodes"):
        GraphDef([NodeDef(Leaf, None, None, 0, None)], [], 0)
    with pytest.raises(ValueError, match=r"tuple is not a graph node.*Fix: use index=None"):
        GraphDef([NodeDef(tuple, 0, None, 0, None)], [], 0)


def test_wrong_entries() -> None:
    with pytest.raises(TypeError, match=r"nodes\[0\].*is a str.*Expected a NodeDef"):
        GraphDef(["Leaf"], [], 0)
    with pytest.raises(TypeError, match=r"attributes\[0\] is 'w'.*Expected a \(key, kind\) pair"):
        GraphDef([NodeDef(Leaf, 0, None, 1, None)], ["w"], 0)
    with pytest.raises(TypeError, match=r"attributes\[0\] has kind 3.*NODE_ATTR, LEAF_ATTR"):
        GraphDef([NodeDef(Leaf, 0, None, 1, None)], [("w", 3)], 0)
    with pytest.raises(ValueError, match="single leaf or a static value"):
        GraphDef([], [], 0)


def test_record_constructor_errors() -> None:
    with pytest.raises(TypeError, match=r"NodeDef\(type=...\): expected a class.*found 'Leaf'"):
        NodeDef("Leaf", 0, None, 0, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"NodeDef\(index=...\).*found -1"):
        NodeDef(Leaf, -1, None, 0, None)
    with pytest.raises(ValueError, match=r"num_attributes.*found 1.5"):
        NodeDef(Leaf, 0, None, 1.5, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"subclass of Variable.*Fix: pass the class itself"):
        VariableDef(Leaf, 0, None, {}, None)
    with pytest.raises(ValueError, match=r"array_refdef=...\): expected None.*Fix: pass"):
        VariableDef(nnx.Param, 0, None, {}, object())
    with pytest.raises(TypeError, match=r"metadata=...\): expected a mapping.*found list"):
        VariableDef(nnx.Param, 0, None, [1], None)
    with pytest.raises(ValueError, match=r"RefDef\(index=...\).*found 'a'"):
        NodeRef("a")  # type: ignore[arg-type]
