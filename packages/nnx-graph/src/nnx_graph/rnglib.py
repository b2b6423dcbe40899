"""Random streams under Flax's module path (``flax.nnx.rnglib``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> from nnx_graph import rnglib
    >>> rngs = rnglib.Rngs(params=0)
    >>> isinstance(rngs.params, rnglib.RngStream)
    True
"""

from __future__ import annotations

from nnx_graph import (
    RngCount,
    RngKey,
    Rngs,
    RngState,
    RngStream,
    fork_rngs,
    reseed,
    restore_rngs,
    split_rngs,
    with_rngs,
)

__all__ = [
    "RngCount",
    "RngKey",
    "RngState",
    "RngStream",
    "Rngs",
    "fork_rngs",
    "reseed",
    "restore_rngs",
    "split_rngs",
    "with_rngs",
]
