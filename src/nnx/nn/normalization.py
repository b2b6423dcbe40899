"""``nnx.nn.normalization``: Flax's ``flax.nnx.nn.normalization`` path; the names of
:mod:`nnx_nn.normalization`.

Example::

    >>> import nnx
    >>> from nnx.nn.normalization import BatchNorm
    >>> BatchNorm is nnx.BatchNorm
    True
"""

from nnx_nn.normalization import *  # noqa: F403
from nnx_nn.normalization import __all__ as __all__
