"""Variables: mutable boxes around a value plus metadata.

A Variable's *type* is its collection: ``Param`` for trainable parameters,
``BatchStat`` for running statistics, ``Cache`` for decode caches, ``Intermediate``
for sown values, and any user subclass.  Variables are what transforms and the
graph API thread in and out of JAX; everything else on a Module is structure.
"""

from __future__ import annotations

import copy as _copy
import operator
import typing as tp

import jax
import numpy as np

from nnx_graph import _epoch
from nnx_graph._errors import TraceLeakError
from nnx_graph._hashing import Frozen, hashable
from nnx_graph._values import (
    VariableMetadata,
    _sharding_hook,
    install_operators,
    with_metadata,
)

# Helpers other modules import from here (kept out of ``__all__``: not public API).
from nnx_graph._values import array_summary as array_summary
from nnx_graph._values import leaked_tracer as leaked_tracer
from nnx_graph._values import value_repr as value_repr

__all__ = [
    "BatchStat",
    "Cache",
    "Intermediate",
    "Param",
    "Perturbation",
    "Variable",
    "VariableMetadata",
    "VariableState",
    "with_metadata",
]

_leaked_tracer = leaked_tracer  # older name, still read by the transforms

A = tp.TypeVar("A")
V = tp.TypeVar("V", bound="Variable[tp.Any]")

_SLOTS = frozenset({"_raw_value", "_var_metadata", "_nnx_observed", "_nnx_frozen"})


