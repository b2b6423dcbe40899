"""``nnx.nn.linear``: Flax's ``flax.nnx.nn.linear`` path; the names of :mod:`nnx_nn.linear`.

Example::

    >>> import nnx
    >>> from nnx.nn.linear import Linear
    >>> Linear is nnx.Linear
    True
"""

from nnx_nn.linear import *  # noqa: F403
from nnx_nn.linear import __all__ as __all__
