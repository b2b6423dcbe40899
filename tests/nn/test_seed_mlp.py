"""The seed document's third program (MLP with nnx.Dropout, nnx.BatchNorm and
nnx.gelu, then LoRA surgery on both linears and a forward pass), with its typos
fixed (see examples/seed_03_surgery_and_training.py for the list), written against
``import nnx``. The library's own LoRA layers are tested in
test_lora_pooling_sequential.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnx


# Can create our custom layer
class Linear(nnx.Module):
    def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs):
        key = rngs.params()
        self.w = nnx.Param(jax.random.uniform(key, (fin, fout)))
        self.b = nnx.Param(jnp.zeros(fout))
        self.din, self.dout = fin, fout  # read by LoraLinear below

    def __call__(self, x: jax.Array):
        return jnp.dot(x, self.w) + self.b


# Nesting layers and modules using sub-classing
class MLP(nnx.Module):
    def __init__(self, fin: int, hidden: int, fout: int, rngs: nnx.Rngs):
        self.linear1 = Linear(fin, hidden, rngs=rngs)
        self.dropout = nnx.Dropout(rate=0.1, rngs=rngs)
        self.bn = nnx.BatchNorm(hidden, rngs=rngs)
        self.linear2 = Linear(hidden, fout, rngs=rngs)

    def __call__(self, x: jax.Array):
        x = nnx.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


# To store stateful contexts, use nnx.Variable if vector
class LoraParam(nnx.Param):
    pass


# Custom Lora-layer
class LoraLinear(nnx.Module):
    def __init__(self, linear: Linear, rank: int, rngs: nnx.Rngs):
        self.linear = linear
        self.A = LoraParam(jax.random.normal(rngs(), (linear.din, rank)))
        self.B = LoraParam(jax.random.normal(rngs(), (rank, linear.dout)))

    def __call__(self, x: jax.Array):
        return self.linear(x) + x @ self.A @ self.B


def test_seed_program_three() -> None:
    rngs = nnx.Rngs(0)
    model = MLP(2, 32, 5, rngs=rngs)

    # Model surgery.
    model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)
    model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)

    y = model(x=jnp.ones((3, 2)))
    assert y.shape == (3, 5)
    assert np.isfinite(np.asarray(y)).all()

    lora_params = nnx.state(model, LoraParam)
    assert sorted(p for p, _ in nnx.to_flat_state(lora_params)) == [
        ("linear1", "A"),
        ("linear1", "B"),
        ("linear2", "A"),
        ("linear2", "B"),
    ]
    assert float(model.bn.mean.value.sum()) != 0.0  # training mode updated the stats
    model.eval()
    np.testing.assert_array_equal(
        np.asarray(model(jnp.ones((3, 2)))), np.asarray(model(jnp.ones((3, 2))))
    )
    if hasattr(nnx, "display"):
        nnx.display(model)
