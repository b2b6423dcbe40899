"""``nnx.transforms.iteration``: Flax's ``flax.nnx.transforms.iteration`` path; the names of
:mod:`nnx_graph.transforms.iteration`.

Example::

    >>> import nnx
    >>> from nnx.transforms.iteration import vmap
    >>> vmap is nnx.vmap
    True
"""

from nnx_graph.transforms.iteration import *  # noqa: F403
from nnx_graph.transforms.iteration import __all__ as __all__
