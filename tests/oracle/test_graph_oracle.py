"""Graph API against flax.nnx 0.12.8, side by side: the same program run with both
libraries gives the same structure (tree-mode errors, split/merge contexts,
GraphState, update adding attributes, to_tree/from_tree sharing, plain leaves).

Run with ``/work/venv-oracle/bin/python -m pytest tests/oracle -m oracle``.
"""

from __future__ import annotations

import typing as tp

import jax.numpy as jnp
import pytest

flax = pytest.importorskip("flax")
from flax import nnx as fnnx  # noqa: E402

import nnx_graph as nnx  # noqa: E402

pytestmark = pytest.mark.oracle


def _pair(lib: tp.Any, a: tp.Any, b: tp.Any) -> tp.Any:
    m = lib.Module()
    m.a, m.b = a, b
    return m


def _both(fn: tp.Callable[[tp.Any], tp.Any]) -> tuple[tp.Any, tp.Any]:
    return fn(fnnx), fn(nnx)


def test_tree_mode_rejects_shared_variables_in_both():
    for lib in (fnnx, nnx):
        v = lib.Param(jnp.zeros(1))
        with pytest.raises(ValueError, match=r"Tree mode \(graph=False\) does not support shared"):
            lib.split(_pair(lib, v, v), graph=False)
        with lib.set_graph_mode(False), pytest.raises(ValueError, match="Tree mode"):
            lib.state(_pair(lib, v, v))
        lib.split(_pair(lib, v, v))  # graph mode: fine


def test_split_context_state_layout_matches():
    def run(lib: tp.Any) -> tuple[tp.Any, ...]:
        shared = lib.Param(jnp.zeros(3))
        a, b = (
            _pair(lib, shared, lib.Param(jnp.ones(1))),
            _pair(lib, shared, lib.Param(jnp.ones(1))),
        )
        with lib.split_context() as ctx:
            ga, sa = ctx.split(a)
            gb, sb = ctx.split(b)
        with lib.merge_context() as ctx:
            a2, b2 = ctx.merge(ga, sa), ctx.merge(gb, sb)
        return sorted(sa), sorted(sb), a2.a is b2.a, a2.a is shared

    flax_out, nnx_out = _both(run)
    assert flax_out == nnx_out == (["a", "b"], ["b"], True, False)


def test_update_context_protocol_matches():
    def run(lib: tp.Any) -> tuple[tp.Any, ...]:
        m = lib.Module()
        m.c = lib.BatchStat(jnp.array(0))
        with lib.update_context("t"):
            with lib.split_context("t") as ctx:
                g, s = ctx.split(m)
            with lib.merge_context("t", inner=True) as ctx:
                inner = ctx.merge(g, s)
            inner.c.value = inner.c.value + 2
            inner.new = lib.Param(jnp.ones(1))
            with lib.split_context("t") as ctx:
                g, s = ctx.split(inner)
            with lib.merge_context("t", inner=False) as ctx:
                out = ctx.merge(g, s)
        return out is m, int(m.c.value), hasattr(m, "new")

    flax_out, nnx_out = _both(run)
    assert flax_out == nnx_out == (True, 2, True)


def test_unpack_merge_and_update_match():
    def run(lib: tp.Any) -> tuple[tp.Any, ...]:
        m = _pair(lib, lib.Param(jnp.ones(1)), lib.BatchStat(jnp.zeros(1)))
        params, rest = lib.unpack(m, lib.Param, ...)
        rebuilt = lib.merge(params, rest)
        lib.update(m, lib.State({"extra": lib.Param(jnp.zeros(2))}))
        return sorted(params), sorted(rest), type(rebuilt).__name__, m.extra.shape

    flax_out, nnx_out = _both(run)
    assert flax_out == nnx_out == (["a"], ["b"], "Module", (2,))


def test_to_tree_sharing_and_plain_leaves_match():
    def run(lib: tp.Any) -> tuple[tp.Any, ...]:
        m = _pair(lib, lib.Param(jnp.ones(1)), lib.Param(jnp.ones(1)))
        tree = lib.to_tree((m, m, 3))
        back = lib.from_tree(tree)
        gdef, leaf = lib.split(3.0)
        return back[0] is back[1], back[0] is m, tree[2], leaf, lib.merge(gdef, 5.0)

    flax_out, nnx_out = _both(run)
    assert flax_out == nnx_out == (True, False, 3, 3.0, 5.0)
