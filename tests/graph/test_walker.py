"""Typed GraphDef records, the iterative walker, and graphs nested far beyond
Python's recursion limit."""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph._graphdef import (
    ArrayDef,
    ContainerDef,
    NodeDef,
    RefDef,
    StaticDef,
    VariableDef,
    flatten_graph,
    walk,
)


class Block(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.ones(2))
        self.stat = nnx.BatchStat(jnp.zeros(2))
        self.size = 2
        self.raw = jnp.arange(3)
        self.pair = (jnp.ones(1), "label")


class Net(nnx.Module):
    def __init__(self):
        self.a = Block()
        self.b = self.a  # shared
        self.blocks = nnx.List([Block(), Block()])


def test_records_are_typed_hashable_and_named():
    gdef = nnx.graphdef(Net())
    root = gdef.record
    assert isinstance(root, NodeDef) and root.type is Net and root.node_index == 0
    kinds = {type(v.record) for v in walk(gdef)}
    assert kinds == {NodeDef, VariableDef, RefDef, ArrayDef, StaticDef, ContainerDef}
    assert hash(gdef) == hash(nnx.graphdef(Net()))
    assert gdef == nnx.graphdef(Net())
    # the shared Block is a RefDef naming the node index of its first visit
    refs = [v for v in walk(gdef) if isinstance(v.record, RefDef)]
    assert [v.path for v in refs] == [("b",)]
    first = next(v for v in walk(gdef) if v.path == ("a",))
    assert refs[0].record.node_index == first.record.node_index


def test_walk_visits_leaves_in_leaf_order_with_owner_and_subpath():
    net = Net()
    flat = flatten_graph(net)
    visits = [v for v in walk(flat.graphdef) if isinstance(v.record, (VariableDef, ArrayDef))]
    assert [v.path for v in visits] == list(flat.graphdef.leaf_paths)
    pair_leaf = next(v for v in visits if v.path == ("a", "pair", 0))
    # an array inside a tuple attribute: owner is the Block, attr "pair", sub (0,)
    assert flat.nodes[pair_leaf.owner] is net.a
    assert (pair_leaf.attr, pair_leaf.sub) == ("pair", (0,))


def test_walk_closing_visits_come_after_children():
    gdef = nnx.graphdef(Net())
    order = [(v.path, v.closing) for v in walk(gdef, closing=True)]
    assert order[0] == ((), False) and order[-1] == ((), True)
    assert order.index((("a",), True)) > order.index((("a", "w"), False))


def test_graphdef_is_generic_and_merge_keeps_type():
    net = Net()
    gdef, state = nnx.split(net)
    assert nnx.GraphDef[Net] is not None  # subscriptable in annotations
    out: Net = nnx.merge(gdef, state)
    assert type(out) is Net and out.a is out.b


class Chain(nnx.Module):
    def __init__(self, child, i, with_param):
        self.child = child
        self.level = i
        if with_param:
            self.w = nnx.Param(np.full((1,), float(i)))


def _chain(n, *, every=1):
    node = None
    for i in range(n):
        node = Chain(node, i, i % every == 0)
    return node


DEPTH = 10_000


@pytest.fixture(scope="module")
def deep():
    """10,000 nested Modules (ten times Python's recursion limit), a Variable on
    every 1,000th level (paths are as long as the graph is deep, so a leaf on every
    level makes the States quadratic in size; that part is tested below)."""
    assert 5 * sys.getrecursionlimit() < DEPTH
    return _chain(DEPTH, every=1000)


def _depth(node):
    count = 0
    while node is not None:
        count += 1
        node = node.child
    return count


def test_deep_chain_split_merge_clone(deep):
    gdef, state = nnx.split(deep)
    assert gdef.num_leaves == DEPTH // 1000
    back = nnx.merge(gdef, state)
    assert _depth(back) == DEPTH and back.level == DEPTH - 1
    copy = nnx.clone(deep)
    assert _depth(copy) == DEPTH and copy is not deep
    bottom = copy
    while bottom.child is not None:
        bottom = bottom.child
    assert bottom.w is not deep.child.child  # new Variables
    assert float(bottom.w.value[0]) == 0.0
    assert gdef == nnx.graphdef(copy)  # equality survives the depth too


def test_deep_chain_repr_and_iter_graph(deep):
    text = repr(deep)
    assert text.startswith("Chain(") and text.count("Chain(") == DEPTH
    assert len(text) < 400 * DEPTH  # indentation is capped: linear in the depth
    assert next(p for p, v in nnx.iter_graph(deep) if isinstance(v, nnx.Param))[-1] == "w"
    assert repr(nnx.graphdef(deep)).startswith("GraphDef(Chain(child=Chain(")


def test_deep_chain_with_a_variable_on_every_level():
    chain = _chain(3000)  # a RecursionError before the walker was iterative
    gdef, state = nnx.split(chain)
    assert gdef.num_leaves == 3000 and len(state.flat_state()) == 3000
    back = nnx.merge(gdef, state)
    assert _depth(back) == 3000 and back.w is chain.w
    assert repr(state).startswith("State({")
    # nodes, Params and the static `level`s, plus the bottom `child=None`
    assert len(list(nnx.iter_graph(chain))) == 3 * 3000 + 1
    nnx.update(chain, state)
