"""nnx-nn: the layer library of nnx — initializers, activations, Linear/Conv/Embed,
normalization, Dropout, attention, recurrent cells, LoRA, pooling and Sequential,
built on ``nnx_graph`` Modules (Flax NNX 0.12 API).

Example::

    >>> import jax.numpy as jnp, nnx_graph, nnx_nn
    >>> rngs = nnx_graph.Rngs(params=0, dropout=1)
    >>> model = nnx_nn.Sequential(
    ...     nnx_nn.Linear(3, 4, rngs=rngs), nnx_nn.BatchNorm(4, rngs=rngs), nnx_nn.gelu,
    ...     nnx_nn.Dropout(0.1, rngs=rngs), nnx_nn.Linear(4, 3, rngs=rngs))
    >>> model(jnp.ones((2, 3))).shape
    (2, 3)
    >>> model.eval(); model(jnp.ones((2, 3))).shape
    (2, 3)
"""

from nnx_nn import _activations, _attention, initializers
from nnx_nn.__about__ import __version__
from nnx_nn._activations import *  # noqa: F403
from nnx_nn._attention import *  # noqa: F403
from nnx_nn._batch_norm import BatchNorm
from nnx_nn._conv import Conv, ConvTranspose
from nnx_nn._dropout import Dropout
from nnx_nn._embed import Embed
from nnx_nn._errors import InputShapeError, LayerConfigError, LayerInputError
from nnx_nn._linear import Einsum, Linear, LinearGeneral
from nnx_nn._lora import LoRA, LoRALinear, LoRAParam
from nnx_nn._multihead import MultiHeadAttention
from nnx_nn._normalization import GroupNorm, InstanceNorm, LayerNorm, RMSNorm
from nnx_nn._pooling import avg_pool, max_pool, min_pool, pool
from nnx_nn._recurrent import GRUCell, LSTMCell, OptimizedLSTMCell, RNNCellBase, SimpleCell
from nnx_nn._rnn import RNN, Bidirectional
from nnx_nn._sequential import Sequential
from nnx_nn._weight_normalization import SpectralNorm, WeightNorm
from nnx_nn.initializers import Initializer

__all__ = [
    "__version__",
    # initializers
    "initializers",
    "Initializer",
    # linear
    "Linear",
    "LinearGeneral",
    "Einsum",
    "Embed",
    "Conv",
    "ConvTranspose",
    # normalization
    "BatchNorm",
    "LayerNorm",
    "RMSNorm",
    "GroupNorm",
    "InstanceNorm",
    "SpectralNorm",
    "WeightNorm",
    # dropout and attention (attention functions and activations: appended below)
    "Dropout",
    "MultiHeadAttention",
    # recurrent
    "RNNCellBase",
    "LSTMCell",
    "OptimizedLSTMCell",
    "GRUCell",
    "SimpleCell",
    "RNN",
    "Bidirectional",
    # LoRA, Sequential, pooling
    "LoRA",
    "LoRALinear",
    "LoRAParam",
    "Sequential",
    "avg_pool",
    "max_pool",
    "min_pool",
    "pool",
    # errors
    "InputShapeError",
    "LayerConfigError",
    "LayerInputError",
]
__all__ += _activations.__all__
__all__ += _attention.__all__
