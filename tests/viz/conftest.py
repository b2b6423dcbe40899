"""Small Modules for the nnx-viz tests, built from nnx_graph alone (the layers of
nnx_nn are tested separately, when they exist)."""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import pytest

import nnx_graph as nnx


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs) -> None:
        self.w = nnx.Param(jax.random.uniform(rngs.params(), (din, dout)))
        self.b = nnx.Param(jnp.zeros(dout))
        self.din, self.dout = din, dout

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.w + self.b


class BatchNorm(nnx.Module):
    def __init__(self, features: int) -> None:
        self.mean = nnx.BatchStat(jnp.zeros(features))
        self.var = nnx.BatchStat(jnp.ones(features))
        self.scale = nnx.Param(jnp.ones(features))
        self.bias = nnx.Param(jnp.zeros(features))
        self.use_running_average = False

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, var = self.mean.value, self.var.value
        else:
            mean, var = x.mean(0), x.var(0)
            self.mean.value = 0.9 * self.mean.value + 0.1 * mean
            self.var.value = 0.9 * self.var.value + 0.1 * var
        return (x - mean) / jnp.sqrt(var + 1e-5) * self.scale + self.bias


class Dropout(nnx.Module):
    def __init__(self, rate: float, *, rngs: nnx.Rngs) -> None:
        self.rate = rate
        self.deterministic = False
        self.rngs = rngs.dropout.fork()

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic:
            return x
        keep = jax.random.bernoulli(self.rngs(), 1 - self.rate, x.shape)
        return jnp.where(keep, x / (1 - self.rate), 0)


class MLP(nnx.Module):
    """The seed's MLP: Linear -> BatchNorm -> Dropout -> gelu -> Linear."""

    def __init__(self, din: int, hidden: int, dout: int, *, rngs: nnx.Rngs) -> None:
        self.linear1 = Linear(din, hidden, rngs=rngs)
        self.dropout = Dropout(0.1, rngs=rngs)
        self.bn = BatchNorm(hidden)
        self.linear2 = Linear(hidden, dout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


@pytest.fixture
def mlp() -> MLP:
    return MLP(2, 32, 5, rngs=nnx.Rngs(0))


@pytest.fixture
def layers() -> types.SimpleNamespace:
    """The classes above, for tests that build their own models."""
    return types.SimpleNamespace(Linear=Linear, BatchNorm=BatchNorm, Dropout=Dropout, MLP=MLP)
