"""``nnx.statelib``: Flax's ``flax.nnx.statelib`` path; the names of :mod:`nnx_graph.statelib`.

Example::

    >>> import nnx
    >>> from nnx.statelib import State
    >>> State is nnx.State
    True
"""

from nnx_graph.statelib import *  # noqa: F403
from nnx_graph.statelib import __all__ as __all__
