"""``nnx.filterlib``: Flax's ``flax.nnx.filterlib`` path; the names of :mod:`nnx_graph.filterlib`.

Example::

    >>> import nnx
    >>> from nnx.filterlib import PathContains
    >>> PathContains is nnx.PathContains
    True
"""

from nnx_graph.filterlib import *  # noqa: F403
from nnx_graph.filterlib import __all__ as __all__
