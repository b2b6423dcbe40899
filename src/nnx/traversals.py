"""``nnx.traversals``: Flax's ``flax.nnx.traversals`` path; the names of
:mod:`nnx_graph.traversals`.

Example::

    >>> import nnx.traversals
    >>> nnx.traversals.__name__
    'nnx.traversals'
"""

from nnx_graph.traversals import *  # noqa: F403
from nnx_graph.traversals import __all__ as __all__
