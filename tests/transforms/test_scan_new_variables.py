"""Variables created inside an nnx.scan step (Module.sow, new attributes) are
per-step outputs: stacked on their axis and attached to the caller's objects."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import nnx


class Cell(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.full((2,), 2.0))

    def __call__(self, h, x):
        h = h * self.w + x
        self.sow(nnx.Intermediate, "h", h)
        return h, None


def test_sow_in_step_is_stacked_and_captured() -> None:
    axes = nnx.StateAxes({nnx.Intermediate: 0, ...: None})

    @nnx.scan(in_axes=(axes, nnx.Carry, 0))
    def run(cell, h, x):
        return cell(h, x)

    cell = Cell()
    xs = jnp.arange(6.0).reshape(3, 2)
    (h, _), inter = nnx.capture(run, nnx.Intermediate)(cell, jnp.zeros(2), xs)
    expected = []
    state = np.zeros(2)
    for x in np.asarray(xs):
        state = state * 2 + x
        expected.append(state)
    np.testing.assert_allclose(h, expected[-1])
    (stacked,) = inter["h"].get_value()
    np.testing.assert_allclose(stacked, np.stack(expected))
    assert not hasattr(cell, "h")  # capture took it off again


@pytest.mark.parametrize("graph", [True, False])
@pytest.mark.parametrize("graph_updates", [True, False])
def test_new_attribute_is_attached_in_every_mode(graph: bool, graph_updates: bool) -> None:
    cell = Cell()
    spec = nnx.prefix(cell, {nnx.Intermediate: 0, ...: None}, graph=graph)

    @nnx.scan(in_axes=(spec, nnx.Carry, 0), graph=graph, graph_updates=graph_updates)
    def run(cell, h, x):
        cell.seen = nnx.Intermediate(x * 10)
        return h + x, None

    h, _ = run(cell, jnp.zeros(()), jnp.arange(4.0))
    assert float(h) == 6.0
    # the prefix tree was made before `seen` existed: it is stacked on axis 0
    np.testing.assert_allclose(cell.seen.get_value(), np.arange(4.0) * 10)


def test_new_variable_is_stacked_on_its_state_axes_axis() -> None:
    axes = nnx.StateAxes({nnx.Intermediate: 1, ...: None})

    @nnx.scan(in_axes=(axes, nnx.Carry, 0))
    def run(cell, h, x):
        cell.trace = nnx.Intermediate(jnp.stack([x, -x]))
        return h, None

    cell = Cell()
    run(cell, jnp.zeros(()), jnp.arange(5.0))
    assert cell.trace.shape == (2, 5)
    np.testing.assert_allclose(cell.trace.get_value()[1], -np.arange(5.0))


def test_scanned_module_gets_stacked_new_variable() -> None:
    @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
    def run(cell, h):
        cell.out = nnx.Intermediate(h * cell.w)
        return h + 1

    cell = Cell()
    cell.w = nnx.Param(jnp.arange(3.0))  # three layers of a scalar weight
    h = run(cell, jnp.ones(()))
    assert float(h) == 4.0
    np.testing.assert_allclose(cell.out.get_value(), [0.0, 2.0, 6.0])


@pytest.mark.parametrize(("axis", "shown"), [(None, "axis None"), (nnx.Carry, "axis nnx.Carry")])
def test_new_variable_that_cannot_be_stacked_raises(axis: object, shown: str) -> None:
    axes = nnx.StateAxes({nnx.Param: None, ...: axis})

    @nnx.scan(in_axes=(axes, nnx.Carry, 0))
    def run(cell, h, x):
        cell.extra = nnx.BatchStat(x)
        return h, None

    cell = Cell()
    with pytest.raises(nnx.GraphStructureError, match=rf"cell\.extra \(BatchStat\).*{shown}"):
        run(cell, jnp.zeros(()), jnp.arange(3.0))
    assert not hasattr(cell, "extra")


def test_removing_a_variable_inside_the_step_raises() -> None:
    @nnx.scan(in_axes=(None, nnx.Carry, 0))
    def run(cell, h, x):
        del cell.w
        return h, None

    cell = Cell()
    with pytest.raises(ValueError, match=r"cell\.w was removed or replaced"):
        run(cell, jnp.zeros(()), jnp.arange(3.0))
    assert isinstance(cell.w, nnx.Param)
