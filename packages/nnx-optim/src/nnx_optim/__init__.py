"""nnx-optim: training utilities for nnx.

``Optimizer`` runs any optax transformation on a model's Variables and keeps its
state as Variables; ``metrics`` accumulates statistics; ``EMA`` averages weights;
``save_checkpoint``/``restore_checkpoint`` and ``save_safetensors``/
``load_safetensors`` persist it all.

Example::

    >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
    >>> class Model(nnx.Module):
    ...     def __init__(self):
    ...         self.w = nnx.Param(jnp.zeros(2))
    >>> model = Model()
    >>> optimizer = nnx_optim.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)
    >>> _ = optimizer.update(model, nnx.State({"w": jnp.ones(2)}))
    >>> model.w.value.tolist(), int(optimizer.step.value)
    ([-0.5, -0.5], 1)
"""

import typing as _tp

from nnx_optim import metrics
from nnx_optim.__about__ import __version__
from nnx_optim._ema import EMA
from nnx_optim._opt_state import OptArray, OptNamedTuple, OptState, OptVariable
from nnx_optim._optimizer import GradientShapeError, ModelAndOptimizer, Optimizer
from nnx_optim._train_state import TrainState

__all__ = [
    # optimizer
    "GradientShapeError",
    "ModelAndOptimizer",
    "OptArray",
    "OptNamedTuple",
    "OptState",
    "OptVariable",
    "Optimizer",
    "TrainState",
    # averaging and metrics
    "EMA",
    "metrics",
    "__version__",
]
# checkpoints: loaded on first use (``import nnx_optim`` does not pay for them)
_CHECKPOINT_NAMES = (
    "CheckpointError",
    "CheckpointMismatchError",
    "load_safetensors",
    "restore_checkpoint",
    "save_checkpoint",
    "save_safetensors",
)
__all__ += _CHECKPOINT_NAMES

if _tp.TYPE_CHECKING:
    from nnx_optim._checkpoint import *  # noqa: F403


def __getattr__(name: str) -> _tp.Any:
    if name in _CHECKPOINT_NAMES:
        from nnx_optim import _checkpoint

        value = getattr(_checkpoint, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnx_optim' has no attribute {name!r}")
