"""Plain-value helpers below the Variable layer: tracer liveness, the value +
metadata bundle produced by initializers, one-line value text, and the hook the
sharding module installs."""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import threading
import typing as tp

import jax
import numpy as np

try:  # private JAX API (the running trace); without it leak checks are skipped
    from jax._src import core as _jax_core
except ImportError:  # pragma: no cover
    _jax_core = None  # type: ignore[assignment]

_REF_TYPES: tuple[type, ...] = tuple(
    t for t in (getattr(_jax_core, "Ref", None),) if isinstance(t, type)
)
try:  # private JAX API: the abstract type of a traced Ref
    from jax._src.state.types import AbstractRef as _AbstractRef
except ImportError:  # pragma: no cover
    _AbstractRef = ()  # type: ignore[assignment,misc]

__all__ = [
    "HOOK_KEYS",
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


Hook = tp.Callable[..., tp.Any]
"""A Variable hook: ``hook(variable, value) -> value`` for the value hooks,
``hook(variable, axis_index, axis_name)`` for the axis hooks."""

HOOK_KEYS = ("on_get_value", "on_set_value", "on_create_value", "on_add_axis", "on_remove_axis")
"""Metadata keys holding Variable hooks (one callable or a tuple of them)."""


@dataclasses.dataclass
class VariableMetadata(tp.Generic[A]):
    """A value bundled with metadata (and optional hooks), produced by
    :func:`with_metadata` initializers.

    When a Variable is constructed from a ``VariableMetadata`` the value is unwrapped,
    ``metadata`` becomes the Variable's metadata and each non-empty ``on_*`` tuple of
    hooks is stored under its own metadata key (see :func:`with_metadata`).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> v = nnx.Param(nnx.VariableMetadata(jnp.ones(2), metadata={"tag": "x"}))
        >>> v.tag
        'x'
    """

    raw_value: A
    on_set_value: tuple[Hook, ...] = ()
    on_get_value: tuple[Hook, ...] = ()
    on_create_value: tuple[Hook, ...] = ()
    on_add_axis: tuple[Hook, ...] = ()
    on_remove_axis: tuple[Hook, ...] = ()
    metadata: tp.Mapping[str, tp.Any] = dataclasses.field(default_factory=dict)


def _hook_tuple(hooks: Hook | tp.Sequence[Hook]) -> tuple[Hook, ...]:
    if not hooks:
        return ()
    return (hooks,) if callable(hooks) else tuple(hooks)


def with_metadata(
    initializer: tp.Callable[..., tp.Any],
    on_set_value: Hook | tp.Sequence[Hook] = (),
    on_get_value: Hook | tp.Sequence[Hook] = (),
    on_create_value: Hook | tp.Sequence[Hook] = (),
    on_add_axis: Hook | tp.Sequence[Hook] = (),
    on_remove_axis: Hook | tp.Sequence[Hook] = (),
    **metadata: tp.Any,
) -> tp.Callable[..., VariableMetadata[tp.Any]]:
    """Wrap an initializer so its result carries Variable metadata and hooks.

    Hooks (each one callable or a sequence of them) are run by the Variable built
    from the result: ``on_create_value(variable, value)`` once at construction,
    ``on_get_value(variable, value)`` on every read, ``on_set_value(variable, value)``
    on every write (each returns the value to use), and
    ``on_add_axis``/``on_remove_axis(variable, axis_index, axis_name)`` when a
    transform (``nnx.vmap``, ``nnx.scan``) adds or removes an axis. Subclassing the
    Variable and overriding ``get_value``/``set_value`` is the cleaner way to
    customise values; hooks remain for Flax compatibility.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> init = nnx.with_metadata(jax.nn.initializers.ones, tag="frozen")
        >>> p = nnx.Param(init(jax.random.key(0), (2,)))
        >>> p.tag
        'frozen'
        >>> double = nnx.with_metadata(
        ...     jax.nn.initializers.ones, on_get_value=lambda v, x: 2 * x)
        >>> nnx.Param(double(jax.random.key(0), (2,)))[...].tolist()
        [2.0, 2.0]
    """
    hooks = {
        "on_set_value": _hook_tuple(on_set_value),
        "on_get_value": _hook_tuple(on_get_value),
        "on_create_value": _hook_tuple(on_create_value),
        "on_add_axis": _hook_tuple(on_add_axis),
        "on_remove_axis": _hook_tuple(on_remove_axis),
    }

    @functools.wraps(initializer)
    def wrapped(*args: tp.Any, **kwargs: tp.Any) -> VariableMetadata[tp.Any]:
        return VariableMetadata(initializer(*args, **kwargs), **hooks, metadata=dict(metadata))

    return wrapped


def run_value_hooks(hooks: tp.Any, variable: tp.Any, value: tp.Any) -> tp.Any:
    """Apply one value hook or a tuple of them: ``value = hook(variable, value)``."""
    if isinstance(hooks, tuple):
        for hook in hooks:
            value = hook(variable, value)
        return value
    return hooks(variable, value)


def run_axis_hooks(hooks: tp.Any, variable: tp.Any, axis_index: int, axis_name: tp.Any) -> None:
    """Call one axis hook or a tuple of them: ``hook(variable, axis_index, axis_name)``."""
    for hook in hooks if isinstance(hooks, tuple) else (hooks,):
        hook(variable, axis_index, axis_name)


class _VarFlags(threading.local):
    """The ``var_defaults``/``use_eager_sharding`` stacks (per thread, as in Flax):
    the last entry is the current setting, an empty stack means the default."""

    def __init__(self) -> None:
        self.hijax: list[bool] = []
        self.ref: list[bool] = []
        self.eager_sharding: list[bool] = []


var_flags = _VarFlags()


def is_array_ref(value: object) -> bool:
    """Whether ``value`` is a JAX mutable array reference (``jax.new_ref``), concrete
    or traced. (Cheaper than ``isinstance(value, Ref)``, whose metaclass check is slow.)"""
    if type(value) in _REF_TYPES:
        return True
    if isinstance(value, jax.core.Tracer):
        return isinstance(getattr(value, "aval", None), _AbstractRef)
    return False


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

    # Unary operators and conversions act on the value; containers delegate too.
    unary: dict[str, tp.Callable[[tp.Any], tp.Any]] = {
        "neg": operator.neg,
        "pos": operator.pos,
        "abs": abs,
        "invert": operator.invert,
        "len": len,
        "iter": iter,
        "bool": bool,
        "float": float,
        "int": int,
        "complex": complex,
        "index": operator.index,
        "trunc": math.trunc,
        "floor": math.floor,
        "ceil": math.ceil,
    }
    for _name, _fn in unary.items():

        def _unary(self: tp.Any, _fn: tp.Callable[[tp.Any], tp.Any] = _fn) -> tp.Any:
            return _fn(self.get_value())

        _unary.__name__ = f"__{_name}__"
        setattr(cls, f"__{_name}__", _unary)

    def __round__(self: tp.Any, ndigits: int | None = None) -> tp.Any:
        value = self.get_value()
        return round(value) if ndigits is None else round(value, ndigits)

    def __call__(self: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        return self.get_value()(*args, **kwargs)

    cls.__round__ = __round__
    cls.__call__ = __call__
