"""nnx: neural networks for JAX with the Flax NNX programming model.

``import nnx`` gives the flat namespace re-exported from the four packages:
``nnx_graph`` (Variables, Modules, Rngs, graph API, transforms, sharding),
``nnx_nn`` (layers), ``nnx_optim`` (Optimizer, metrics) and ``nnx_viz`` (display).

Example::

    >>> import jax.numpy as jnp, nnx
    >>> class Counter(nnx.Module):
    ...     def __init__(self):
    ...         self.count = nnx.Variable(jnp.array(0))
    ...     def __call__(self):
    ...         self.count += 1
    >>> c = Counter(); c(); int(c.count.value)
    1
"""

from nnx.__about__ import __version__  # isort: skip
from nnx_graph import *  # noqa: F403
from nnx_graph import __all__ as _graph_all
from nnx_nn import *  # noqa: F403
from nnx_nn import __all__ as _nn_all
from nnx_nn import initializers as initializers
from nnx_nn import nn as nn
from nnx_optim import *  # noqa: F403
from nnx_optim import __all__ as _optim_all
from nnx_optim import metrics as metrics
from nnx_viz import *  # noqa: F403
from nnx_viz import __all__ as _viz_all

__all__ = [
    *sorted({*_graph_all, *_nn_all, *_optim_all, *_viz_all} - {"__version__"}),
    "__version__",
]
