"""Random streams under Flax's module path (``flax.nnx.rnglib``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> from nnx_graph import rnglib
    >>> rngs = rnglib.Rngs(params=0)
    >>> isinstance(rngs.params, rnglib.RngStream)
    True
"""

from __future__ import annotations

import nnx_graph as _nnx
from nnx_graph import _rngs
from nnx_graph._rngs import *  # noqa: F403

__all__: list[str] = []
__all__ += _rngs.__all__


# Flax names the core has not exported yet: re-exported here as soon as nnx_graph has them.
_PENDING = ("backup_keys",)
globals().update({n: getattr(_nnx, n) for n in _PENDING if hasattr(_nnx, n)})
__all__ += [n for n in _PENDING if hasattr(_nnx, n)]
