"""``nnx.nn``: Flax's ``flax.nnx.nn`` package (the submodules ``activations``,
``attention``, ``dtypes``, ``initializers``, ``linear``, ``lora``, ``normalization``,
``recurrent``, ``stochastic``), plus every layer of :mod:`nnx_nn.nn`.

Example::

    >>> import nnx
    >>> from nnx.nn.attention import combine_masks
    >>> nnx.nn.Linear is nnx.Linear
    True
"""

from nnx_nn.nn import *  # noqa: F403
from nnx_nn.nn import __all__ as _layer_names

# isort: split
# The real submodules bind after the star import (which names nnx_nn's modules);
# `import a.b as b` loads the submodule, which rebinds the attribute.
import nnx.nn.activations as activations  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.attention as attention  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.dtypes as dtypes  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.initializers as initializers  # noqa: F401
import nnx.nn.linear as linear  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.lora as lora  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.normalization as normalization  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.recurrent as recurrent  # type: ignore[no-redef]  # noqa: F401
import nnx.nn.stochastic as stochastic  # type: ignore[no-redef]  # noqa: F401

_SUBMODULES = [
    "activations",
    "attention",
    "dtypes",
    "initializers",
    "linear",
    "lora",
    "normalization",
    "recurrent",
    "stochastic",
]
__all__ = [*_SUBMODULES, *(n for n in _layer_names if n not in _SUBMODULES)]
