"""``nnx.spmd``: Flax's ``flax.nnx.spmd`` path; the names of :mod:`nnx_graph.spmd`.

Example::

    >>> import nnx
    >>> from nnx.spmd import with_partitioning
    >>> with_partitioning is nnx.with_partitioning
    True
"""

from nnx_graph.spmd import *  # noqa: F403
from nnx_graph.spmd import __all__ as __all__
