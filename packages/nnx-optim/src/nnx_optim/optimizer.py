"""The Optimizer under Flax's module paths (``flax.nnx.training.optimizer``, also
``flax.nnx.optimizer``).

Every name here is the same object as ``nnx_optim.<name>``.

Example::

    >>> import nnx_optim
    >>> from nnx_optim import optimizer
    >>> optimizer.Optimizer is nnx_optim.Optimizer
    True
"""

from __future__ import annotations

from nnx_optim._opt_state import OptArray, OptState, OptVariable, to_opt_state
from nnx_optim._optimizer import MISSING, ModelAndOptimizer, Optimizer

__all__ = [
    "MISSING",
    "ModelAndOptimizer",
    "OptArray",
    "OptState",
    "OptVariable",
    "Optimizer",
    "to_opt_state",
]
