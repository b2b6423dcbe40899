"""``nnx.transforms.general``: Flax's ``flax.nnx.transforms.general`` path; the names of
:mod:`nnx_graph.transforms.general`.

Example::

    >>> import nnx.transforms.general
    >>> nnx.transforms.general.__name__
    'nnx.transforms.general'
"""

from nnx_graph.transforms.general import *  # noqa: F403
from nnx_graph.transforms.general import __all__ as __all__
