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

import nnx_graph.transforms as _transforms
from nnx_graph.transforms import JitWrapped, StateSharding, jit, jit_partial, shard_map

__all__ = ["JitWrapped", "StateSharding", "jit", "jit_partial", "shard_map"]


# Flax names the transforms have not exported yet: re-exported as soon as they exist.
_PENDING = ("Lowered", "Compiled", "Traced")
globals().update({n: getattr(_transforms, n) for n in _PENDING if hasattr(_transforms, n)})
__all__ += [n for n in _PENDING if hasattr(_transforms, n)]
