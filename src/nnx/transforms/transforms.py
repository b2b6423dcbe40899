"""``nnx.transforms.transforms``: Flax's ``flax.nnx.transforms.transforms`` path; the names of
:mod:`nnx_graph.transforms.transforms`.

Example::

    >>> import nnx
    >>> from nnx.transforms.transforms import cond
    >>> cond is nnx.cond
    True
"""

from nnx_graph.transforms.transforms import *  # noqa: F403
from nnx_graph.transforms.transforms import __all__ as __all__
