"""The seed document's whole program (tests/../seed/flax_nnx_overview.md) with its
typos fixed: custom Linear, MLP with Dropout and BatchNorm, LoRA surgery,
``nnx.Optimizer(model, optax.adam(1e-3))``, the ``@nnx.jit`` train step with
``nnx.value_and_grad`` and ``optimizer.update(grads)``."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import optax
import pytest

import nnx

pytestmark = pytest.mark.skipif(
    not all(hasattr(nnx, name) for name in ("Dropout", "BatchNorm", "gelu")),
    reason="needs nnx.Dropout, nnx.BatchNorm and nnx.gelu from nnx_nn",
)


def test_seed_program() -> None:
    class Linear(nnx.Module):
        def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs) -> None:
            key = rngs.params()
            self.w = nnx.Param(jax.random.uniform(key, (fin, fout)))
            self.b = nnx.Param(jnp.zeros((fout,)))
            self.din, self.dout = fin, fout

        def __call__(self, x: jax.Array) -> jax.Array:
            return jnp.dot(x, self.w) + self.b

    linear = Linear(2, 5, rngs=nnx.Rngs(params=0))
    assert linear(x=jnp.ones((1, 2))).shape == (1, 5)

    class Count(nnx.Variable):  # type: ignore[type-arg]
        pass

    class Counter(nnx.Module):
        def __init__(self) -> None:
            self.count = Count(jnp.array(0))

        def __call__(self) -> None:
            self.count += 1

    counter = Counter()
    counter()
    assert int(counter.count.value) == 1

    class MLP(nnx.Module):
        def __init__(self, fin: int, hidden: int, fout: int, rngs: nnx.Rngs) -> None:
            self.linear1 = Linear(fin, hidden, rngs=rngs)
            self.dropout = nnx.Dropout(rate=0.1, rngs=rngs)
            self.bn = nnx.BatchNorm(hidden, rngs=rngs)
            self.linear2 = Linear(hidden, fout, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            x = nnx.gelu(self.dropout(self.bn(self.linear1(x))))
            return self.linear2(x)

    class LoraParam(nnx.Param):  # type: ignore[type-arg]
        pass

    class LoraLinear(nnx.Module):
        def __init__(self, linear: Linear, rank: int, rngs: nnx.Rngs) -> None:
            self.linear = linear
            self.A = LoraParam(jax.random.normal(rngs(), (linear.din, rank)))
            self.B = LoraParam(jax.random.normal(rngs(), (rank, linear.dout)))

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear(x) + x @ self.A @ self.B

    rngs = nnx.Rngs(0)
    model = MLP(2, 32, 10, rngs=rngs)
    model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)  # type: ignore[assignment]
    model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)  # type: ignore[assignment]
    assert model(x=jnp.ones((3, 2))).shape == (3, 10)

    optimizer = nnx.Optimizer(model, optax.adam(1e-3))  # reference sharing
    assert optimizer.model is model

    @nnx.jit
    def train_step(
        model: MLP,
        optimizer: nnx.Optimizer,  # type: ignore[type-arg]
        x: jax.Array,
        y: jax.Array,
    ) -> jax.Array:
        def loss_fn(model: MLP) -> jax.Array:
            y_pred = model(x)
            return jnp.mean((y_pred - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(grads)
        return loss

    x, y = jnp.ones((5, 2)), jnp.ones((5, 10))
    losses, steps = [], []
    for _epoch in range(100):
        loss = train_step(model, optimizer, x, y)
        losses.append(float(loss))
        steps.append(int(optimizer.step.value))
    assert steps == list(range(1, 101))
    # decreasing, up to the noise dropout adds
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert sum(b < a for a, b in itertools.pairwise(losses)) > 60
    assert optimizer.model is model and isinstance(model.linear1, LoraLinear)
    # the BatchNorm statistics were updated through nnx.jit as well
    assert float(jnp.abs(nnx.state(model, nnx.BatchStat).to_pure_dict()["bn"]["mean"]).sum()) > 0
