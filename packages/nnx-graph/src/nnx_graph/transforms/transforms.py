"""Control-flow and tracing transforms under Flax's module path
(``flax.nnx.transforms.transforms``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_graph.transforms import transforms
    >>> transforms.eval_shape(lambda x: x.sum(), jnp.ones((2, 3))).shape
    ()
"""

from __future__ import annotations

from nnx_graph.transforms import checkify, cond, eval_shape, make_jaxpr, switch

__all__ = ["checkify", "cond", "eval_shape", "make_jaxpr", "switch"]
