"""Flax's module path ``flax.nnx.transforms.general``.

Flax keeps ``split_inputs``/``merge_inputs`` here (lifting a plain JAX transform
over graph nodes by hand); nnx does not provide them yet: use the nnx transforms
(``nnx.jit``, ``nnx.vmap``, ...), or ``nnx.split``/``nnx.merge`` around the JAX
transform.

Example::

    >>> from nnx_graph.transforms import general
    >>> general.__all__
    []
"""

from __future__ import annotations

__all__: list[str] = []
