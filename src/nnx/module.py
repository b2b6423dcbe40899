"""``nnx.module``: Flax's ``flax.nnx.module`` path; the names of :mod:`nnx_graph.module`.

Example::

    >>> import nnx
    >>> from nnx.module import Module
    >>> Module is nnx.Module
    True
"""

from nnx_graph.module import *  # noqa: F403
from nnx_graph.module import __all__ as __all__
