"""Flax's older module path for the Pytree base classes (``flax.nnx.object``): the
same names as :mod:`nnx_graph.pytreelib`.

Example::

    >>> from nnx_graph import object as nnx_object, pytreelib
    >>> nnx_object.Pytree is pytreelib.Pytree
    True
"""

from __future__ import annotations

from nnx_graph import pytreelib
from nnx_graph.pytreelib import *  # noqa: F403

__all__: list[str] = []
__all__ += pytreelib.__all__
