"""The first two examples of the seed document (seed/flax_nnx_overview.md), as the
intended programs (typos fixed: ``jnp.zeros``, ``key``, ``nnx.Module``, ``linear(...)``),
run with ``import nnx_graph as nnx`` and with the meta-package ``import nnx``."""

from __future__ import annotations

import importlib
import types

import jax
import jax.numpy as jnp
import pytest


@pytest.fixture(params=["nnx_graph", "nnx"])
def nnx(request) -> types.ModuleType:
    return importlib.import_module(request.param)


def test_custom_linear_with_eager_init(nnx, capsys):
    class Linear(nnx.Module):
        def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs):
            key = rngs.params()
            self.w = nnx.Param(jax.random.uniform(key, (fin, fout)))
            self.b = nnx.Param(jnp.zeros((fout,)))

        def __call__(self, x: jax.Array):
            return jnp.dot(x, self.w) + self.b

    linear = Linear(2, 5, rngs=nnx.Rngs(params=0))  # eager init
    y = linear(x=jnp.ones((1, 2)))
    print(y)

    expected_w = jax.random.uniform(jax.random.fold_in(jax.random.key(0), 0), (2, 5))
    assert linear.w.shape == (2, 5) and linear.b.shape == (5,)
    assert jnp.array_equal(linear.w.value, expected_w)
    assert y.shape == (1, 5)
    assert jnp.allclose(y, jnp.ones((1, 2)) @ expected_w)
    assert capsys.readouterr().out.startswith("[[")

    if hasattr(nnx, "display"):  # nnx-viz, only in the meta-package
        nnx.display(linear)
        shown = capsys.readouterr().out
        assert "Linear" in shown and "Param" in shown


def test_stateful_counter(nnx, capsys):
    class Count(nnx.Variable):
        pass

    class Counter(nnx.Module):
        def __init__(self):
            self.count = Count(jnp.array(0))

        def __call__(self):
            self.count += 1

    counter = Counter()
    print(f"{counter.count.value = }")
    counter()
    print(f"{counter.count.value = }")

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("counter.count.value = Array(0")
    assert lines[1].startswith("counter.count.value = Array(1")
    assert isinstance(counter.count, Count)
    assert list(nnx.state(counter, Count)) == ["count"]
