"""Placing annotated Variables on meshes by axis kind, and transform_metadata with
``partition=None`` (one device: 1x1 meshes carry the axis kinds)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import AxisType

import nnx


def _mesh(*kinds: AxisType) -> jax.sharding.Mesh:
    return jax.make_mesh((1, 1), ("row", "col"), axis_types=kinds)


@pytest.mark.parametrize("names", [("row", "col"), ("row", None), (None, "col")])
def test_mixed_auto_and_explicit_mesh_refuses_eager_placement(names: tuple) -> None:
    mesh = _mesh(AxisType.Auto, AxisType.Explicit)
    with pytest.raises(ValueError) as info:
        nnx.Variable(jnp.ones((4, 4)), out_sharding=names, mesh=mesh)
    msg = str(info.value)
    assert "Variable(shape=(4, 4), dtype=float32) being created" in msg
    assert "Mesh must have all axes as Explicit or all axes as Auto" in msg
    assert "mixed axis types: (Auto, Explicit)" in msg and "Fix:" in msg
    with jax.set_mesh(mesh), pytest.raises(ValueError, match="mixed axis types"):
        jax.jit(lambda x: nnx.Variable(x, out_sharding=names)[...])(jnp.ones((4, 4)))


def test_mixed_mesh_is_fine_without_an_annotation_or_placement() -> None:
    mesh = _mesh(AxisType.Auto, AxisType.Explicit)
    assert nnx.Variable(jnp.ones(2), mesh=mesh)[...].shape == (2,)
    v = nnx.Variable(jnp.ones((2, 2)), out_sharding=("row", "col"), mesh=mesh, eager_sharding=False)
    assert v.out_sharding == ("row", "col")


@pytest.mark.parametrize("kind", [AxisType.Auto, AxisType.Explicit])
def test_uniform_meshes_place_the_value(kind: AxisType) -> None:
    mesh = _mesh(kind, kind)
    v = nnx.Variable(jnp.ones((4, 4)), out_sharding=("row", "col"), mesh=mesh)
    assert v[...].sharding.spec == jax.sharding.PartitionSpec("row", "col")


def test_transform_metadata_partition_none_removes_and_adds_a_none_axis() -> None:
    v = nnx.Param(jnp.array(1), out_sharding=(None, "dout"), eager_sharding=False)
    seen = []

    @nnx.transform_metadata(in_axes=0, out_axes=1, partition=None)
    def f(p: nnx.Param) -> nnx.Param:
        p[...] += 1
        seen.append(p.out_sharding)
        return nnx.Param(jnp.array(10), out_sharding=("dmid", "dout"), eager_sharding=False)

    out = f(v)
    assert seen == [("dout",)]  # axis 0 (None) removed inside
    assert v.out_sharding == (None, "dout") and int(v[...]) == 2  # added back
    assert out.out_sharding == ("dmid", None, "dout")  # None inserted at out_axes


def test_transform_metadata_partition_none_checks_the_removed_entry() -> None:
    v = nnx.Param(jnp.array(1), out_sharding=("layers", "dout"), eager_sharding=False)

    @nnx.transform_metadata(in_axes=0, out_axes=0, partition=None)
    def f(p: nnx.Param) -> None:
        return None

    with pytest.raises(ValueError, match=r"cannot remove axis 0"):
        f(v)
