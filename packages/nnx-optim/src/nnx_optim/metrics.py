"""Metrics for training and evaluation loops (``nnx.metrics``).

Every metric keeps its state in Variables, so it can be updated inside ``nnx.jit``
and saved with a checkpoint.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_optim import metrics
    >>> m = metrics.MultiMetric(loss=metrics.Average("loss"), acc=metrics.Accuracy())
    >>> m.update(loss=jnp.array([0.5, 1.5]), logits=jnp.eye(2), labels=jnp.array([0, 0]))
    >>> {k: float(v) for k, v in m.compute().items()}
    {'loss': 1.0, 'acc': 0.5}
"""

from nnx_optim import _metrics
from nnx_optim._metrics import *  # noqa: F403

__all__: list[str] = []
__all__ += _metrics.__all__
