"""``nnx.training``: Flax's ``flax.nnx.training`` package (``ema``, ``metrics``,
``optimizer``), backed by :mod:`nnx_optim`.

Example::

    >>> import nnx
    >>> from nnx.training.metrics import Average
    >>> Average is nnx.metrics.Average
    True
"""

from nnx.training import ema as ema
from nnx.training import metrics as metrics
from nnx.training import optimizer as optimizer

__all__ = ["ema", "metrics", "optimizer"]
