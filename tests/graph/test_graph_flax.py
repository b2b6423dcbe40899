"""Flax-NNX-compatible graph API surface: the graph-mode switches, split/merge
contexts, NodeDef/VariableDef, node-type registration, merge's single-argument
form, tree mode (graph=False) errors, and update adding missing attributes."""

from __future__ import annotations

import threading

import jax.numpy as jnp
import pytest

import nnx_graph as nnx
from nnx_graph._graph_tools import graph_mode_default, graph_updates_default


class Counter(nnx.Module):
    def __init__(self) -> None:
        self.n = nnx.Variable(jnp.array(0))


# ----------------------------------------------------------------- set_graph_mode / updates
@pytest.mark.parametrize(
    ("switch", "getter"),
    [(nnx.set_graph_mode, graph_mode_default), (nnx.set_graph_updates, graph_updates_default)],
)
def test_switch_as_context_manager_restores(switch, getter):
    assert getter() is True and switch.current_value() is True
    with switch(False):
        assert getter() is False
        with switch(True):
            assert getter() is True
        assert getter() is False
    assert getter() is True
    assert switch.get_stack() == []


@pytest.mark.parametrize(
    ("switch", "getter"),
    [(nnx.set_graph_mode, graph_mode_default), (nnx.set_graph_updates, graph_updates_default)],
)
def test_switch_as_statement_sets_default(switch, getter):
    switch(False)
    try:
        assert getter() is False and switch.current_value() is False
        switch(True)
        assert getter() is True
        switch(False)
        assert getter() is False
    finally:
        switch.get_stack().clear()
    assert getter() is True


def test_switch_as_decorator_applies_only_inside():
    @nnx.set_graph_mode(False)
    def inside() -> bool:
        return graph_mode_default()

    assert graph_mode_default() is True
    assert inside() is False
    assert graph_mode_default() is True
    assert nnx.set_graph_mode.get_stack() == []


def test_switch_is_per_thread():
    seen: list[bool] = []
    with nnx.set_graph_updates(False):
        t = threading.Thread(target=lambda: seen.append(graph_updates_default()))
        t.start()
        t.join()
        assert graph_updates_default() is False
    assert seen == [True]


def test_switch_classes_and_defaults():
    assert isinstance(nnx.set_graph_mode, type) and isinstance(nnx.set_graph_updates, type)
    assert nnx.set_graph_mode.get_default() is True
    assert nnx.set_graph_updates.get_default() is True
    assert repr(nnx.set_graph_mode(False)) == "set_graph_mode(False)"
    nnx.set_graph_mode.get_stack().clear()
