"""nnx.update refuses values whose shape differs from the one they replace, names
the path, the expected and the found shape, and changes nothing."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import nnx_graph as nnx


class Model(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.zeros((2, 3)))
        self.b = nnx.Param(jnp.zeros(3))
        self.raw = jnp.zeros(4)


def test_update_rejects_a_wrong_shape_and_changes_nothing():
    m = Model()
    bad = {"w": jnp.ones((3, 2)), "b": jnp.ones(3)}
    with pytest.raises(ValueError) as info:
        nnx.update(m, bad)
    text = str(info.value)
    assert "model.w" in text and "expected shape (2, 3)" in text and "found shape (3, 2)" in text
    assert "model.b" not in text
    assert float(m.b.value.sum()) == 0.0, "nothing may be written when one value is wrong"


def test_update_checks_array_attributes_and_variables_in_states():
    m = Model()
    with pytest.raises(nnx.GraphStructureError, match=r"model\.raw: expected shape \(4,\)"):
        nnx.update(m, nnx.State({"raw": jnp.ones(5)}))
    with pytest.raises(ValueError, match="found shape"):
        nnx.update(m, nnx.State({"b": nnx.Param(jnp.ones(7))}))


def test_update_with_matching_shapes_and_abstract_values_still_works():
    m = Model()
    nnx.update(m, {"w": jnp.ones((2, 3))})
    assert float(m.w.value.sum()) == 6.0
    abstract = nnx.eval_shape(lambda: Model())
    nnx.update(abstract, nnx.state(Model(), nnx.Param))  # abstract target, concrete values
    assert abstract.w.value.shape == (2, 3)
    # a value without a shape (a Python scalar) is not checked
    counter = nnx.Variable(0)
    holder = nnx.Dict(c=counter)
    nnx.update(holder, {"c": 3})
    assert counter.value == 3


def test_update_inside_a_transform_sees_traced_shapes():
    m = Model()

    def f(w):
        inner = Model()
        nnx.update(inner, {"w": w})
        return inner.w.value.sum()

    assert float(jax.jit(f)(jnp.ones((2, 3)))) == 6.0
    with pytest.raises(ValueError, match="expected shape"):
        jax.jit(f)(jnp.ones((1, 3)))
    assert m.w.value.shape == (2, 3)
