"""``nnx.transforms``: Flax's ``flax.nnx.transforms`` package (the submodules
``autodiff``, ``compilation``, ``general``, ``iteration``, ``transforms``), plus every
transform of :mod:`nnx_graph.transforms`.

Example::

    >>> import nnx
    >>> from nnx.transforms.compilation import jit
    >>> jit is nnx.jit
    True
"""

from nnx.transforms import autodiff as autodiff
from nnx.transforms import compilation as compilation
from nnx.transforms import general as general
from nnx.transforms import iteration as iteration
from nnx.transforms import transforms as transforms
from nnx_graph.transforms import *  # noqa: F403
from nnx_graph.transforms import __all__ as _transform_names

__all__ = [
    "autodiff",
    "compilation",
    "general",
    "iteration",
    "transforms",
    *_transform_names,
]
