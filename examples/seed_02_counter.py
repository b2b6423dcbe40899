"""Seed program 2: stateful computation with a custom Variable type.

Shows the seed document's "Stateful computation" section
(/work/shared/seed/flax_nnx_overview.md): a user ``nnx.Variable`` subclass (``Count``)
is state held by the Module, and the forward pass updates it in place
(``self.count += 1``) — the same mechanism ``nnx.BatchNorm`` uses for its running
statistics.

Run (``--small`` is accepted for uniformity and changes nothing)::

    python examples/seed_02_counter.py

The seed text is kept as written; it has no typos, but it relies on the imports of the
previous seed cell, which are added here (``import nnx`` for ``from flax import nnx``).
"""

import argparse

import jax.numpy as jnp

import nnx

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="accepted; the seed is already small")
args = parser.parse_args()


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

# --- checks (not part of the seed) ---------------------------------------------------
# `+=` updated the Variable in place: still the same Count object, now holding 1.
assert isinstance(counter.count, Count), type(counter.count)
assert int(counter.count.value) == 1, counter.count.value
# The Count lives in its own collection: filtering the state by type finds it.
assert int(nnx.state(counter, Count)["count"].value) == 1
print("OK: seed_02_counter count went 0 -> 1 and stayed a Count variable")
