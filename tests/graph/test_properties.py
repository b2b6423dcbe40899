"""Property tests: random object graphs (nesting, shared Variables and Modules,
cycles, nnx.List/nnx.Dict, plain lists/tuples) survive split->merge, clone, update
and to_pure_dict->replace_by_pure_dict with their values, their sharing (identity
structure) and their structure (GraphDef equality).

A graph is drawn as a *recipe* (plain data) and built by ``build``; building the same
recipe twice gives two independent, structurally identical graphs.
"""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnx_graph as nnx

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Count(nnx.Variable):
    pass


class NodeA(nnx.Module):
    pass


class NodeB(nnx.Module):
    pass


VAR_TYPES = (nnx.Param, nnx.BatchStat, Count)
NODE_TYPES = (NodeA, NodeB)
SHAPES = ((), (2,), (1, 2))
ATTRS = ("a", "b", "c", "d")
KEYS = (0, 1, "x", "y", "7")  # "7": a genuine string key made of digits


# ----------------------------------------------------------------- recipes
MAX_NODES = MAX_VARS = 4


def _items() -> st.SearchStrategy[tp.Any]:
    # Node and Variable references are drawn in range(MAX_*) and taken modulo the
    # recipe's actual counts by ``build``: one strategy object, built once.
    leaf = st.one_of(
        st.tuples(st.just("var"), st.integers(0, MAX_VARS - 1)),
        st.tuples(st.just("node"), st.integers(0, MAX_NODES - 1)),
        st.tuples(st.just("arr"), st.integers(0, len(SHAPES) - 1), st.integers(-3, 3)),
        st.tuples(st.just("static"), st.one_of(st.integers(0, 3), st.sampled_from("pq"))),
    )

    def extend(children: st.SearchStrategy[tp.Any]) -> st.SearchStrategy[tp.Any]:
        seq = st.lists(children, max_size=3)
        keyed = st.lists(
            st.tuples(st.sampled_from(KEYS), children), max_size=3, unique_by=lambda kv: kv[0]
        )
        return st.one_of(
            st.tuples(st.just("List"), seq),
            st.tuples(st.just("list"), seq),
            st.tuples(st.just("tuple"), seq),
            st.tuples(st.just("Dict"), keyed),
        )

    return st.recursive(leaf, extend, max_leaves=6)


ITEMS = _items()
VARIABLE = st.tuples(
    st.integers(0, len(VAR_TYPES) - 1),
    st.integers(0, len(SHAPES) - 1),
    st.integers(-5, 5),
    st.one_of(st.none(), st.sampled_from(["t", "u"])),
)
NODE = st.tuples(
    st.integers(0, len(NODE_TYPES) - 1),
    st.lists(
        st.tuples(
            st.sampled_from(ATTRS),
            # "data": a non-array value marked nnx.data(...) (a leaf stored on the node)
            st.one_of(ITEMS, st.tuples(st.just("data"), st.integers(0, 3))),
        ),
        max_size=3,
        unique_by=lambda a: a[0],
    ),
)
RECIPES = st.fixed_dictionaries(
    {
        "vars": st.lists(VARIABLE, min_size=1, max_size=MAX_VARS),
        "nodes": st.lists(NODE, min_size=1, max_size=MAX_NODES),
    }
)


def recipes() -> st.SearchStrategy[dict[str, tp.Any]]:
    return RECIPES


def array(shape_index: int, value: float) -> jax.Array:
    # jnp.asarray of a numpy array is a transfer, not a compiled op: keeps this fast
    return jnp.asarray(np.full(SHAPES[shape_index], value, np.float32))


def build(recipe: dict[str, tp.Any], offset: float = 0.0) -> tp.Any:
    """A fresh object graph for ``recipe`` (array values shifted by ``offset``)."""
    variables = []
    for type_index, shape_index, value, tag in recipe["vars"]:
        metadata = {} if tag is None else {"tag": tag}
        variables.append(VAR_TYPES[type_index](array(shape_index, value + offset), **metadata))
    nodes = [object.__new__(NODE_TYPES[t]) for t, _ in recipe["nodes"]]

    def make(item: tp.Any) -> tp.Any:
        kind = item[0]
        if kind == "var":
            return variables[item[1] % len(variables)]
        if kind == "node":
            return nodes[item[1] % len(nodes)]
        if kind == "arr":
            return array(item[1], item[2] + offset)
        if kind == "static":
            return item[1]
        if kind == "Dict":
            return nnx.Dict({k: make(v) for k, v in item[1]})
        children = [make(c) for c in item[1]]
        return {"List": nnx.List, "list": list, "tuple": tuple}[kind](children)

    for node, (_, attrs) in zip(nodes, recipe["nodes"]):
        for name, item in attrs:
            if item[0] == "data":
                setattr(node, name, nnx.data(item[1] + int(offset)))
            else:
                setattr(node, name, make(item))
    return nodes[0]


