"""Plain-value helpers below the Variable layer: tracer liveness, the value +
metadata bundle produced by initializers, one-line value text, and the hook the
sharding module installs."""

from __future__ import annotations

import dataclasses
import operator
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
    "install_operators",
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


def _binary(cls: tp.Any, name: str, op: tp.Callable[[tp.Any, tp.Any], tp.Any]) -> None:
    def forward(self: tp.Any, other: tp.Any) -> tp.Any:
        other = other.get_value() if isinstance(other, cls) else other
        return op(self.get_value(), other)

    def reflected(self: tp.Any, other: tp.Any) -> tp.Any:
        other = other.get_value() if isinstance(other, cls) else other
        return op(other, self.get_value())

    def inplace(self: tp.Any, other: tp.Any) -> tp.Any:
        other = other.get_value() if isinstance(other, cls) else other
        self.set_value(op(self.get_value(), other))
        return self

    forward.__name__ = f"__{name}__"
    reflected.__name__ = f"__r{name}__"
    inplace.__name__ = f"__i{name}__"
    setattr(cls, f"__{name}__", forward)
    setattr(cls, f"__r{name}__", reflected)
    setattr(cls, f"__i{name}__", inplace)


def install_operators(cls: tp.Any) -> None:
    """Give a Variable class arithmetic on its value (``v + 1``), in-place operators
    that update it (``v += 1``) and value comparisons (``v == 1`` is an array)."""
    for _name, _op in {
        "add": operator.add,
        "sub": operator.sub,
        "mul": operator.mul,
        "truediv": operator.truediv,
        "floordiv": operator.floordiv,
        "mod": operator.mod,
        "pow": operator.pow,
        "matmul": operator.matmul,
        "and": operator.and_,
        "or": operator.or_,
        "xor": operator.xor,
        "lshift": operator.lshift,
        "rshift": operator.rshift,
    }.items():
        _binary(cls, _name, _op)

    for _name, _op in {
        "lt": operator.lt,
        "le": operator.le,
        "gt": operator.gt,
        "ge": operator.ge,
        # As in Flax NNX, ``==``/``!=`` compare values (``counter.count == 1`` is an
        # array, not an identity test).  Variables stay hashable by identity (see
        # ``Variable.__hash__``) so they can key identity maps.
        "eq": operator.eq,
        "ne": operator.ne,
    }.items():

        def _compare(
            self: tp.Any, other: tp.Any, _op: tp.Callable[[tp.Any, tp.Any], tp.Any] = _op
        ) -> tp.Any:
            other = other.get_value() if isinstance(other, cls) else other
            return _op(self.get_value(), other)

        setattr(cls, f"__{_name}__", _compare)
