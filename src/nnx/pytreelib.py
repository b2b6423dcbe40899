"""``nnx.pytreelib``: Flax's ``flax.nnx.pytreelib`` path; the names of :mod:`nnx_graph.pytreelib`.

Example::

    >>> import nnx
    >>> from nnx.pytreelib import Pytree
    >>> Pytree is nnx.Pytree
    True
"""

from nnx_graph.pytreelib import *  # noqa: F403
from nnx_graph.pytreelib import __all__ as __all__
