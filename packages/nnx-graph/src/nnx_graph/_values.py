"""Plain-value helpers below the Variable layer: tracer liveness, the value +
metadata bundle produced by initializers, one-line value text, and the hook the
sharding module installs."""

from __future__ import annotations

import dataclasses
import typing as tp

import jax
import numpy as np

try:  # private JAX API (the running trace); without it leak checks are skipped
    from jax._src import core as _jax_core
except ImportError:  # pragma: no cover
    _jax_core = None  # type: ignore[assignment]

__all__ = [
    "VariableMetadata",
    "array_summary",
    "leaked_tracer",
    "value_repr",
    "with_metadata",
]

A = tp.TypeVar("A")


def leaked_tracer(value: object) -> bool:
    """True when ``value`` is a tracer whose trace is no longer running."""
    if not isinstance(value, jax.core.Tracer) or _jax_core is None:
        return False
    try:
        current = _jax_core.trace_ctx.trace
        owner = value._trace
        while current is not None:
            if current is owner:
                return False
            current = getattr(current, "parent_trace", None)
        return True
    except Exception:  # pragma: no cover - private JAX API moved; be permissive
        return False


@dataclasses.dataclass(frozen=True)
class VariableMetadata(tp.Generic[A]):
    """A value bundled with metadata, produced by :func:`with_metadata` initializers.

    When a Variable is constructed from a ``VariableMetadata`` the value is unwrapped
    and the metadata becomes the Variable's metadata.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> v = nnx.Param(nnx.VariableMetadata(jnp.ones(2), {"sharding_names": ("x",)}))
        >>> v.sharding_names
        ('x',)
    """

    raw_value: A
    metadata: tp.Mapping[str, tp.Any] = dataclasses.field(default_factory=dict)


def with_metadata(
    initializer: tp.Callable[..., tp.Any], **metadata: tp.Any
) -> tp.Callable[..., VariableMetadata[tp.Any]]:
    """Wrap an initializer so its result carries Variable metadata.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> init = nnx.with_metadata(jax.nn.initializers.ones, tag="frozen")
        >>> p = nnx.Param(init(jax.random.key(0), (2,)))
        >>> p.tag
        'frozen'
    """

    def wrapped(*args: tp.Any, **kwargs: tp.Any) -> VariableMetadata[tp.Any]:
        return VariableMetadata(initializer(*args, **kwargs), dict(metadata))

    wrapped.__name__ = getattr(initializer, "__name__", "initializer")
    return wrapped


def array_summary(value: tp.Any) -> str | None:
    """``Array(shape=(2, 3), dtype=float32)`` (or the scalar) for array-likes, else None."""
    if isinstance(value, type):  # e.g. a filter such as nnx.Param stored on a module
        return None
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return None
    kind = "Array" if not isinstance(value, np.ndarray) else "ndarray"
    if tuple(shape) == () and not str(dtype).startswith("key"):
        try:
            return f"{kind}({np.asarray(value).item()!r}, dtype={dtype})"
        except Exception:
            pass
    return f"{kind}(shape={tuple(shape)}, dtype={dtype})"


def value_repr(value: tp.Any) -> str:
    """A short one-line repr: arrays summarised, long text cut at 80 characters."""
    summary = array_summary(value)
    if summary is not None:
        return summary
    if isinstance(value, tuple) and any(array_summary(v) for v in value):
        inner = ", ".join(value_repr(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _ShardingHook:
    """Set by the sharding module: applies a Variable's sharding on creation."""

    eager: bool = False

    def apply(self, variable: tp.Any) -> None:
        if self.callback is not None:
            self.callback(variable)

    callback: tp.Callable[[tp.Any], None] | None = None


_sharding_hook = _ShardingHook()
