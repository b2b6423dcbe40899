"""Recurrent layers: the cells (``LSTMCell``, ``OptimizedLSTMCell``,
``GRUCell``, ``SimpleCell`` on the ``RNNCellBase`` interface) and the
``RNN``/``Bidirectional`` scanners — the public module behind
``nnx.nn.recurrent``.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_nn.recurrent import RNN, LSTMCell
    >>> rnn = RNN(LSTMCell(3, 4, rngs=nnx_graph.Rngs(0)))
    >>> rnn(jnp.ones((2, 5, 3))).shape
    (2, 5, 4)
"""

import typing as tp

from nnx_graph import Module
from nnx_nn import _dtypes as dtypes
from nnx_nn import initializers
from nnx_nn._activations import sigmoid, tanh
from nnx_nn._linear import Linear, default_bias_init, default_kernel_init
from nnx_nn._recurrent import (
    Carry,
    GRUCell,
    LSTMCell,
    OptimizedLSTMCell,
    RNNCellBase,
    SimpleCell,
    modified_orthogonal,
)
from nnx_nn._rnn import RNN, Bidirectional, RNNBase, flip_sequences
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn, Shape

A = tp.TypeVar("A")
Output = tp.Any
"""What one step of a cell returns besides its carry."""

__all__ = [
    "A",
    "Array",
    "Bidirectional",
    "Carry",
    "Dtype",
    "GRUCell",
    "Initializer",
    "LSTMCell",
    "Linear",
    "Module",
    "OptimizedLSTMCell",
    "Output",
    "PromoteDtypeFn",
    "RNN",
    "RNNBase",
    "RNNCellBase",
    "Shape",
    "SimpleCell",
    "default_bias_init",
    "default_kernel_init",
    "dtypes",
    "flip_sequences",
    "initializers",
    "modified_orthogonal",
    "sigmoid",
    "tanh",
]
