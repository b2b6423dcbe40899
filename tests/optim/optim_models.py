"""Small Modules for the nnx-optim tests, built from nnx_graph alone so that the
optimizer is tested independently of nnx_nn's layers."""

from __future__ import annotations

import functools
import typing as tp

import jax
import jax.numpy as jnp

import nnx_graph as nnx


class Linear(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs) -> None:
        self.w = nnx.Param(jax.random.uniform(rngs.params(), (din, dout)) - 0.5)
        self.b = nnx.Param(jnp.zeros(dout))
        self.din, self.dout = din, dout

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.w + self.b


class Dropout(nnx.Module):
    """Inverted dropout drawing keys from its own RNG stream (state in the model)."""

    def __init__(self, rate: float, *, rngs: nnx.Rngs) -> None:
        self.rate = rate
        self.rngs = rngs
        self.deterministic = False

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        keep = jax.random.bernoulli(self.rngs.dropout(), 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0.0)


class BatchNorm(nnx.Module):
    def __init__(self, features: int, momentum: float = 0.9) -> None:
        self.mean = nnx.BatchStat(jnp.zeros(features))
        self.var = nnx.BatchStat(jnp.ones(features))
        self.scale = nnx.Param(jnp.ones(features))
        self.bias = nnx.Param(jnp.zeros(features))
        self.momentum = momentum
        self.use_running_average = False

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, var = self.mean.value, self.var.value
        else:
            mean, var = x.mean(0), x.var(0)
            m = self.momentum
            self.mean.value = m * self.mean.value + (1 - m) * mean
            self.var.value = m * self.var.value + (1 - m) * var
        return (x - mean) / jnp.sqrt(var + 1e-5) * self.scale + self.bias


class MLP(nnx.Module):
    def __init__(
        self, din: int, hidden: int, dout: int, *, rngs: nnx.Rngs, dropout: float = 0.1
    ) -> None:
        self.linear1 = Linear(din, hidden, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)
        self.bn = BatchNorm(hidden)
        self.linear2 = Linear(hidden, dout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


class LoraParam(nnx.Param):  # type: ignore[type-arg]
    pass


class LoraLinear(nnx.Module):
    def __init__(self, linear: Linear, rank: int, *, rngs: nnx.Rngs) -> None:
        self.linear = linear
        self.A = LoraParam(jax.random.normal(rngs(), (linear.din, rank)) * 0.1)
        self.B = LoraParam(jax.random.normal(rngs(), (rank, linear.dout)) * 0.1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x) + x @ self.A @ self.B


def lora_mlp(seed: int = 0, dropout: float = 0.1) -> MLP:
    """The seed program's model: an MLP whose two Linears were replaced by LoRA."""
    rngs = nnx.Rngs(params=seed, dropout=seed + 1, default=seed + 2)
    model = MLP(2, 16, 3, rngs=rngs, dropout=dropout)
    model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)  # type: ignore[assignment]
    model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)  # type: ignore[assignment]
    return model


def batch(step: int, n: int = 8) -> tuple[jax.Array, jax.Array]:
    """A deterministic regression batch for training step ``step``."""
    key = jax.random.fold_in(jax.random.key(1234), step)
    x = jax.random.normal(key, (n, 2))
    y = jnp.stack([x[:, 0] * x[:, 1], jnp.sin(x[:, 0]), x[:, 1] ** 2], axis=1)
    return x, y


def mse(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model(x) - y) ** 2)


def jax_grads(model: nnx.Module, x: jax.Array, y: jax.Array, wrt: object = nnx.Param) -> nnx.State:
    """``nnx.grad(mse)(model, ...)`` spelled with jax.jit/jax.grad over split/merge:
    gradients w.r.t. the ``wrt`` Variables, other state updates (BatchNorm
    statistics, RNG counts) written back to ``model``."""
    graphdef, params, rest = nnx.split(model, wrt, ...)
    grads, new_rest = _grads_and_rest(graphdef, wrt, nnx.pure(params), nnx.pure(rest), x, y)
    nnx.update(model, new_rest)
    return grads  # type: ignore[no-any-return]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _grads_and_rest(
    graphdef: nnx.GraphDef,
    wrt: object,
    params: nnx.State,
    rest: nnx.State,
    x: jax.Array,
    y: jax.Array,
) -> tuple[nnx.State, nnx.State]:
    def loss(params: nnx.State) -> tuple[jax.Array, nnx.State]:
        module = nnx.merge(graphdef, params, rest, copy=True)
        return mse(module, x, y), nnx.pure(nnx.state(module, nnx.Not(wrt)))

    return jax.grad(loss, has_aux=True)(params)  # type: ignore[no-any-return]


def make_train_step() -> tp.Callable[..., jax.Array]:
    """The seed program's jitted train step (``optimizer.update(model, grads)``)."""

    @nnx.jit
    def train_step(model: nnx.Module, optimizer: tp.Any, x: jax.Array, y: jax.Array) -> jax.Array:
        loss, grads = nnx.value_and_grad(mse)(model, x, y)
        optimizer.update(model, grads)
        return loss

    return train_step  # type: ignore[no-any-return]


def run_steps(
    model: nnx.Module, optimizer: tp.Any, steps: int, train_step: tp.Callable[..., jax.Array]
) -> None:
    """Train ``steps`` steps; the batch is chosen by the optimizer's step count, so an
    interrupted run resumes on the data it would have seen."""
    for _ in range(steps):
        train_step(model, optimizer, *batch(int(optimizer.step.value)))
