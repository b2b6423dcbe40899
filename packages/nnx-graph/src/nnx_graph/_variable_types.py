"""The built-in Variable types (collections): ``Param``, ``BatchStat``, ``Cache``,
``Intermediate`` and ``Perturbation``. Import them from ``nnx_graph``."""

from __future__ import annotations

import typing as tp

from nnx_graph._variables import Variable

A = tp.TypeVar("A")

__all__ = ["BatchStat", "Cache", "Intermediate", "Param", "Perturbation"]


class Param(Variable[A]):
    """A trainable parameter. ``nnx.grad`` differentiates w.r.t. ``Param`` by default.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.Param(jnp.ones(3)).shape
        (3,)
    """

    __slots__ = ()


class BatchStat(Variable[A]):
    """Running statistics (e.g. BatchNorm mean/var), updated in training, not trained.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.BatchStat(jnp.zeros(3)).value.tolist()
        [0.0, 0.0, 0.0]
    """

    __slots__ = ()


class Cache(Variable[A]):
    """Cached values such as an attention decode cache.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.Cache(jnp.zeros((2, 4))).shape
        (2, 4)
    """

    __slots__ = ()


class Intermediate(Variable[A]):
    """Intermediate values stored with :meth:`Module.sow`.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.Intermediate((jnp.ones(1),)).value[0].shape
        (1,)
    """

    __slots__ = ()


class Perturbation(Intermediate[A]):
    """Zero-valued perturbations added with :meth:`Module.perturb` (for gradients
    w.r.t. intermediates).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> float(nnx.Perturbation(jnp.zeros(())).value)
        0.0
    """

    __slots__ = ()
