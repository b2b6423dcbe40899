"""Mapping and looping transforms under Flax's module path
(``flax.nnx.transforms.iteration``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_graph.transforms import iteration
    >>> iteration.vmap(lambda x: x * 2)(jnp.arange(3.0)).tolist()
    [0.0, 2.0, 4.0]
"""

from __future__ import annotations

from nnx_graph.transforms import (
    Carry,
    StateAxes,
    fori_loop,
    pmap,
    scan,
    transform_metadata,
    vmap,
    while_loop,
)

__all__ = [
    "Carry",
    "StateAxes",
    "fori_loop",
    "pmap",
    "scan",
    "transform_metadata",
    "vmap",
    "while_loop",
]
