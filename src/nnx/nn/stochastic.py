"""``nnx.nn.stochastic``: Flax's ``flax.nnx.nn.stochastic`` path; the names of
:mod:`nnx_nn.stochastic`.

Example::

    >>> import nnx
    >>> from nnx.nn.stochastic import Dropout
    >>> Dropout is nnx.Dropout
    True
"""

from nnx_nn.stochastic import *  # noqa: F403
from nnx_nn.stochastic import __all__ as __all__
