"""Which Variables nnx.grad differentiates: Param inside graph nodes by default,
Variables given directly (or in a State/dict) always, every float Variable in the
tree modes (graph=False / graph_updates=False)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import nnx


class Net(nnx.Module):
    def __init__(self) -> None:
        self.w = nnx.Param(jnp.array(2.0))
        self.s = nnx.BatchStat(jnp.array(3.0))
        self.dropout = nnx.Dropout(0.5, rngs=nnx.Rngs(0))

    def __call__(self) -> jax.Array:
        return self.w[...] * self.s[...]


def test_module_argument_differentiates_params_by_default() -> None:
    grads = nnx.grad(lambda m: m())(Net())
    assert isinstance(grads, nnx.State)
    assert set(grads) == {"w"}
    assert float(grads["w"][...]) == 3.0


def test_state_argument_differentiates_all_its_variables() -> None:
    graphdef, stats, rest = nnx.split(Net(), nnx.BatchStat, ...)

    def loss(stats, rest):
        return nnx.merge(graphdef, stats, rest)()

    grads = nnx.grad(loss)(stats, rest)
    assert isinstance(grads["s"], nnx.BatchStat)
    assert float(grads["s"][...]) == 2.0


def test_variables_in_a_dict_are_all_differentiated() -> None:
    args = {"x": nnx.Param(jnp.array(2.0)), "y": nnx.BatchStat(jnp.array(5.0))}
    grads = nnx.grad(lambda d: d["x"][...] * d["y"][...])(args)
    assert isinstance(grads["y"], nnx.BatchStat)
    assert (float(grads["x"][...]), float(grads["y"][...])) == (5.0, 2.0)


@pytest.mark.parametrize("mode", [{"graph": False}, {"graph": True, "graph_updates": False}])
def test_tree_modes_differentiate_every_float_variable(mode: dict[str, bool]) -> None:
    net = Net()
    grads = nnx.grad(lambda m: m(), **mode)(net)
    state = nnx.state(grads)
    assert float(state["w"][...]) == 3.0
    assert float(state["s"][...]) == 2.0
    # the RNG key and count cannot be differentiated: left out instead of failing
    assert int(net.dropout.rngs.count[...]) == 0


def test_tree_mode_gives_a_shared_variable_its_gradient_at_both_places() -> None:
    shared = nnx.Param(jnp.array(1.0))
    other = nnx.Param(jnp.array(4.0))
    tree = {"a": [shared, other], "b": shared}

    grads = nnx.grad(lambda t: t["a"][0][...] * t["a"][1][...] + t["b"][...], graph_updates=False)(
        tree
    )
    assert grads["b"] is grads["a"][0]
    assert float(grads["b"][...]) == 5.0
    nnx.update(tree, nnx.state(grads))
    assert float(shared[...]) == 5.0 and float(other[...]) == 1.0


def test_default_mode_keeps_one_gradient_per_shared_variable() -> None:
    shared = nnx.Param(jnp.array(1.0))
    grads = nnx.grad(lambda t: t["a"][...] + t["b"][...])({"a": shared, "b": shared})
    assert float(grads["a"][...]) == 2.0
    assert len(grads["b"]) == 0


@pytest.mark.parametrize("graph", [True, False])
def test_tree_mode_vjp_returns_module_shaped_gradients(graph: bool) -> None:
    class Scale(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.array([1.0, 2.0]))

    model, x = Scale(), jnp.array([3.0, 4.0])
    out, vjp_fn = nnx.vjp(
        lambda m, x: (m.w[...] * x).sum(), model, x, graph=graph, graph_updates=False
    )
    assert float(out) == 11.0
    g_model, g_x = vjp_fn(jnp.ones(()))
    assert isinstance(g_model, Scale) and g_model is not model
    assert g_model.w[...].tolist() == [3.0, 4.0]
    assert g_x.tolist() == [1.0, 2.0]


def test_default_mode_vjp_returns_a_state() -> None:
    model = Net()
    _, vjp_fn = nnx.vjp(lambda m: m(), model)
    (g_model,) = vjp_fn(jnp.ones(()))
    assert isinstance(g_model, nnx.State) and set(g_model) == {"w"}
