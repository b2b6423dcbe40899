"""``nnx.training.ema``: Flax's ``flax.nnx.training.ema`` path; the names of :mod:`nnx_optim.ema`.

Example::

    >>> import nnx
    >>> from nnx.training.ema import EMA
    >>> EMA is nnx.EMA
    True
"""

from nnx_optim.ema import *  # noqa: F403
from nnx_optim.ema import __all__ as __all__
