"""``nnx.nn.attention``: Flax's ``flax.nnx.nn.attention`` path; the names of
:mod:`nnx_nn.attention`.

Example::

    >>> import nnx
    >>> from nnx.nn.attention import MultiHeadAttention
    >>> MultiHeadAttention is nnx.MultiHeadAttention
    True
"""

from nnx_nn.attention import *  # noqa: F403
from nnx_nn.attention import __all__ as __all__
