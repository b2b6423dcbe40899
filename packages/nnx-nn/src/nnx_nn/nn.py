"""The ``nnx.nn`` namespace: every layer and function of :mod:`nnx_nn`, the
``initializers`` submodule, and the helpers layers are built from (dtype
promotion, padding canonicalization, sequence flipping, ...).

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_nn import nn
    >>> nn.Linear(3, 4, rngs=nnx_graph.Rngs(0))(jnp.ones((2, 3))).shape
    (2, 4)
    >>> nn.initializers.zeros_init() is nn.initializers.zeros
    True
"""

from nnx_nn import *  # noqa: F403
from nnx_nn import __all__ as _layer_names
from nnx_nn import activations as activations
from nnx_nn import attention as attention
from nnx_nn import dtypes as dtypes
from nnx_nn import initializers as initializers
from nnx_nn import linear as linear
from nnx_nn import lora as lora
from nnx_nn import normalization as normalization
from nnx_nn import recurrent as recurrent
from nnx_nn import stochastic as stochastic
from nnx_nn._attention import combine_masks as combine_masks
from nnx_nn._conv import canonicalize_padding as canonicalize_padding
from nnx_nn._dtypes import canonicalize_dtype as canonicalize_dtype
from nnx_nn._dtypes import promote_dtype as promote_dtype
from nnx_nn._embed import default_embed_init as default_embed_init
from nnx_nn._linear import default_bias_init as default_bias_init
from nnx_nn._linear import default_kernel_init as default_kernel_init
from nnx_nn._norm_base import compute_stats as compute_stats
from nnx_nn._norm_base import normalize as normalize
from nnx_nn._recurrent import modified_orthogonal as modified_orthogonal
from nnx_nn._rnn import flip_sequences as flip_sequences

__all__ = [
    *[name for name in _layer_names if name != "__version__"],
    "activations",
    "attention",
    "dtypes",
    "linear",
    "lora",
    "normalization",
    "recurrent",
    "stochastic",
    "canonicalize_dtype",
    "canonicalize_padding",
    "compute_stats",
    "default_bias_init",
    "default_embed_init",
    "default_kernel_init",
    "flip_sequences",
    "modified_orthogonal",
    "normalize",
    "promote_dtype",
]
