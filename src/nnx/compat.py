"""``nnx.compat``: Flax's ``flax.nnx.compat`` path; the names of :mod:`nnx_graph.compat`.

Example::

    >>> import nnx.compat
    >>> nnx.compat.__name__
    'nnx.compat'
"""

from nnx_graph.compat import *  # noqa: F403
from nnx_graph.compat import __all__ as __all__
