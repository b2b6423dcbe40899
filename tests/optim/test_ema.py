"""EMA of a model's parameters."""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optim_models import Linear, LoraParam, batch, lora_mlp, mse

import nnx_graph as nnx
from nnx_optim import EMA, Optimizer


def test_ema_follows_the_formula() -> None:
    model = Linear(2, 3, rngs=nnx.Rngs(0))
    start = np.asarray(model.w.value)
    ema = EMA(model, decay=0.9)
    assert ema.params["w"] is not model.w and isinstance(ema.params["w"], nnx.Param)
    np.testing.assert_array_equal(ema.params.w.value, start)
    expected = start
    for k in range(1, 4):
        model.w.value = jnp.full((2, 3), float(k))
        ema.update(model)
        expected = 0.9 * expected + 0.1 * k
    np.testing.assert_allclose(ema.params.w.value, expected, rtol=1e-6)


def test_ema_only_filter_and_state_input() -> None:
    model = lora_mlp()
    ema = EMA(model, decay=0.5, only=LoraParam)
    paths = set(nnx.state(ema.params).flat_state().paths)
    assert paths == {("linear1", "A"), ("linear1", "B"), ("linear2", "A"), ("linear2", "B")}
    model.linear1.A.value = model.linear1.A.value + 2.0
    ema.update(nnx.state(model))  # a State works as well as the model
    np.testing.assert_allclose(ema.params.linear1.A.value, model.linear1.A.value - 1.0, rtol=1e-6)


def test_ema_apply_to_shares_the_averages() -> None:
    model = lora_mlp()
    ema = EMA(model, decay=0.9, only=nnx.Param)
    averaged = ema.apply_to(model)
    assert averaged is not model
    assert averaged.linear1.A is ema.params.linear1.A
    assert averaged.bn.mean is model.bn.mean  # untracked state is the model's
    model.linear1.A.value = model.linear1.A.value + 1.0
    ema.update(model)
    assert averaged.linear1.A is ema.params.linear1.A  # follows later updates


def test_ema_in_jitted_train_step() -> None:
    model = lora_mlp(dropout=0.0)
    optimizer = Optimizer(model, optax.sgd(0.05))
    ema = EMA(model, decay=0.8, only=nnx.Param)
    averaged = ema.apply_to(model)
    expected = {p: np.asarray(v.value) for p, v in nnx.state(model, nnx.Param).flat_state()}

    @nnx.jit
    def train_step(model: tp.Any, optimizer: tp.Any, ema: EMA, x: jax.Array, y: jax.Array) -> None:
        grads = nnx.grad(lambda m: mse(m, x, y))(model)
        optimizer.update(model, grads)
        ema.update(model)

    @nnx.jit
    def evaluate(model: tp.Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return mse(model, x, y)

    for step in range(3):
        train_step(model, optimizer, ema, *batch(step))
        for path, variable in nnx.state(model, nnx.Param).flat_state():
            expected[path] = 0.8 * expected[path] + 0.2 * np.asarray(variable.value)
    for path, variable in nnx.state(ema.params).flat_state():
        np.testing.assert_allclose(variable.value, expected[path], rtol=1e-5, atol=1e-7)
    assert np.isfinite(float(evaluate(averaged, *batch(0))))


def test_ema_errors() -> None:
    class Raw(nnx.Module):
        def __init__(self) -> None:
            self.w = jnp.ones(2)

    with pytest.raises(TypeError, match=r"EMA only supports Variable leaves: model\.w is a "):
        EMA(Raw(), 0.9, only=...)
    model = Linear(2, 2, rngs=nnx.Rngs(0))
    ema = EMA(model, 0.9)
    with pytest.raises(nnx.GraphStructureError, match=r"model\.w"):
        ema.update(nnx.State({"b": jnp.zeros(2)}))
    with pytest.raises(TypeError, match="expected a Module or a State"):
        ema.update(3.0)
    assert "EMA(" in repr(ema)


class _Counted(nnx.Module):
    """A layer with a float parameter, a float statistic, an integer counter and
    an RNG stream: every kind of Variable the default filter picks up."""

    def __init__(self) -> None:
        self.w = nnx.Param(jnp.zeros(3))
        self.stat = nnx.BatchStat(jnp.zeros(3))
        self.seen = nnx.Variable(jnp.array(0, dtype=jnp.int32))
        self.rngs = nnx.Rngs(7)


def test_ema_default_filter_tracks_every_variable() -> None:
    model = _Counted()
    ema = EMA(model, 0.75)
    assert ema.filter is Ellipsis and ema.graph is None
    paths = set(nnx.state(ema.params).flat_state().paths)
    assert {("w",), ("stat",), ("seen",)} <= paths
    assert any(p[0] == "rngs" for p in paths)
    for step in range(1, 4):
        model.w.value = jnp.full(3, 4.0 * step)
        model.stat.value = jnp.full(3, -2.0 * step)
        model.seen.value = jnp.array(10 * step, dtype=jnp.int32)
        model.rngs.default()  # advances the stream's counter
        ema.update(model)
    # floats: the running average; 0.25 * (4, 8, 12) weighted by 0.75 powers
    w = 0.0
    for step in range(1, 4):
        w = 0.75 * w + 0.25 * 4.0 * step
    np.testing.assert_allclose(ema.params.w.value, np.full(3, w), rtol=1e-6)
    np.testing.assert_allclose(ema.params.stat.value, np.full(3, -w / 2), rtol=1e-6)
    # integers and keys have no average: they follow the model
    assert ema.params.seen.value.dtype == jnp.int32
    assert int(ema.params.seen.value) == 30
    model_rng = {p: v for p, v in nnx.state(model.rngs).flat_state()}
    for path, variable in nnx.state(ema.params["rngs"]).flat_state():
        if isinstance(variable, nnx.RngCount):
            assert int(variable.value) == int(model_rng[path].value) == 3
        else:
            np.testing.assert_array_equal(
                jax.random.key_data(variable.value), jax.random.key_data(model_rng[path].value)
            )


def test_ema_default_filter_under_jit_keeps_dtypes() -> None:
    model = _Counted()
    ema = EMA(model, 0.5)

    @nnx.jit
    def step(model: _Counted, ema: EMA) -> None:
        model.w.value = model.w.value + 2.0
        model.seen.value = model.seen.value + 1
        ema.update(model)

    step(model, ema)
    step(model, ema)
    np.testing.assert_allclose(ema.params.w.value, np.full(3, 0.25 * 2.0 + 0.5 * 4.0))
    assert ema.params.seen.value.dtype == jnp.int32 and int(ema.params.seen.value) == 2