# ----------------------------------------------------------------- canonical form
def canonical(root: tp.Any) -> tp.Any:
    """A description of the graph reachable from ``root`` that is equal for two
    graphs exactly when they have the same types, static values, array values,
    metadata and the same sharing (objects are numbered in first-visit order).
    Independent of the library's own traversal."""
    numbers: dict[int, int] = {}

    def go(value: tp.Any) -> tp.Any:
        if isinstance(value, (nnx.Variable, nnx.Pytree, nnx.List, nnx.Dict)):
            if id(value) in numbers:
                return ("ref", numbers[id(value)])
            numbers[id(value)] = len(numbers)
            number = numbers[id(value)]
            if isinstance(value, nnx.Variable):
                return (
                    type(value).__name__,
                    number,
                    np.asarray(value.raw_value).tolist(),
                    sorted(value.get_metadata().items()),
                )
            if isinstance(value, nnx.Pytree):
                attrs = sorted((k, v) for k, v in vars(value).items() if not k.startswith("_"))
                return (type(value).__name__, number, [(k, go(v)) for k, v in attrs])
            if isinstance(value, nnx.List):
                return ("List", number, [go(v) for v in value])
            keys = sorted(value, key=repr)
            return ("Dict", number, [(k, go(dict.__getitem__(value, k))) for k in keys])
        if isinstance(value, jax.Array):
            return ("array", value.shape, np.asarray(value).tolist())
        if type(value) in (list, tuple):
            return (type(value).__name__, [go(v) for v in value])
        return ("static", value)

    return go(root)


def variables_by_path(root: tp.Any) -> dict[tuple[tp.Any, ...], nnx.Variable[tp.Any]]:
    return {p: v for p, v in nnx.iter_graph(root) if isinstance(v, nnx.Variable)}


def stringify_int_keys(tree: tp.Any) -> tp.Any:
    if isinstance(tree, dict):
        return {str(k) if type(k) is int else k: stringify_int_keys(v) for k, v in tree.items()}
    return tree


# ----------------------------------------------------------------- properties
@SETTINGS
@given(recipes())
def test_split_merge_round_trip(recipe):
    root = build(recipe)
    before = canonical(root)
    gdef, state = nnx.split(root)
    merged = nnx.merge(gdef, state)
    assert canonical(merged) == before
    assert canonical(root) == before  # split does not modify
    assert nnx.graphdef(merged) == gdef and hash(nnx.graphdef(merged)) == hash(gdef)
    # merge reuses the Variables: the merged graph shares them with the original
    assert all(v is variables_by_path(root)[p] for p, v in variables_by_path(merged).items())


@SETTINGS
@given(recipes())
def test_split_with_filters_then_merge(recipe):
    root = build(recipe)
    gdef, params, counts, rest = nnx.split(root, nnx.Param, Count, ...)
    merged = nnx.merge(gdef, params, counts, rest)
    assert canonical(merged) == canonical(root)
    assert all(isinstance(v, nnx.Param) for v in params.flat_state().leaves)


@SETTINGS
@given(recipes())
def test_merge_after_pytree_round_trip_of_the_state(recipe):
    root = build(recipe)
    gdef, state = nnx.split(root)
    state2 = jax.tree.map(lambda x: x, state)
    merged = nnx.merge(gdef, state2)
    assert canonical(merged) == canonical(root)
    merged_copy = nnx.merge(gdef, state, copy=True)
    assert canonical(merged_copy) == canonical(root)
    assert not any(
        v is variables_by_path(root)[p] for p, v in variables_by_path(merged_copy).items()
    )


@SETTINGS
@given(recipes())
def test_clone(recipe):
    root = build(recipe)
    cloned = nnx.clone(root)
    assert canonical(cloned) == canonical(root)
    assert nnx.graphdef(cloned) == nnx.graphdef(root)
    originals = {id(v) for v in variables_by_path(root).values()}
    assert not any(id(v) in originals for v in variables_by_path(cloned).values())
    nodes = {id(n) for _, n in nnx.iter_graph(root) if nnx.is_data(n)}
    assert id(cloned) not in nodes


@SETTINGS
@given(recipes())
def test_graphdef_equal_for_equal_structure_any_values(recipe):
    a, b = build(recipe), build(recipe, offset=10.0)
    assert nnx.graphdef(a) == nnx.graphdef(b)
    assert hash(nnx.graphdef(a)) == hash(nnx.graphdef(b))


@SETTINGS
@given(recipes())
def test_update(recipe):
    root, other = build(recipe), build(recipe, offset=1.0)
    vars_before = variables_by_path(root)
    nnx.update(root, nnx.state(other))
    assert canonical(root) == canonical(other)
    vars_after = variables_by_path(root)
    assert vars_after.keys() == vars_before.keys()
    assert all(vars_after[p] is vars_before[p] for p in vars_before)  # in place


@SETTINGS
@given(recipes(), st.booleans())
def test_pure_dict_round_trip(recipe, string_keys):
    source, target = build(recipe), build(recipe, offset=3.0)
    pure = nnx.state(source).to_pure_dict()
    if string_keys:  # as a checkpoint format that only has string keys stores it
        pure = stringify_int_keys(pure)
    state = nnx.state(target)
    state.replace_by_pure_dict(pure)
    nnx.update(target, state)
    assert canonical(target) == canonical(source)
    assert nnx.graphdef(target) == nnx.graphdef(source)
