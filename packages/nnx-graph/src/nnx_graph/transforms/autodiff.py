"""Autodiff transforms under Flax's module path (``flax.nnx.transforms.autodiff``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_graph.transforms import autodiff
    >>> autodiff.grad(lambda x: (x**2).sum())(jnp.ones(2)).tolist()
    [2.0, 2.0]
"""

from __future__ import annotations

from nnx_graph.transforms import (
    DiffState,
    custom_vjp,
    grad,
    jvp,
    remat,
    value_and_grad,
    vjp,
)
from nnx_graph.transforms._custom_vjp import CustomVjp

__all__ = ["CustomVjp", "DiffState", "custom_vjp", "grad", "jvp", "remat", "value_and_grad", "vjp"]
