"""``nnx.object``: Flax's ``flax.nnx.object`` path; the names of :mod:`nnx_graph.object`.

Example::

    >>> import nnx
    >>> from nnx.object import Pytree
    >>> Pytree is nnx.Pytree
    True
"""

from nnx_graph.object import *  # noqa: F403
from nnx_graph.object import __all__ as __all__
