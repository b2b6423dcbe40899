"""``nnx.rnglib``: Flax's ``flax.nnx.rnglib`` path; the names of :mod:`nnx_graph.rnglib`.

Example::

    >>> import nnx
    >>> from nnx.rnglib import Rngs
    >>> Rngs is nnx.Rngs
    True
"""

from nnx_graph.rnglib import *  # noqa: F403
from nnx_graph.rnglib import __all__ as __all__
