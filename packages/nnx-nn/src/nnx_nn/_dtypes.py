"""Dtype promotion used by every layer: one dtype for inputs and parameters.

``dtype=None`` means "infer": the result type of the arrays involved, raised to a
floating type when ``inexact`` (so integer inputs meet float32 kernels in float32).
An explicit ``dtype`` (e.g. ``bfloat16`` with ``param_dtype=float32``) casts every
array to it: this is how mixed precision works.
"""

from __future__ import annotations

import typing as tp

import jax.numpy as jnp

from nnx_nn._typing import Dtype

__all__ = ["canonicalize_dtype", "promote_dtype"]

T = tp.TypeVar("T", bound=tuple[tp.Any, ...])


def canonicalize_dtype(*args: tp.Any, dtype: Dtype | None = None, inexact: bool = True) -> tp.Any:
    """The dtype ``args`` should be cast to: ``dtype`` when given, otherwise the
    result type of the non-``None`` ``args`` (at least ``float32`` when
    ``inexact``).

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_nn.nn import canonicalize_dtype
        >>> canonicalize_dtype(jnp.ones(2, jnp.int32))
        dtype('float32')
        >>> canonicalize_dtype(jnp.ones(2), dtype=jnp.bfloat16)
        dtype(bfloat16)
    """
    if dtype is None:
        present = [jnp.asarray(x) for x in args if x is not None]
        result = jnp.result_type(*present)
        if inexact and not jnp.issubdtype(result, jnp.inexact):
            result = jnp.promote_types(jnp.float32, result)
        return result
    result = jnp.dtype(dtype)
    if inexact and not jnp.issubdtype(result, jnp.inexact):
        raise ValueError(
            f"Expected a floating or complex dtype for this computation, found {result}. "
            "Fix: pass dtype=jnp.float32 (or bfloat16/float16), or dtype=None to infer it."
        )
    return result


def promote_dtype(args: T, /, *, dtype: Dtype | None = None, inexact: bool = True) -> T:
    """Cast every array in the tuple ``args`` to one dtype (see
    :func:`canonicalize_dtype`); ``None`` entries stay ``None``.

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_nn.nn import promote_dtype
        >>> x, w, b = promote_dtype((jnp.ones(2), jnp.ones(2), None), dtype=jnp.bfloat16)
        >>> x.dtype, w.dtype, b
        (dtype(bfloat16), dtype(bfloat16), None)
    """
    target = canonicalize_dtype(*args, dtype=dtype, inexact=inexact)
    return tp.cast(T, tuple(None if x is None else jnp.asarray(x, target) for x in args))