class Variable(tp.Generic[A]):
    """A mutable box holding a value (usually a ``jax.Array``) plus metadata.

    The Variable's type says what kind of state it is (its collection). Read the
    value with ``v.value``, ``v[...]`` or ``v.get_value()``; write it with
    ``v.value = x``, ``v[...] = x`` or ``v.set_value(x)``. Arithmetic works on the
    value, and in-place operators (``v += 1``) update the Variable itself.
    Extra keyword arguments become metadata, readable as attributes.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Count(nnx.Variable): pass
        >>> c = Count(jnp.array(0), tag="steps")
        >>> c += 1
        >>> int(c.value), c.tag
        (1, 'steps')
    """

    __slots__ = ("_raw_value", "_var_metadata", "_nnx_observed", "_nnx_frozen", "__weakref__")

    _raw_value: A
    _var_metadata: dict[str, tp.Any]
    _nnx_observed: bool
    _nnx_frozen: Frozen | None  # cached hashable view of the metadata (see metadata_key)

    def __init__(self, value: A | VariableMetadata[A], **metadata: tp.Any) -> None:
        if isinstance(value, VariableMetadata):
            metadata = {**value.metadata, **metadata}
            value = value.raw_value
        if isinstance(value, Variable):
            metadata = {**value.get_metadata(), **metadata}
            value = value._raw_value
        # eager_sharding / is_hijax / has_ref are accepted for compatibility.
        for compat in ("is_hijax", "has_ref", "is_mutable"):
            metadata.pop(compat, None)
        _init_slots(self, value, metadata)
        if metadata.get("eager_sharding") or _sharding_hook.eager:
            _sharding_hook.apply(self)

    # ------------------------------------------------------------------ pytree
    def __init_subclass__(cls, **kwargs: tp.Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    # ------------------------------------------------------------------ value
    @property
    def value(self) -> A:
        """The held value."""
        return self.get_value()

    @value.setter
    def value(self, value: A) -> None:
        self.set_value(value)

    @property
    def raw_value(self) -> A:
        """The held value, without any checks."""
        return self._raw_value

    @raw_value.setter
    def raw_value(self, value: A) -> None:
        object.__setattr__(self, "_raw_value", value)

    def get_value(self, index: tp.Any = None) -> A:
        """Return the value (or ``value[index]`` when an index is given)."""
        value = self._raw_value
        if isinstance(value, jax.core.Tracer) and leaked_tracer(value):
            raise TraceLeakError(
                f"{self._describe()} holds a JAX tracer from a trace that has finished "
                "(a value computed inside jax.jit/grad/vmap was stored on an object "
                "that outlives the transform).\n"
                "Expected: a concrete array outside of transforms.\n"
                "Fix: pass the object into the transform as an argument (nnx.jit, "
                "nnx.grad, ... carry updates back automatically) or return the value "
                "from the transformed function and assign it outside. To see where this "
                "Variable is stored, call nnx.state(model): that error names its path."
            )
        if index is not None and index is not Ellipsis:
            return value[index]  # type: ignore[index, no-any-return]
        return value

    def set_value(self, value: A, *, index: tp.Any = None) -> None:
        """Replace the value (or ``value[index]`` when an index is given)."""
        if isinstance(value, Variable):
            value = value._raw_value
        if index is not None and index is not Ellipsis:
            value = self._raw_value.at[index].set(value)  # type: ignore[attr-defined]
        object.__setattr__(self, "_raw_value", value)

    def __getitem__(self, index: tp.Any) -> tp.Any:
        if index is Ellipsis:
            return self.get_value()
        return self.get_value()[index]  # type: ignore[index]

    def __setitem__(self, index: tp.Any, value: tp.Any) -> None:
        self.set_value(value, index=index)

    # ------------------------------------------------------------------ metadata
    def get_metadata(
        self,
        name: str | None = None,
        default: tp.Any = ...,
        *,
        exclude_required: bool | None = None,
    ) -> tp.Any:
        """All metadata as a dict, or one entry by name. (Flax's required keys
        ``hijax``/``ref``/``eager_sharding`` are not stored here, so
        ``exclude_required`` changes nothing.)

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> nnx.Param(jnp.zeros(1), tag="a").get_metadata()
            {'tag': 'a'}
        """
        if name is None:
            return dict(self._var_metadata)
        if name in self._var_metadata:
            return self._var_metadata[name]
        if default is ...:
            raise AttributeError(
                f"{self._describe()} has no metadata {name!r}; expected one of "
                f"{sorted(self._var_metadata)}. Fix: set it first (v.set_metadata({name}=...)) "
                "or pass a default: v.get_metadata(name, default)."
            )
        return default

    def set_metadata(self, *args: tp.Any, **metadata: tp.Any) -> None:
        """Set metadata entries: ``set_metadata(key=value)`` or ``set_metadata(dict)``.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> p = nnx.Param(jnp.zeros(1)); p.set_metadata(tag="t"); p.tag
            't'
        """
        if len(args) == 1 and isinstance(args[0], tp.Mapping):
            object.__setattr__(self, "_var_metadata", dict(args[0]))
        elif len(args) == 2 and isinstance(args[0], str):
            self._var_metadata[args[0]] = args[1]
        elif args:
            raise TypeError(
                f"{self._describe()}.set_metadata expected keyword arguments, a mapping, "
                f"or (name, value); found positional arguments {args!r}. Fix: "
                "v.set_metadata(name=value)."
            )
        self._var_metadata.update(metadata)
        object.__setattr__(self, "_nnx_frozen", None)
        if self._nnx_observed:
            _epoch.bump()

    @property
    def metadata(self) -> dict[str, tp.Any]:
        """A copy of the metadata dict."""
        return dict(self._var_metadata)

    def __getattr__(self, name: str) -> tp.Any:
        # Only called when normal lookup fails: metadata first, then the value.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        try:
            metadata = object.__getattribute__(self, "_var_metadata")
        except AttributeError:
            raise AttributeError(name) from None
        if name in metadata:
            return metadata[name]
        value = object.__getattribute__(self, "_raw_value")
        try:
            return getattr(value, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute or metadata {name!r}, and its "
                f"value of type {type(value).__name__} has no attribute {name!r} either "
                f"(its metadata: {sorted(metadata)}). Fix: check the spelling, or set "
                f"metadata with v.set_metadata({name}=...)."
            ) from None

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name in _SLOTS or name in ("value", "raw_value"):
            object.__setattr__(self, name, value)
            return
        if isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        self._var_metadata[name] = value
        object.__setattr__(self, "_nnx_frozen", None)
        if self._nnx_observed:
            _epoch.bump()

    def __delattr__(self, name: str) -> None:
        if name in self._var_metadata:
            del self._var_metadata[name]
            object.__setattr__(self, "_nnx_frozen", None)
            if self._nnx_observed:
                _epoch.bump()
        else:
            object.__delattr__(self, name)

    # ------------------------------------------------------------------ copies
    @property
    def type(self) -> type[Variable[A]]:
        """The Variable's class (its collection)."""
        return type(self)

    def replace(self: V, value: tp.Any = ..., **metadata: tp.Any) -> V:
        """A new Variable of the same type with a new value and/or updated metadata.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> p = nnx.Param(jnp.zeros(2), tag="a")
            >>> q = p.replace(jnp.ones(2))
            >>> type(q).__name__, q.tag, float(q.value.sum())
            ('Param', 'a', 2.0)
        """
        return new_variable(
            type(self),
            self._raw_value if value is ... else value,
            {**self._var_metadata, **metadata},
        )

    def copy(self: V, value: tp.Any = ..., **updates: tp.Any) -> V:
        """A new Variable of the same type: this value (or ``value``) and a copy of
        the metadata updated with ``updates``.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> q = nnx.Param(jnp.zeros(2), tag="a").copy(jnp.ones(2), tag="b")
            >>> float(q.value.sum()), q.tag
            (2.0, 'b')
        """
        return self.replace(value, **updates)

    to_state = copy  # compatibility: Variables are their own state
    to_variable = copy
    var_type = type  # the ``type`` property: the Variable's class

    def copy_from(self, other: Variable[A]) -> None:
        """Take ``other``'s value and metadata (this object stays the same)."""
        self._raw_value = other._raw_value
        self.set_metadata(dict(other._var_metadata))

    update_from_state = copy_from

    def has_metadata(self, name: str) -> bool:
        """Whether metadata ``name`` is set."""
        return name in self._var_metadata

    def del_metadata(self, name: str) -> None:
        """Remove metadata ``name`` (KeyError naming the known keys when absent)."""
        if name not in self._var_metadata:
            raise KeyError(
                f"{self._describe()} has no metadata {name!r}; its metadata: "
                f"{sorted(self._var_metadata)}. Fix: check has_metadata({name!r}) first."
            )
        delattr(self, name)

    def get_raw_value(self) -> A:
        """The held value, without checks."""
        return self._raw_value

    def set_raw_value(self, value: A, *, _unsafe_bypass_check: bool = False) -> None:
        """Replace the held value, without checks."""
        self._raw_value = value

    def create_value(self, value: A) -> A:
        """Hook for subclasses transforming a value on creation; returns it as is."""
        return value

    @classmethod
    def from_metadata(cls, value: A, attributes: dict[str, tp.Any]) -> Variable[A]:
        """``cls(value, **attributes)``."""
        return cls(value, **attributes)

    required_metadata: tp.ClassVar[frozenset[str]] = frozenset({"hijax", "ref", "eager_sharding"})

    @classmethod
    def state(cls, value: tp.Any, **metadata: tp.Any) -> Variable[tp.Any]:
        """Compatibility constructor: ``Param.state(x)`` is ``Param(x)``."""
        return cls(value, **metadata)

    # ------------------------------------------------------------------ arrays
    def __jax_array__(self) -> tp.Any:
        return self.get_value()

    def __array__(self, dtype: tp.Any = None, copy: tp.Any = None) -> np.ndarray[tp.Any, tp.Any]:
        return np.asarray(self.get_value(), dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        value: tp.Any = self._raw_value
        return tuple(np.shape(value))

    @property
    def dtype(self) -> tp.Any:
        dtype = getattr(self._raw_value, "dtype", None)
        return np.asarray(self._raw_value).dtype if dtype is None else dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.get_value())  # type: ignore[arg-type]

    def __iter__(self) -> tp.Iterator[tp.Any]:
        return iter(self.get_value())  # type: ignore[call-overload,no-any-return]

    def __bool__(self) -> bool:
        return bool(self.get_value())

    def __float__(self) -> float:
        return float(self.get_value())  # type: ignore[arg-type]

    def __int__(self) -> int:
        value: tp.Any = self.get_value()
        return int(value)

    def __index__(self) -> int:
        return operator.index(self.get_value())  # type: ignore[arg-type]

    def __neg__(self) -> tp.Any:
        return -self.get_value()  # type: ignore[operator]

    def __pos__(self) -> tp.Any:
        return +self.get_value()  # type: ignore[operator]

    def __abs__(self) -> tp.Any:
        return abs(self.get_value())  # type: ignore[arg-type]

    def __invert__(self) -> tp.Any:
        return ~self.get_value()  # type: ignore[operator]

    # ``__eq__`` compares values (installed below); keep identity hashing.
    __hash__ = object.__hash__

    # ------------------------------------------------------------------ repr
    def _describe(self) -> str:
        value = self._raw_value
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        if shape is not None:
            return f"{type(self).__name__}(shape={tuple(shape)}, dtype={dtype})"
        return f"{type(self).__name__}({type(value).__name__})"

    def __repr__(self) -> str:
        return variable_repr(self)

    def __deepcopy__(self: V, memo: dict[int, tp.Any]) -> V:
        new = object.__new__(type(self))
        memo[id(self)] = new
        _init_slots(
            new,
            _copy.deepcopy(self._raw_value, memo),
            _copy.deepcopy(self._var_metadata, memo),
        )
        return new

    def __copy__(self: V) -> V:
        return self.copy()

    def __getstate__(self) -> dict[str, tp.Any]:
        return {"value": self._raw_value, "metadata": self._var_metadata}

    def __setstate__(self, state: dict[str, tp.Any]) -> None:
        _init_slots(self, state["value"], dict(state["metadata"]))


# the slot descriptors' setters: faster than object.__setattr__ on the hot paths
_set_raw = tp.cast(tp.Any, Variable.__dict__["_raw_value"]).__set__
_set_metadata = tp.cast(tp.Any, Variable.__dict__["_var_metadata"]).__set__
_set_observed = tp.cast(tp.Any, Variable.__dict__["_nnx_observed"]).__set__
_set_frozen = tp.cast(tp.Any, Variable.__dict__["_nnx_frozen"]).__set__


def _init_slots(var: Variable[tp.Any], value: tp.Any, metadata: dict[str, tp.Any]) -> None:
    _set_raw(var, value)
    _set_metadata(var, metadata)
    _set_observed(var, False)
    _set_frozen(var, None)


def new_variable(typ: type[V], value: tp.Any, metadata: dict[str, tp.Any]) -> V:
    """A Variable of type ``typ`` holding ``value`` with ``metadata`` (the dict is
    used as is), made without calling ``__init__`` (no sharding hook, no value
    unwrapping): how the graph builder, copies and unpickling create Variables."""
    var = object.__new__(typ)
    _init_slots(var, value, metadata)
    return var


_EMPTY_METADATA_KEY = Frozen({})


def metadata_key(var: Variable[tp.Any]) -> Frozen:
    """A hashable view of ``var``'s metadata, as GraphDefs store it.

    Cached on the Variable while its metadata is unchanged; metadata holding
    mutable values (lists, dicts) is frozen afresh on every call, so in-place
    changes to them are seen."""
    key = var._nnx_frozen
    if key is not None:
        return key
    metadata = var._var_metadata
    if not metadata:
        key = _EMPTY_METADATA_KEY
    else:
        key = Frozen(dict(metadata))
        if any(hashable(v) is not v for v in metadata.values()):
            return key
    _set_frozen(var, key)
    return key


# ---------------------------------------------------------------------- repr
def variable_repr(var: Variable[tp.Any]) -> str:
    """``Param(value=Array(shape=(2,), dtype=float32), tag='a')``."""
    parts = [f"value={value_repr(var._raw_value)}"]
    parts += [f"{k}={v!r}" for k, v in sorted(var._var_metadata.items())]
    return f"{type(var).__name__}({', '.join(parts)})"


install_operators(Variable)


# ---------------------------------------------------------------------- pytree
_VALUE_KEY = jax.tree_util.GetAttrKey("value")


def _flatten_with_keys(
    v: Variable[tp.Any],
) -> tuple[tuple[tuple[tp.Any, tp.Any]], tp.Any]:
    return ((_VALUE_KEY, v._raw_value),), _MetadataAux(v._var_metadata)


def _flatten(v: Variable[tp.Any]) -> tuple[tuple[tp.Any], tp.Any]:
    return (v._raw_value,), _MetadataAux(v._var_metadata)


class _MetadataAux:
    """Hashable wrapper around a metadata dict for use as pytree aux data."""

    __slots__ = ("metadata", "_key")

    def __init__(self, metadata: dict[str, tp.Any]) -> None:
        self.metadata = metadata
        self._key = hashable(tuple(sorted(metadata.items())))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _MetadataAux) and self._key == other._key


def _register_pytree(cls: type[Variable[tp.Any]]) -> None:
    def unflatten(aux: _MetadataAux, children: tp.Iterable[tp.Any]) -> Variable[tp.Any]:
        (value,) = children
        return new_variable(cls, value, dict(aux.metadata))

    jax.tree_util.register_pytree_with_keys(cls, _flatten_with_keys, unflatten, _flatten)


_register_pytree(Variable)


# ---------------------------------------------------------------------- types
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


VariableState = Variable
"""Compatibility alias: in this library a Variable is its own state."""
