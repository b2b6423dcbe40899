"""Names nnx provides for Flax compatibility: the TypeVar ``A``, ``iter_module_children``,
``Metric``/``MultiMetric`` at the top level, ``nnx.compat``, ``nnx.traversals``,
``nnx.filterlib.PathIn``/``HasTag`` and ``nnx.module.first_from``."""

from __future__ import annotations

import functools
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx


class Block(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.linear = nnx.Linear(2, 3, rngs=rngs)
        self.scale = nnx.Param(jnp.full(3, 2.0))
        self.items = nnx.List([nnx.Linear(3, 3, rngs=rngs)])

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.items[0](self.linear(x)) * self.scale


def test_top_level_typevar_and_metrics() -> None:
    assert isinstance(nnx.A, tp.TypeVar)
    assert issubclass(nnx.MultiMetric, nnx.Metric)
    metric = nnx.MultiMetric(loss=nnx.metrics.Average("loss"))
    metric.update(loss=jnp.array([1.0, 3.0]))
    assert float(metric.compute()["loss"]) == 2.0


def test_iter_module_children_yields_direct_module_children() -> None:
    block = Block(nnx.Rngs(0))
    children = list(nnx.iter_module_children(block))
    # an explicit nnx.List is a Module (as in Flax); the Param is not
    assert [key for key, _ in children] == ["items", "linear"]
    assert children[0][1] is block.items and children[1][1] is block.linear
    # iter_children also yields the Variable.
    assert {key for key, _ in nnx.iter_children(block)} >= {"linear", "scale", "items"}


def test_compat_binds_graph_mode() -> None:
    for name in ("jit", "grad", "vmap", "scan", "value_and_grad", "remat", "split"):
        fn = getattr(nnx.compat, name)
        assert isinstance(fn, functools.partial)
        assert fn.func is getattr(nnx, name)
        assert fn.keywords.get("graph") is True
    assert nnx.compat.jit.keywords.get("graph_updates") is True


def test_compat_functions_run_like_the_plain_ones() -> None:
    block = Block(nnx.Rngs(0))
    x = jnp.ones((4, 2))

    @nnx.compat.jit
    def forward(model: Block, x: jax.Array) -> jax.Array:
        return model(x)

    np.testing.assert_allclose(forward(block, x), block(x), rtol=1e-6)
    graphdef, state = nnx.compat.split(block)
    np.testing.assert_allclose(nnx.merge(graphdef, state)(x), block(x), rtol=1e-6)
    grads = nnx.compat.grad(lambda m: m(x).sum())(block)
    assert grads["scale"].value.shape == (3,)


def test_traversals_flatten_and_unflatten() -> None:
    nested = {"a": {"b": 1, "c": {"d": 2}}, "e": 3, "empty": {}}
    flat = nnx.traversals.flatten_mapping(nested)
    assert flat == {("a", "b"): 1, ("a", "c", "d"): 2, ("e",): 3}
    assert nnx.traversals.unflatten_mapping(flat) == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    kept = nnx.traversals.flatten_mapping(nested, keep_empty_nodes=True)
    assert kept[("empty",)] is nnx.traversals.empty_node
    assert nnx.traversals.unflatten_mapping(kept) == nested
    joined = nnx.traversals.flatten_mapping(nested, sep="/")
    assert joined == {"a/b": 1, "a/c/d": 2, "e": 3}
    assert nnx.traversals.unflatten_mapping(joined, sep="/")["a"]["c"] == {"d": 2}
    stop = nnx.traversals.flatten_mapping(nested, is_leaf=lambda path, _: path == ("a", "c"))
    assert stop[("a", "c")] == {"d": 2}
    assert nnx.traversals.flatten_to_sequence(nested) == [
        (("a", "b"), 1),
        (("a", "c", "d"), 2),
        (("e",), 3),
    ]


def test_traversals_errors_name_the_problem() -> None:
    with pytest.raises(
        TypeError, match=r"path \('a', 'b'\) goes through \('a',\), which is a leaf \(1\)"
    ):
        nnx.traversals.unflatten_mapping({("a",): 1, ("a", "b"): 2})
    with pytest.raises(TypeError, match=r"expected a Mapping .* found list"):
        nnx.traversals.flatten_mapping([1, 2])  # type: ignore[arg-type]


def test_path_in_filter_selects_exact_paths() -> None:
    block = Block(nnx.Rngs(0))
    selected = nnx.state(block, nnx.filterlib.PathIn(("linear", "kernel"), ("scale",)))
    paths = sorted(path for path, _ in nnx.to_flat_state(selected))
    assert paths == [("linear", "kernel"), ("scale",)]
    f = nnx.filterlib.PathIn(("scale",))
    assert f == nnx.filterlib.PathIn(("scale",)) and hash(f) == hash(
        nnx.filterlib.PathIn(("scale",))
    )
    assert repr(f) == "PathIn(('scale',))"
    with pytest.raises(TypeError, match="each path to be a tuple of keys, found 'a/b'"):
        nnx.filterlib.PathIn("a/b")  # type: ignore[arg-type]


def test_has_tag_is_a_structural_type() -> None:
    class Tagged:
        tag = "dropout"

    assert isinstance(Tagged(), nnx.filterlib.HasTag)
    assert not isinstance(object(), nnx.filterlib.HasTag)


def test_first_from_returns_the_first_given_value() -> None:
    assert nnx.module.first_from(None, 0, 5, error_msg="unused") == 0
    with pytest.raises(ValueError, match="no deterministic flag"):
        nnx.module.first_from(None, None, error_msg="no deterministic flag")


def test_summary_is_flax_module_path_with_tabulate() -> None:
    import types

    assert isinstance(nnx.summary, types.ModuleType)
    table = nnx.summary.tabulate(Block(nnx.Rngs(0)), jnp.ones((1, 2)))
    assert "Block Summary" in table and "Linear" in table


def test_is_node_matches_what_the_graph_api_descends_into() -> None:
    block = Block(nnx.Rngs(0))
    assert nnx.graphlib.is_node(block) and nnx.graphlib.is_node(block.items)
    assert nnx.graphlib.is_node((1, 2)) and nnx.graphlib.is_node({"a": 1})
    assert not nnx.graphlib.is_node(block.scale)  # a Variable
    assert not nnx.graphlib.is_node(jnp.ones(2)) and not nnx.graphlib.is_node(3)


def test_statelib_diff_keeps_the_new_paths() -> None:
    new = nnx.State({"a": jnp.ones(1), "b": {"c": jnp.zeros(2), "d": jnp.ones(3)}})
    old = nnx.State({"a": jnp.ones(1), "b": {"c": jnp.zeros(2)}})
    paths = [path for path, _ in nnx.to_flat_state(nnx.statelib.diff(new, old))]
    assert paths == [("b", "d")]
    assert nnx.statelib.diff(new, nnx.State({})) is new


def test_get_var_pspec_reads_the_sharding_annotation() -> None:
    from jax.sharding import PartitionSpec

    annotated = nnx.Param(jnp.zeros((2, 4)), sharding_names=(None, "model"))
    assert nnx.spmd.get_var_pspec(annotated) == PartitionSpec(None, "model")
    assert nnx.spmd.get_var_pspec(nnx.Param(jnp.zeros(3))) == PartitionSpec()
    assert nnx.spmd.get_var_pspec(nnx.Variable("not an array")) is None


def test_graphlib_static_is_a_leafless_pytree_node() -> None:
    wrapped = nnx.graphlib.Static(("relu", 2))
    assert jax.tree.leaves(wrapped) == []
    assert jax.tree.structure(wrapped) == jax.tree.structure(nnx.graphlib.Static(("relu", 2)))
    assert jax.tree.structure(wrapped) != jax.tree.structure(nnx.graphlib.Static(("gelu", 2)))
    # Under jit the value is part of the compiled function's key, not an argument.
    assert jax.jit(lambda s: s.value[1] * 2)(wrapped) == 4
