"""Seed program 1: a hand-written Linear layer with eager initialisation.

Shows the basics of the Module system from the seed document
(/work/shared/seed/flax_nnx_overview.md, "Flax NNX Module system"): a Module holds its
parameters directly as ``nnx.Param`` Variables, PRNG keys are threaded explicitly via
``nnx.Rngs``, all shapes are given at construction (no shape inference), and
``nnx.display`` renders the model (text in a terminal, treescope in a notebook).

Run (the program is already tiny; ``--small`` is accepted for uniformity and changes
nothing)::

    python examples/seed_01_linear.py

The seed text is kept as written, except for its typos and ``from flax import nnx``
-> ``import nnx``. Corrected typos:

- ``class Linear(nn.Module)`` -> ``nnx.Module`` (``nn`` is the old Linen alias).
- ``keys=rngs.params()`` but ``key`` is used below -> both are ``key``.
- ``jax.zeros`` -> ``jnp.zeros`` (``jax`` has no ``zeros``).
- ``y=model(x=...)`` but the layer is called ``linear`` -> ``linear(x=...)``.
"""

import argparse

# import flax.linen as nn # old api
import jax
import jax.numpy as jnp

import nnx

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="accepted; the seed is already small")
args = parser.parse_args()


class Linear(nnx.Module):
    def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs):
        key = rngs.params()
        self.w = nnx.Param(jax.random.uniform(key, (fin, fout)))
        self.b = nnx.Param(jnp.zeros(fout))

    def __call__(self, x: jax.Array):
        return jnp.dot(x, self.w) + self.b


linear = Linear(2, 5, rngs=nnx.Rngs(params=0))  # Eager Init
y = linear(x=jnp.ones((1, 2)))

print(y)
nnx.display(linear)  # Help in model viz,generated using treescope lib

# --- checks (not part of the seed) ---------------------------------------------------
assert y.shape == (1, 5), y.shape
# The Params are ordinary Variables on the object, and the output is x @ w + b.
expected = jnp.ones((1, 2)) @ linear.w.value + linear.b.value
assert jnp.allclose(y, expected)
assert linear.w.value.shape == (2, 5) and linear.b.value.shape == (5,)
print("OK: seed_01_linear output shape (1, 5) matches x @ w + b")
