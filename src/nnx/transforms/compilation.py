"""``nnx.transforms.compilation``: Flax's ``flax.nnx.transforms.compilation`` path; the names of
:mod:`nnx_graph.transforms.compilation`.

Example::

    >>> import nnx
    >>> from nnx.transforms.compilation import jit
    >>> jit is nnx.jit
    True
"""

from nnx_graph.transforms.compilation import *  # noqa: F403
from nnx_graph.transforms.compilation import __all__ as __all__
