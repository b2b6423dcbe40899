"""``nnx.variablelib``: Flax's ``flax.nnx.variablelib`` path; the names of
:mod:`nnx_graph.variablelib`.

Example::

    >>> import nnx
    >>> from nnx.variablelib import Param
    >>> Param is nnx.Param
    True
"""

from nnx_graph.variablelib import *  # noqa: F403
from nnx_graph.variablelib import __all__ as __all__
