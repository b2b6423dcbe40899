"""Attributes replaced behind ``__setattr__``'s back (``vars(m)[k] = v``,
``object.__setattr__``, ``functools.cached_property``) must not leave a cached
traversal stale: the structural fingerprint notices them."""

from __future__ import annotations

import functools

import jax.numpy as jnp
import pytest

import nnx_graph as nnx
from nnx_graph._graphdef import fingerprint, flatten_graph


class Counter(nnx.Module):
    def __init__(self):
        self.count = nnx.Variable(jnp.array(0))
        self.inner = nnx.Linear(2, 2, rngs=nnx.Rngs(0)) if hasattr(nnx, "Linear") else None

    @functools.cached_property
    def extra(self):
        return nnx.Variable(jnp.array(100))


def _fp(node):
    return fingerprint(flatten_graph(node).nodes)


BYPASSES = {
    "vars": lambda m, k, v: vars(m).__setitem__(k, v),
    "object.__setattr__": lambda m, k, v: object.__setattr__(m, k, v),
}


@pytest.mark.parametrize("how", sorted(BYPASSES))
def test_fingerprint_sees_a_replaced_variable(how):
    m = Counter()
    fp = _fp(m)
    assert fp.matches()
    m.count.value = jnp.array(5)  # a value change is not structural
    assert fp.matches()
    BYPASSES[how](m, "count", nnx.Variable(jnp.array(7)))
    assert not fp.matches()


@pytest.mark.parametrize("how", sorted(BYPASSES))
def test_fingerprint_sees_a_new_attribute(how):
    m = Counter()
    fp = _fp(m)
    BYPASSES[how](m, "fresh", nnx.Param(jnp.ones(1)))
    assert not fp.matches()


def test_fingerprint_sees_cached_property():
    m = Counter()
    fp = _fp(m)
    _ = m.extra  # functools.cached_property writes into the instance __dict__
    assert not fp.matches()


def test_fingerprint_sees_a_replaced_submodule_deep_down():
    outer = nnx.List([Counter(), Counter()])
    fp = _fp(outer)
    vars(outer[1])["count"] = nnx.Variable(jnp.array(3))
    assert not fp.matches()


def _step(m):
    m.count.value += 1


@pytest.mark.parametrize("how", sorted(BYPASSES))
def test_jit_does_not_update_a_replaced_variable(how):
    m = Counter()
    step = nnx.jit(_step)
    step(m)
    old = m.count
    new = nnx.Variable(jnp.array(10))
    BYPASSES[how](m, "count", new)
    step(m)
    assert int(new.value) == 11, "the jitted call must update the Variable now on the model"
    assert int(old.value) == 1, "the replaced Variable must be left alone"


def test_jit_sees_cached_property_variable():
    class WithExtra(nnx.Module):
        def __init__(self):
            self.count = nnx.Variable(jnp.array(0))

        @functools.cached_property
        def extra(self):
            return nnx.Variable(jnp.array(100))

    def bump_extra(m):
        m.count.value += 1
        if "extra" in vars(m):
            m.extra.value += 1

    m = WithExtra()
    step = nnx.jit(bump_extra)
    step(m)
    _ = m.extra  # now an attribute, set behind __setattr__'s back
    step(m)
    assert int(m.count.value) == 2 and int(m.extra.value) == 101


class Scaled(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.ones(2))
        self.rate = 0.5
        self.sizes = (1, 2)


@pytest.mark.parametrize("how", sorted(BYPASSES))
def test_jit_sees_a_replaced_static_attribute(how):
    m = Scaled()
    apply = nnx.jit(lambda m: m.w[...] * m.rate * m.sizes[1])
    assert apply(m).tolist() == [1.0, 1.0]
    BYPASSES[how](m, "rate", 2.0)
    assert apply(m).tolist() == [4.0, 4.0], "a replaced static value must retrace"
    BYPASSES[how](m, "sizes", (1, 3))  # a data-free container
    assert apply(m).tolist() == [6.0, 6.0]


def test_static_attributes_do_not_invalidate_unchanged_calls():
    m = Scaled()
    fp = _fp(m)
    assert fp.matches()
    m.w.value = jnp.zeros(2)  # a value update is not a structural change
    assert fp.matches()
    vars(m)["rate"] = 0.25
    assert not fp.matches()
