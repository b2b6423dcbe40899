"""Seed program 3: nested Modules, LoRA model surgery and a jitted training loop.

Shows the seed document's "Model surgery" section
(/work/shared/seed/flax_nnx_overview.md): Modules nest by sub-classing; any
sub-Module attribute can be replaced by plain assignment (here each ``Linear`` of an
MLP is wrapped in a ``LoraLinear`` that adds ``LoraParam`` Variables); ``nnx.Optimizer``
holds a shared reference to the model, so inside ``@nnx.jit`` the step
``optimizer.update(grads)`` updates the caller's model (Params, including the
``LoraParam`` subclass), while BatchNorm statistics and Dropout RNG state update too.

Run (100 epochs on one batch, a few seconds; ``--small`` is accepted for uniformity and
changes nothing)::

    python examples/seed_03_surgery_and_training.py

The seed text is kept as written, except for its typos and ``from flax import nnx``
-> ``import nnx``. Corrected typos:

- ``nn.Module`` / ``nn.BatchNorm`` -> ``nnx.Module`` / ``nnx.BatchNorm``.
- ``keys=rngs.params()`` but ``key`` is used below -> both are ``key``.
- ``jax.zeros`` -> ``jnp.zeros``.
- ``LoraLinear`` reads ``linear.din`` / ``linear.dout`` which ``Linear`` never set ->
  ``Linear.__init__`` now stores ``self.din = fin`` and ``self.dout = fout``.
- ``MLP.__call__`` returns ``self.linear(x)`` -> ``self.linear2(x)``.
- ``optax.Adam`` -> ``optax.adam``.
- ``loss_fn`` computes ``pred`` but uses ``y_pred`` -> ``pred``.
- ``jnp.value_and_grad`` -> ``nnx.value_and_grad`` (jax.numpy has none, and a Module
  argument needs the nnx transform).
- ``optimize.update(grads)`` -> ``optimizer.update(grads)``.
- ``y=jnp.ones((5,10))`` while the model outputs ``fout=5`` features -> ``(5, 5)``.
"""

import argparse

import jax
import jax.numpy as jnp

import nnx

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="accepted; the seed is already small")
args = parser.parse_args()


# Can create our custom layer
class Linear(nnx.Module):
    def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs):
        key = rngs.params()
        self.w = nnx.Param(jax.random.uniform(key, (fin, fout)))
        self.b = nnx.Param(jnp.zeros(fout))
        self.din, self.dout = fin, fout

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


# To store stateful contexts,use nnx.Variable if vector
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


rngs = nnx.Rngs(0)
model = MLP(2, 32, 5, rngs=rngs)

# Model surgery.
model.linear1 = LoraLinear(model.linear1, 4, rngs=rngs)
model.linear2 = LoraLinear(model.linear2, 4, rngs=rngs)

y = model(x=jnp.ones((3, 2)))

nnx.display(model)

# optax: contain optimizers
import optax  # noqa: E402  (the seed imports optax here, at the point it is introduced)

optimizer = nnx.Optimizer(model, optax.adam(1e-3))  # refrence sharing
# The optimizer holds a mutable reference to the model - this relationship is preserved
# inside the train_step function making it possible to update the model’s parameters
# using the optimizer alone.


@nnx.jit  # auto state management
def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
    def loss_fn(model: MLP):
        pred = model(x)
        return jnp.mean((pred - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(grads)
    return loss


# --- checks (not part of the seed): remember the starting point ----------------------
w1_before = model.linear1.linear.w.value
A1_before = model.linear1.A.value
bn_mean_before = model.bn.mean.value
losses = []

x, y = jnp.ones((5, 2)), jnp.ones((5, 5))
for epoch in range(100):
    loss = train_step(model, optimizer, x, y)
    print(f"EPOCH:{epoch}:")
    print(f"loss:{loss},optimizer-step-val:{optimizer.step.value = }")
    losses.append(float(loss))

# --- checks (not part of the seed) ---------------------------------------------------
assert y.shape == (5, 5)
assert model(jnp.ones((3, 2))).shape == (3, 5)
assert isinstance(model.linear1, LoraLinear) and isinstance(model.linear1.A, LoraParam)
# The optimizer updated the caller's model through its shared reference.
assert int(optimizer.step.value) == 100, optimizer.step.value
assert not jnp.array_equal(model.linear1.linear.w.value, w1_before)  # base Param trained
assert not jnp.array_equal(model.linear1.A.value, A1_before)  # LoraParam trained too
assert not jnp.array_equal(model.bn.mean.value, bn_mean_before)  # BatchStat updated
first, last = losses[0], losses[-1]
assert last < first, (first, last)
print(f"OK: seed_03 loss decreased {first:.4f} -> {last:.4f} in 100 steps, step=100")
