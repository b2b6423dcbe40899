"""``nnx.nn.recurrent``: Flax's ``flax.nnx.nn.recurrent`` path; the names of
:mod:`nnx_nn.recurrent`.

Example::

    >>> import nnx
    >>> from nnx.nn.recurrent import LSTMCell
    >>> LSTMCell is nnx.LSTMCell
    True
"""

from nnx_nn.recurrent import *  # noqa: F403
from nnx_nn.recurrent import __all__ as __all__
