"""Oracle: Flax's flat GraphDef view and its constructors.

For structures made of plain containers, Variables, raw arrays and static values
(no Module/List/Dict: Flax lists its own bookkeeping attributes for those), the
``nodes``/``attributes``/``num_leaves`` nnx gives must match Flax's entry by entry,
and the same hand-written ``GraphDef(nodes, attributes, num_leaves)`` must merge to
the same object in both libraries.

Run with ``/work/venv-oracle/bin/python -m pytest tests/oracle/test_records_oracle.py -m oracle``.
"""

from __future__ import annotations

import types
import typing as tp

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx  # noqa: E402

pytestmark = pytest.mark.oracle


def _describe(lib: types.ModuleType, graphdef: tp.Any) -> tuple[tp.Any, ...]:
    """The flat view as plain data (library classes by their role)."""
    gl = lib.graphlib
    nodes = []
    for n in graphdef.nodes:
        if isinstance(n, gl.NodeRef):
            nodes.append(("ref", n.index))
        elif isinstance(n, gl.VariableDef):
            nodes.append(("var", n.type.__name__, n.index, n.outer_index))
        else:
            assert isinstance(n, gl.NodeDef)
            nodes.append(("node", n.type.__name__, n.index, n.num_attributes, n.metadata))
    attributes = []
    for key, kind in graphdef.attributes:
        if isinstance(kind, gl.Static):
            attributes.append((key, "static", kind.value))
        else:
            assert kind in (gl.NODE_ATTR, gl.LEAF_ATTR), kind
            attributes.append((key, "node" if kind == gl.NODE_ATTR else "leaf"))
    return tuple(nodes), tuple(attributes), graphdef.num_leaves


def _structures(lib: types.ModuleType) -> dict[str, tp.Any]:
    shared = lib.Param(jnp.ones(1))
    return {
        "tuple": (jnp.ones(1), lib.Param(jnp.zeros(2)), 3),
        "dict_of_list": {"b": [jnp.ones(1), "x"], "a": lib.BatchStat(jnp.ones(1))},
        "shared_variable": [shared, (shared, jnp.zeros(1))],
        "bare_variable": lib.Param(jnp.ones(3)),
        "raw_array": jnp.arange(2.0),
    }


@pytest.mark.parametrize("name", sorted(_structures(nnx)))
def test_flat_view_matches_flax(name: str) -> None:
    ours = nnx.graphdef(_structures(nnx)[name])
    theirs = fnnx.graphdef(_structures(fnnx)[name])
    assert _describe(nnx, ours) == _describe(fnnx, theirs)
    # and ours assembles back to the same GraphDef
    assert nnx.GraphDef(ours.nodes, ours.attributes, ours.num_leaves) == ours


def _hand_written(lib: types.ModuleType) -> tuple[tp.Any, tp.Any]:
    gl = lib.graphlib
    meta = lib.Param(jnp.zeros(1)).get_metadata()
    graphdef = gl.GraphDef(
        nodes=[
            gl.NodeDef(tuple, None, None, 3, None),
            gl.VariableDef(lib.Param, 0, None, meta, None),
            gl.NodeDef(list, None, None, 3, None),
            gl.NodeRef(0),
        ],
        attributes=[
            (0, gl.NODE_ATTR),
            (1, gl.NODE_ATTR),
            (0, gl.NODE_ATTR),
            (1, gl.LEAF_ATTR),
            (2, gl.Static("tag")),
            (2, gl.Static(7)),
        ],
        num_leaves=2,
    )
    _, state = lib.split((lib.Param(jnp.full((1,), 5.0)), [0, jnp.arange(3.0)]))
    return graphdef, state


def test_hand_written_graphdef_merges_like_flax() -> None:
    ours = nnx.merge(*_hand_written(nnx))
    theirs = fnnx.merge(*_hand_written(fnnx))
    for obj in (ours, theirs):
        assert obj[1][0] is obj[0]  # the reference is kept
        assert (obj[1][2], obj[2]) == ("tag", 7)
    assert type(ours[0]).__name__ == type(theirs[0]).__name__ == "Param"
    np.testing.assert_array_equal(ours[0].get_value(), theirs[0].get_value())
    np.testing.assert_array_equal(ours[1][1], theirs[1][1])
    assert _describe(nnx, nnx.graphdef(ours)) == _describe(fnnx, fnnx.graphdef(theirs))


def test_record_constructors_take_flax_arguments_by_name() -> None:
    for lib in (nnx, fnnx):
        gl = lib.graphlib
        node = gl.NodeDef(type=tuple, index=None, outer_index=None, num_attributes=2, metadata=None)
        var = gl.VariableDef(type=lib.Param, index=1, outer_index=3, metadata={}, array_refdef=None)
        empty = gl.NodeDef(tuple, None, None, 0, None)
        graphdef = gl.GraphDef(nodes=[empty], attributes=[], num_leaves=0)
        assert (node.index, node.num_attributes, var.index, var.outer_index) == (None, 2, 1, 3)
        assert graphdef.num_leaves == 0
    assert jax.tree.leaves(nnx.graphlib.Static(1)) == jax.tree.leaves(fnnx.graphlib.Static(1))
