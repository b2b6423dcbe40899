"""Compilation transforms under Flax's module path
(``flax.nnx.transforms.compilation``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_graph.transforms import compilation
    >>> compilation.jit(lambda x: x + 1)(jnp.zeros(2)).tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

from nnx_graph.transforms import JitWrapped, StateSharding, jit, jit_partial, shard_map
from nnx_graph.transforms._jit_stages import Compiled, Lowered, Traced

__all__ = [
    "Compiled",
    "JitWrapped",
    "Lowered",
    "StateSharding",
    "Traced",
    "jit",
    "jit_partial",
    "shard_map",
]
