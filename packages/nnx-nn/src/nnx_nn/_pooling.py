"""Pooling over spatial windows (``jax.lax.reduce_window``) on channels-last
inputs ``(*batch, *window_axes, features)``."""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from nnx_nn._typing import Array

__all__ = ["avg_pool", "max_pool", "min_pool", "pool"]

Padding = str | Sequence[tuple[int, int]]


def pool(
    inputs: Array,
    init: tp.Any,
    reduce_fn: Callable[[tp.Any, tp.Any], tp.Any],
    window_shape: Sequence[int],
    strides: Sequence[int] | None,
    padding: Padding,
) -> Array:
    """Reduce every window with ``reduce_fn`` starting from ``init``.

    Args:
        inputs: ``(*batch, *spatial, features)`` with one spatial axis per window
            axis; without a batch axis one is added and removed.
        init: the reduction's initial value (e.g. ``-inf`` for max).
        reduce_fn: ``(T, T) -> T``, e.g. ``jax.lax.max``.
        window_shape: window size per spatial axis.
        strides: step per spatial axis (default ``1`` everywhere).
        padding: ``'SAME'``, ``'VALID'``, or one ``(low, high)`` pair per spatial
            axis.

    Returns:
        The reduced windows, ``(*batch, *spatial_out, features)``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from nnx_nn import pool
        >>> x = jnp.arange(4.0).reshape(1, 4, 1)
        >>> pool(x, 0.0, jax.lax.add, (2,), (2,), "VALID")[0, :, 0].tolist()
        [1.0, 5.0]
    """
    inputs = jnp.asarray(inputs)
    window = tuple(window_shape)
    strides_t = tuple(strides) if strides else (1,) * len(window)
    if len(strides_t) != len(window):
        raise ValueError(
            f"pool: expected one stride per window axis, found window_shape {window} and "
            f"strides {strides_t}. Fix: give strides with {len(window)} entries."
        )
    num_batch = inputs.ndim - (len(window) + 1)
    if num_batch < 0:
        raise ValueError(
            f"pool: inputs of shape {inputs.shape} have fewer axes than the window "
            f"{window} plus a feature axis. Fix: pass (*batch, *spatial, features) inputs."
        )
    single = num_batch == 0
    if single:
        inputs = inputs[None]
        num_batch = 1
    dims = (1,) * num_batch + window + (1,)
    steps = (1,) * num_batch + strides_t + (1,)
    pads: str | tuple[tuple[int, int], ...]
    if isinstance(padding, str):
        pads = padding
    else:
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
        if len(pairs) != len(window):
            raise ValueError(
                f"pool: expected one (low, high) padding pair per window axis, found "
                f"{padding!r} for window {window}."
            )
        pads = ((0, 0),) * num_batch + pairs + ((0, 0),)
    y = lax.reduce_window(inputs, init, reduce_fn, dims, steps, pads)
    return tp.cast(Array, y[0] if single else y)


def avg_pool(
    inputs: Array,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> Array:
    """Average over each window.

    Args: as in :func:`pool`; ``count_include_pad=False`` divides by the number
    of real (unpadded) elements of each window.

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_nn import avg_pool
        >>> x = jnp.arange(4.0).reshape(1, 4, 1)
        >>> avg_pool(x, (2,), strides=(2,))[0, :, 0].tolist()
        [0.5, 2.5]
        >>> avg_pool(x, (2,), padding="SAME", count_include_pad=False)[0, :, 0].tolist()
        [0.5, 1.5, 2.5, 3.0]
    """
    inputs = jnp.asarray(inputs)
    y = pool(inputs, 0.0, lax.add, window_shape, strides, padding)
    if count_include_pad:
        return y / np.prod(window_shape)
    ones_shape = (*inputs.shape[:-1], 1)
    if len(ones_shape) - 2 == len(window_shape):
        ones_shape = (1, *ones_shape[1:])
    return y / pool(jnp.ones(ones_shape), 0.0, lax.add, window_shape, strides, padding)


def max_pool(
    inputs: Array,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> Array:
    """Maximum over each window (padding counts as ``-inf``).

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_nn import max_pool
        >>> x = jnp.array([[1.0, 3.0, 2.0, 0.0]]).reshape(1, 4, 1)
        >>> max_pool(x, (2,), strides=(2,))[0, :, 0].tolist()
        [3.0, 2.0]
    """
    return pool(inputs, -jnp.inf, lax.max, window_shape, strides, padding)


def min_pool(
    inputs: Array,
    window_shape: Sequence[int],
    strides: Sequence[int] | None = None,
    padding: Padding = "VALID",
) -> Array:
    """Minimum over each window (padding counts as ``+inf``).

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_nn import min_pool
        >>> x = jnp.array([[1.0, 3.0, 2.0, 0.0]]).reshape(1, 4, 1)
        >>> min_pool(x, (2,), strides=(2,))[0, :, 0].tolist()
        [1.0, 0.0]
    """
    return pool(inputs, jnp.inf, lax.min, window_shape, strides, padding)
