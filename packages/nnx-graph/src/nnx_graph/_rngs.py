"""Rngs and the operations on the streams in an object graph, gathered for the
package root: the stream classes live in :mod:`nnx_graph._rng_streams` (their
``jax.random`` sampler methods in :mod:`nnx_graph._rng_samplers`), the graph-wide
operations (``split_rngs``, ``fork_rngs``, ``with_rngs``, ``reseed``,
``backup_keys``, ``restore_rngs``) in :mod:`nnx_graph._rng_ops`.

Example::

    >>> import nnx_graph as nnx
    >>> rngs = nnx.Rngs(0, dropout=1)
    >>> with nnx.split_rngs(rngs, splits=2, only="dropout"):
    ...     print(rngs.dropout.key.shape, rngs.default.key.shape)
    (2,) ()
"""

from __future__ import annotations

from nnx_graph._rng_ops import (
    backup_keys,
    fork_rngs,
    reseed,
    restore_rngs,
    split_rngs,
    with_rngs,
)
from nnx_graph._rng_streams import RngCount, RngKey, Rngs, RngState, RngStream

__all__ = [
    "RngCount",
    "RngKey",
    "RngState",
    "RngStream",
    "Rngs",
    "backup_keys",
    "fork_rngs",
    "reseed",
    "restore_rngs",
    "split_rngs",
    "with_rngs",
]
