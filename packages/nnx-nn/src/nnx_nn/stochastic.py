"""Stochastic layers: ``Dropout`` — the public module behind
``nnx.nn.stochastic``.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_nn.stochastic import Dropout
    >>> Dropout(0.5, deterministic=True)(jnp.ones(3)).tolist()
    [1.0, 1.0, 1.0]
"""

from nnx_graph import Module
from nnx_graph.module import first_from
from nnx_nn._dropout import Dropout

__all__ = ["Dropout", "Module", "first_from"]
