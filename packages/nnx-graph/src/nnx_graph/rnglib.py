"""Random streams under Flax's module path (``flax.nnx.rnglib``).

Every public name here is the same object as ``nnx_graph.<name>``; the module also
carries the helper types of the stream operations (``SplitBackups``,
``StreamBackup``, ``RngValue``, ``MISSING``).

Example::

    >>> from nnx_graph import rnglib
    >>> rngs = rnglib.Rngs(params=0)
    >>> isinstance(rngs.params, rnglib.RngStream)
    True
"""

from __future__ import annotations

from nnx_graph import _rngs
from nnx_graph._rng_ops import MISSING, SplitBackups, StreamBackup
from nnx_graph._rng_streams import RngValue
from nnx_graph._rngs import *  # noqa: F403

__all__: list[str] = ["MISSING", "RngValue", "SplitBackups", "StreamBackup"]
__all__ += _rngs.__all__
