"""``nnx.training.optimizer``: Flax's ``flax.nnx.training.optimizer`` path; the names of
:mod:`nnx_optim.optimizer`.

Example::

    >>> import nnx
    >>> from nnx.training.optimizer import Optimizer
    >>> Optimizer is nnx.Optimizer
    True
"""

from nnx_optim.optimizer import *  # noqa: F403
from nnx_optim.optimizer import __all__ as __all__
