"""``nnx.transforms.autodiff``: Flax's ``flax.nnx.transforms.autodiff`` path; the names of
:mod:`nnx_graph.transforms.autodiff`.

Example::

    >>> import nnx
    >>> from nnx.transforms.autodiff import grad
    >>> grad is nnx.grad
    True
"""

from nnx_graph.transforms.autodiff import *  # noqa: F403
from nnx_graph.transforms.autodiff import __all__ as __all__
