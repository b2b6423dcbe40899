"""Weight averaging under Flax's module path (``flax.nnx.training.ema``).

Example::

    >>> import nnx_optim
    >>> from nnx_optim import ema
    >>> ema.EMA is nnx_optim.EMA
    True
"""

from __future__ import annotations

from nnx_optim._ema import EMA

__all__ = ["EMA"]
