"""nnx.List and nnx.Dict are Modules (as in Flax 0.12.8) that stay list/dict subclasses.

Every graph function must treat them as item containers, never as attribute bags
(a List walked as a Pytree has no attributes: its items would silently vanish).
Each test below would fail if one dispatch site checked Pytree before List/Dict.
"""

from __future__ import annotations

import copy
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx


class Block(nnx.Module):
    def __init__(self, n: int) -> None:
        self.w = nnx.Param(jnp.full((2,), float(n)))
        self.deterministic = False

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.w


class Stack(nnx.List):  # a user subclass of nnx.List
    def total(self) -> jax.Array:
        return sum(b.w.value.sum() for b in self if isinstance(b, Block))


class Model(nnx.Module):
    def __init__(self) -> None:
        self.blocks = nnx.List([Block(1), Block(2)])
        self.stack = Stack([Block(3), 7, nnx.List([Block(4)])])
        self.heads = nnx.Dict(
            a=Block(5), b=nnx.Dict(c=Block(6), n=8), s=[nnx.BatchStat(jnp.ones(1))]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for b in self.blocks:
            x = b(x)
        return self.heads.a(self.heads.b.c(x)) + self.stack.total()


LEAF_PATHS = [
    ("blocks", 0, "w"),
    ("blocks", 1, "w"),
    ("heads", "a", "w"),
    ("heads", "b", "c", "w"),
    ("heads", "s", 0),
    ("stack", 0, "w"),
    ("stack", 2, 0, "w"),
]


def _paths(state: nnx.State) -> list[tuple[object, ...]]:
    return sorted(state.flat_state().paths, key=str)


def test_list_and_dict_are_modules_and_pytrees_and_builtin_containers() -> None:
    assert issubclass(nnx.List, nnx.Module) and issubclass(nnx.List, nnx.Pytree)
    assert issubclass(nnx.Dict, nnx.Module) and issubclass(nnx.Dict, nnx.Pytree)
    assert isinstance(nnx.List([1]), list) and isinstance(nnx.Dict(a=1), dict)
    assert nnx.List([1, 2]) == [1, 2] and nnx.Dict(a=1) == {"a": 1}
    with pytest.raises(TypeError, match="unhashable"):
        hash(nnx.List())


def test_state_split_merge_keep_every_item_of_nested_lists_dicts_and_subclasses() -> None:
    m = Model()
    assert _paths(nnx.state(m)) == sorted(LEAF_PATHS, key=str)
    graphdef, state = nnx.split(m)
    m2 = nnx.merge(graphdef, state)
    assert type(m2.stack) is Stack and type(m2.stack[2]) is nnx.List
    assert type(m2.heads) is nnx.Dict and type(m2.heads.b) is nnx.Dict
    assert m2.stack[1] == 7 and m2.heads.b.n == 8
    assert float(m2.stack.total()) == float(m.stack.total()) == 6.0
    x = jnp.ones(2)
    np.testing.assert_allclose(m2(x), m(x))


def test_update_and_clone_reach_items() -> None:
    m = Model()
    state = nnx.state(m)
    state["stack"][2][0]["w"].value = jnp.zeros(2)
    state["heads"]["b"]["c"]["w"].value = jnp.zeros(2)
    nnx.update(m, state)
    assert m.stack[2][0].w.value.tolist() == [0.0, 0.0]
    assert m.heads.b.c.w.value.tolist() == [0.0, 0.0]
    c = nnx.clone(m)
    assert type(c.stack) is Stack and c.stack[0].w is not m.stack[0].w
    assert _paths(nnx.state(c)) == _paths(nnx.state(m))


def test_jax_tree_flatten_uses_items_and_rebuilds_the_subclass() -> None:
    s = Stack([nnx.Param(jnp.ones(1)), "static", jnp.zeros(2)])
    leaves, treedef = jax.tree.flatten(s)
    assert len(leaves) == 2  # the Param's array and the plain array; the str is static
    back = jax.tree.unflatten(treedef, leaves)
    assert type(back) is Stack and back[1] == "static"
    d = nnx.Dict(x=jnp.ones(1), y=nnx.Param(jnp.zeros(1)))
    assert len(jax.tree.leaves(d)) == 2
    assert type(jax.tree.map(lambda a: a, d)) is nnx.Dict


def test_jit_and_vmap_carry_list_and_dict_items() -> None:
    m = Model()

    @nnx.jit
    def step(model: Model) -> jax.Array:
        model.stack[2][0].w.value += 1.0
        model.heads.b.c.w.value += 1.0
        return model(jnp.ones(2))

    out = step(m)
    assert m.stack[2][0].w.value.tolist() == [5.0, 5.0]
    assert m.heads.b.c.w.value.tolist() == [7.0, 7.0]
    assert out.shape == (2,)

    @nnx.vmap(in_axes=(None, 0))
    def apply(model: Model, x: jax.Array) -> jax.Array:
        return model.blocks[1](x) + model.stack[2][0](x)

    assert apply(m, jnp.ones((3, 2))).shape == (3, 2)


def test_iter_modules_children_and_modes_treat_them_as_modules() -> None:
    m = Model()
    paths = [p for p, _ in nnx.iter_modules(m)]
    assert ("blocks",) in paths and ("stack",) in paths and ("stack", 2) in paths
    assert ("heads",) in paths and ("heads", "b") in paths
    assert ("stack", 2, 0) in paths and ("heads", "b", "c") in paths
    assert [k for k, _ in m.iter_children()] == ["blocks", "heads", "stack"]
    assert [k for k, _ in nnx.iter_children(m.stack)] == [0, 2]
    m.eval()
    assert m.stack[2][0].deterministic and m.heads.b.c.deterministic
    m.stack.train()
    assert not m.stack[2][0].deterministic and m.heads.b.c.deterministic


def test_repr_and_text_display_show_items() -> None:
    m = Model()
    text = repr(m)
    assert "stack=Stack([" in text or "stack=List([" in text
    assert "'c': Block(" in text and "7," in text
    nnx_viz = pytest.importorskip("nnx_viz")
    shown = nnx_viz.render_text(m)
    assert "'n': 8" in shown and "7," in shown


def test_setting_a_list_attribute_raises_instead_of_dropping_it() -> None:
    layers = nnx.List([Block(1)])
    with pytest.raises(AttributeError, match=r"'List' object attribute 'scale' cannot be set"):
        layers.scale = 2.0  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="store the value as an item"):
        Stack().name = "x"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="cannot be delete"):
        del layers.scale  # type: ignore[attr-defined]

    class Named(nnx.List):  # a property with a setter runs the subclass's own code
        @property
        def first(self) -> object:
            return self[0]

        @first.setter
        def first(self, value: object) -> None:
            self[0] = value

    n = Named([1])
    n.first = 5
    assert n == [5]


