"""``nnx.nn.activations``: Flax's ``flax.nnx.nn.activations`` path; the names of
:mod:`nnx_nn.activations`.

Example::

    >>> import nnx
    >>> from nnx.nn.activations import relu
    >>> relu is nnx.relu
    True
"""

from nnx_nn.activations import *  # noqa: F403
from nnx_nn.activations import __all__ as __all__
