"""``nnx.helpers``: Flax's ``flax.nnx.helpers`` path (``Dict``, ``List``,
``Sequential``, ``TrainState``), gathered from the packages that define them.

Example::

    >>> import nnx
    >>> from nnx.helpers import Sequential
    >>> Sequential is nnx.Sequential
    True
"""

from nnx_graph import Dict as Dict
from nnx_graph import List as List
from nnx_nn import Sequential as Sequential
from nnx_optim import TrainState as TrainState

__all__ = ["Dict", "List", "Sequential", "TrainState"]