def test_dict_attributes_are_items() -> None:
    d = nnx.Dict()
    d.block = Block(1)
    assert "block" in d and list(nnx.state(d)) == ["block"]
    del d.block
    assert d == {}


def test_copy_and_pickle_keep_subclass_and_items() -> None:
    s = Stack([Block(1), 2])
    for c in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert type(c) is Stack and c[1] == 2 and float(c.total()) == 2.0
        c.append(3)  # a copy is a working container (creation trace of its own)
        assert len(c) == 3
    d = nnx.Dict(a=Block(1))
    d2 = pickle.loads(pickle.dumps(d))
    assert type(d2) is nnx.Dict and float(d2.a.w.value[0]) == 1.0


def test_pop_and_capture_work_through_list_items() -> None:
    class Sower(nnx.Module):
        def __call__(self, x: jax.Array) -> jax.Array:
            self.sow(nnx.Intermediate, "h", x)
            return x

    class Net(nnx.Module):
        def __init__(self) -> None:
            self.layers = nnx.List([Sower(), Sower()])

        def __call__(self, x: jax.Array) -> jax.Array:
            for layer in self.layers:
                x = layer(x)
            return x

    net = Net()
    net(jnp.ones(1))
    popped = nnx.pop(net, nnx.Intermediate)
    assert sorted(popped.flat_state().paths) == [("layers", 0, "h"), ("layers", 1, "h")]
    assert not hasattr(net.layers[0], "h")
    # method outputs: the List's own methods (append, ...) are not wrapped
    _, outs = nnx.capture(net, nnx.Intermediate, method_outputs=nnx.Intermediate)(jnp.ones(1))
    assert all(p[0] == "layers" or p == ("__call__",) for p in outs.flat_state().paths)


