"""``nnx.metrics``: Flax's ``flax.nnx.metrics`` path; the names of :mod:`nnx_optim.metrics`.

Example::

    >>> import nnx
    >>> from nnx.metrics import Average
    >>> Average is nnx.metrics.Average
    True
"""

from nnx_optim.metrics import *  # noqa: F403
from nnx_optim.metrics import __all__ as __all__
