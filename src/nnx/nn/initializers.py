"""``nnx.nn.initializers``: Flax's ``flax.nnx.nn.initializers`` path; the names of
:mod:`nnx_nn.initializers`.

Example::

    >>> import nnx
    >>> from nnx.nn.initializers import lecun_normal
    >>> lecun_normal is nnx.initializers.lecun_normal
    True
"""

from nnx_nn.initializers import *  # noqa: F403
from nnx_nn.initializers import __all__ as __all__
