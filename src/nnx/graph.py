"""``nnx.graph``: Flax's ``flax.nnx.graph`` path; the names of :mod:`nnx_graph.graphlib`.

Example::

    >>> import nnx
    >>> from nnx.graph import split
    >>> split is nnx.split
    True
"""

from nnx_graph.graphlib import *  # noqa: F403
from nnx_graph.graphlib import __all__ as __all__
