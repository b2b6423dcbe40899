"""StateAxes as a mapping, and per-Variable prefix specs (nnx.prefix / a State of
axes) as in_axes of vmap/scan and in_specs of shard_map."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import nnx_graph as nnx


class Stats(nnx.Module):
    def __init__(self) -> None:
        self.scale = nnx.Param(jnp.array(2.0))
        self.per_example = nnx.BatchStat(jnp.arange(4.0))


# ------------------------------------------------------------------ StateAxes
def test_state_axes_is_a_mapping_from_filter_to_axis():
    axes = nnx.StateAxes({nnx.Param: 0, nnx.BatchStat: None, ...: 1})
    assert axes.filters == (nnx.Param, nnx.BatchStat, ...)
    assert axes.axes == (0, None, 1)
    assert list(axes.keys()) == [nnx.Param, nnx.BatchStat, ...]
    assert list(axes.values()) == [0, None, 1]
    assert list(axes.items()) == [(nnx.Param, 0), (nnx.BatchStat, None), (..., 1)]
    assert len(axes) == 3
    assert axes[nnx.BatchStat] is None and axes[...] == 1
    assert nnx.Param in axes and nnx.Cache not in axes
    with pytest.raises(ValueError):
        axes[nnx.Cache]
    assert axes == nnx.StateAxes([(nnx.Param, 0), (nnx.BatchStat, None), (..., 1)])
    assert hash(axes) == hash(nnx.StateAxes({nnx.Param: 0, nnx.BatchStat: None, ...: 1}))


def test_state_axes_filters_and_axes_are_read_only_properties():
    axes = nnx.StateAxes({nnx.Param: 0, ...: nnx.Carry})
    assert isinstance(type(axes).__dict__["filters"], property)
    assert isinstance(type(axes).__dict__["axes"], property)
    assert axes.axes == (0, nnx.Carry)
    with pytest.raises(AttributeError):
        axes.axes = (1, 1)  # type: ignore[misc]


def test_diff_state_map_prefix_says_whether_a_variable_is_differentiated():
    model = Stats()
    only_params = nnx.DiffState(0, nnx.Param)
    assert only_params.map_prefix(("scale",), model.scale) is True
    assert only_params.map_prefix(("per_example",), model.per_example) is False
    by_path = nnx.DiffState(0, nnx.PathContains("per_example"))
    assert by_path.map_prefix(("per_example",), model.per_example) is True
    assert by_path.map_prefix(("scale",), model.scale) is False


def test_state_axes_map_prefix_gives_the_first_matching_axis():
    axes = nnx.StateAxes({nnx.BatchStat: 1, nnx.Param: 0})
    model = Stats()
    assert axes.map_prefix(("scale",), model.scale) == 0
    assert axes.map_prefix(("per_example",), model.per_example) == 1
    with pytest.raises(ValueError, match=r"state\.c \(Cache\) matches none.*no axis found"):
        axes.map_prefix(("c",), nnx.Cache(jnp.zeros(1)))


def test_state_axes_from_a_state_of_axes_matches_each_path():
    model = Stats()
    by_path = nnx.StateAxes(nnx.prefix(model, {nnx.Param: None, ...: 0}))
    assert len(by_path) == 2
    assert by_path.map_prefix(("scale",), model.scale) is None
    assert by_path.map_prefix(("per_example",), model.per_example) == 0
    out = nnx.vmap(lambda m: m.scale.value * m.per_example.value, in_axes=(by_path,))(model)
    np.testing.assert_allclose(out, 2.0 * jnp.arange(4.0))


# ------------------------------------------------------------------ prefix specs
def test_vmap_in_axes_as_a_prefix_tree_over_module_state():
    model = Stats()
    axes = nnx.prefix(model, {nnx.Param: None, nnx.BatchStat: 0})

    @nnx.vmap(in_axes=(axes, 0))
    def f(m: Stats, x: jax.Array) -> jax.Array:
        m.per_example.value = m.per_example.value + x  # mapped state, updated per example
        return m.scale.value * x

    out = f(model, jnp.ones(4))
    np.testing.assert_allclose(out, 2.0 * jnp.ones(4))
    np.testing.assert_allclose(model.per_example.value, jnp.arange(4.0) + 1)
    assert float(model.scale.value) == 2.0


def test_prefix_tree_stops_early_on_a_single_axis():
    model = nnx.Dict(inner=Stats(), w=nnx.Param(jnp.ones(4)))
    # the whole 'inner' subtree gets one StateAxes, 'w' gets axis 0
    spec = {"inner": nnx.StateAxes({nnx.Param: None, ...: 0}), "w": 0}
    out = nnx.vmap(lambda d: d["inner"].per_example.value * d["w"].value, in_axes=(spec,))(model)
    np.testing.assert_allclose(out, jnp.arange(4.0))


def test_prefix_tree_missing_a_path_names_it():
    model = Stats()
    with pytest.raises(ValueError, match=r"no entry for m\.per_example"):
        nnx.vmap(lambda m: m.scale.value, in_axes=(nnx.State({"scale": None}),))(model)


def test_scan_in_axes_as_a_prefix_tree():
    model = Stats()
    axes = nnx.prefix(model, {nnx.Param: None, nnx.BatchStat: 0})

    @nnx.scan(in_axes=(axes, nnx.Carry), out_axes=nnx.Carry)
    def total(m: Stats, carry: jax.Array) -> jax.Array:
        return carry + m.scale.value * m.per_example.value

    assert float(total(model, jnp.array(0.0))) == pytest.approx(2.0 * 6.0)


def test_shard_map_in_specs_as_a_prefix_tree():
    mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
    model = Stats()
    specs = nnx.prefix(model, {nnx.Param: P(), nnx.BatchStat: P("x")})

    def f(m: Stats) -> jax.Array:
        m.per_example.value = m.per_example.value * m.scale.value
        return m.per_example.value

    out = nnx.shard_map(f, mesh=mesh, in_specs=(specs,), out_specs=P("x"))(model)
    np.testing.assert_allclose(out, 2.0 * jnp.arange(4.0))
    np.testing.assert_allclose(model.per_example.value, 2.0 * jnp.arange(4.0))


class Pair(nnx.Module):
    def __init__(self, x: jax.Array) -> None:
        self.w = nnx.Param(x * jnp.ones(2))
        self.s = nnx.BatchStat(x * jnp.ones(2))


def test_vmap_and_pmap_out_axes_as_state_axes_or_a_prefix_tree():
    xs = jnp.arange(3.0)
    template = Pair(jnp.array(0.0))
    per_kind = nnx.StateAxes({nnx.Param: 1, ...: 0})
    by_path = nnx.prefix(template, {nnx.Param: 1, ...: 0})
    for spec in (per_kind, by_path, nnx.State({"w": 1, "s": 0})):
        made = nnx.vmap(lambda x: Pair(x), out_axes=spec)(xs)
        assert made.w.value.shape == (2, 3) and made.s.value.shape == (3, 2)
        assert made.w.value[0].tolist() == [0.0, 1.0, 2.0]
    # the spec of one output inside a tuple; plain outputs keep their int axis
    made, y = nnx.vmap(lambda x: (Pair(x), x * jnp.ones(2)), out_axes=(by_path, 1))(xs)
    assert made.w.value.shape == (2, 3) and y.shape == (2, 3)
    n = jax.local_device_count()
    made = nnx.pmap(lambda x: Pair(x), out_axes=per_kind)(jnp.arange(float(n)))
    assert made.w.value.shape == (2, n) and made.s.value.shape == (n, 2)
    with pytest.raises(ValueError, match=r"no entry for output\[0\]\.s"):
        nnx.vmap(lambda x: Pair(x), out_axes=nnx.State({"w": 1}))(xs)


def test_scan_out_axes_as_a_prefix_tree():
    by_path = nnx.prefix(Pair(jnp.array(0.0)), {nnx.Param: 1, ...: 0})
    _, made = nnx.scan(lambda c, x: (c, Pair(x)), out_axes=(nnx.Carry, by_path))(
        jnp.array(0.0), jnp.arange(3.0)
    )
    assert made.w.value.shape == (2, 3) and made.s.value.shape == (3, 2)
    assert made.s.value[:, 0].tolist() == [0.0, 1.0, 2.0]


# ------------------------------------------------------------------ prefix checks
def _identity(x):
    return x


def test_a_graph_node_used_as_a_prefix_is_rejected_when_the_transform_is_built():
    stats = Stats()
    cases = {
        "jit in_shardings": lambda: nnx.jit(_identity, in_shardings=stats),
        "jit out_shardings": lambda: nnx.jit(_identity, out_shardings=(stats,)),
        "vmap in_axes": lambda: nnx.vmap(_identity, in_axes=(stats,)),
        "vmap out_axes": lambda: nnx.vmap(_identity, out_axes=stats),
        "pmap in_axes": lambda: nnx.pmap(_identity, in_axes=(stats,)),
        "scan in_axes": lambda: nnx.scan(_identity, in_axes=(stats,), out_axes=0),
        "grad argnums": lambda: nnx.grad(_identity, argnums=stats),
    }
    for label, build in cases.items():
        transform, what = label.split()
        with pytest.raises(ValueError, match="Graph nodes are not allowed as prefixes") as e:
            build()
        assert f"nnx.{transform}: found a graph node of type Stats" in str(e.value), label
        assert f"`{what}`" in str(e.value), label


def test_a_variable_used_as_a_prefix_is_rejected_in_every_mode():
    for graph in (True, False):
        with pytest.raises(ValueError, match=r"Variables prefixes are not supported") as e:
            nnx.vmap(_identity, in_axes=(nnx.Variable(0),), graph=graph)
        assert "found a Variable at [0] of `in_axes`" in str(e.value)


def test_filter_mappings_are_rejected_in_tree_and_no_update_modes():
    sharding = nnx.StateSharding({nnx.Param: P()})
    axes = nnx.StateAxes({nnx.Param: 0, ...: None})
    for flags in ({"graph": False}, {"graph_updates": False}):
        with pytest.raises(ValueError, match="cannot contain `StateSharding` objects"):
            nnx.jit(_identity, in_shardings=sharding, **flags)
        with pytest.raises(ValueError, match="cannot contain `StateAxes` objects"):
            nnx.vmap(_identity, in_axes=axes, **flags)
        with pytest.raises(ValueError, match="`argnums` cannot contain `DiffState` objects"):
            nnx.grad(_identity, argnums=nnx.DiffState(0, nnx.Param), **flags)
    # the default mode selects state by filter with them
    stats = Stats()
    doubled = nnx.vmap(
        lambda m: m.per_example.value * m.scale.value,
        in_axes=(nnx.StateAxes({nnx.BatchStat: 0, ...: None}),),
    )(stats)
    np.testing.assert_allclose(doubled, 2 * np.arange(4.0))