# ------------------------------------------------ nnx.data / nnx.static items
def test_marked_items_decide_what_is_a_leaf() -> None:
    ls = nnx.List([nnx.data(1), nnx.static("tag"), jnp.zeros(1), 3])
    leaves, treedef = jax.tree.flatten(ls)
    assert leaves[0] == 1 and leaves[1].shape == (1,)
    back = jax.tree.unflatten(treedef, [10, jnp.ones(1)])
    assert back[0] == 10 and back[1] == "tag" and back[3] == 3
    # the graph API agrees: the data-marked int is state, the plain int is not
    assert sorted(nnx.state(ls).flat_state().paths) == [(0,), (2,)]
    graphdef, state = nnx.split(ls)
    again = nnx.merge(graphdef, state)
    assert len(jax.tree.leaves(again)) == 2 and again[0] == 1


def test_marked_kinds_follow_their_items_through_mutation() -> None:
    ls = nnx.List([nnx.data(1), 2])
    ls.insert(0, 3)  # the data-marked 1 moves to index 1 and stays data
    assert jax.tree.leaves(ls) == [1]
    ls.append(nnx.data(4))
    ls.reverse()
    assert jax.tree.leaves(ls) == [4, 1]
    del ls[0]
    ls.sort()
    assert list(ls) == [1, 2, 3] and jax.tree.leaves(ls) == [1]
    ls[2] = nnx.data(5)
    assert jax.tree.leaves(ls) == [1, 5]
    ls.clear()
    ls.append(6)
    assert jax.tree.leaves(ls) == []


def test_static_marked_item_holding_data_raises() -> None:
    with pytest.raises(ValueError, match=r"annotated with nnx.static\(\.\.\.\).*List"):
        nnx.List([nnx.static(jnp.ones(1))])


def test_jit_carries_data_marked_items_and_keeps_static_ones() -> None:
    ls = nnx.List([nnx.data(jnp.array(1.0)), nnx.static(999)])
    out = jax.jit(lambda x: jax.tree.map(lambda a: a * 2, x))(ls)
    assert float(out[0]) == 2.0 and out[1] == 999


# ---------------------------------- plain lists/dicts converted on assignment
class Holder(nnx.Module):
    def __init__(self) -> None:
        self.explicit = nnx.List([Block(1)])
        self.plain = [{"b": Block(2)}]  # becomes nnx.List/nnx.Dict, tracked
        self.marked = nnx.data([Block(3)])


def _module_paths(node: object) -> list[tuple[object, ...]]:
    return [p for p, _ in nnx.iter_modules(node)]


def test_converted_plain_containers_are_not_listed_as_modules_like_flax() -> None:
    h = Holder()
    assert type(h.plain) is nnx.List and type(h.plain[0]) is nnx.Dict
    expected = [
        ("explicit", 0),
        ("explicit",),
        ("marked", 0),
        ("plain", 0, "b"),
        (),
    ]
    assert _module_paths(h) == expected
    assert [k for k, _ in h.iter_children()] == ["explicit"]
    assert [k for k, _ in nnx.iter_children(h)] == ["explicit"]
    # the distinction survives every way of rebuilding the object
    rebuilt = [
        nnx.merge(*nnx.split(h)),
        nnx.clone(h),
        jax.tree.map(lambda a: a, h),
        copy.deepcopy(h),
        pickle.loads(pickle.dumps(h)),
    ]
    for other in rebuilt:
        assert _module_paths(other) == expected

    @nnx.jit
    def grow(holder: Holder) -> None:
        holder.plain[0]["b"].w.value += 1.0

    grow(h)
    assert _module_paths(h) == expected and float(h.plain[0]["b"].w.value[0]) == 3.0
