"""Variables: mutable boxes around a value plus metadata.

A Variable's *type* is its collection: ``Param`` for trainable parameters,
``BatchStat`` for running statistics, ``Cache`` for decode caches, ``Intermediate``
for sown values, and any user subclass.  Variables are what transforms and the
graph API thread in and out of JAX; everything else on a Module is structure.
"""

from __future__ import annotations

import copy as _copy
import typing as tp

import jax
import numpy as np

from nnx_graph import _epoch
from nnx_graph import _variable_meta as _meta
from nnx_graph._hashing import Frozen, hashable
from nnx_graph._values import (
    HOOK_KEYS,
    VariableMetadata,
    _sharding_hook,
    install_operators,
    run_axis_hooks,
    run_value_hooks,
    with_metadata,
)

# Helpers other modules import from here (kept out of ``__all__``: not public API).
from nnx_graph._values import array_summary as array_summary
from nnx_graph._values import leaked_tracer as leaked_tracer
from nnx_graph._values import value_repr as value_repr
from nnx_graph._variable_meta import MISSING, REQUIRED_KEYS

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

_SLOTS = frozenset(
    {"_raw_value", "_var_metadata", "_nnx_observed", "_nnx_frozen", "_nnx_special", "_nnx_trace"}
)
_SHARDING_KEYS = frozenset({"out_sharding", "sharding_names", "sharding"})
_current_trace = _meta.current_trace
_trace_now = _meta.trace_now


class Variable(tp.Generic[A]):
    """A mutable box holding a value (usually a ``jax.Array``) plus metadata.

    The Variable's type says what kind of state it is (its collection). Read the
    value with ``v[...]``, ``v.get_value()`` or ``v.value``; write it with
    ``v[...] = x``, ``v.set_value(x)`` or ``v.value = x``. Arithmetic works on the
    value, and in-place operators (``v += 1``) update the Variable itself.
    Extra keyword arguments become metadata, readable as attributes.

    Every Variable also carries three required metadata entries, as in Flax NNX:
    ``hijax`` (the value is held in a JAX hi-type box that plain ``jax.jit``/``grad``
    thread and update in place, see ``nnx_graph._hijax``), ``ref`` (a JAX mutable
    array reference, ``jax.new_ref``, updated in place, also under ``jax.jit``) and
    ``eager_sharding`` (place an annotated value on the mesh at creation; default
    from :class:`use_eager_sharding`). The sharding annotation is stored under
    ``out_sharding``; ``sharding_names=``/``sharding=`` are accepted spellings.

    Arguments:
        value: the value, or a :class:`VariableMetadata` (from :func:`with_metadata`
            or :func:`with_partitioning`) whose metadata and hooks are taken over.
        hijax: hold the value in a JAX hi-type box; default from :func:`var_defaults`.
        ref: hold the value in a ``jax.new_ref`` reference; default from
            :func:`var_defaults`.
        eager_sharding: ``True`` to require placement at creation (raises without a
            mesh), ``False`` never to place; default: :func:`using_eager_sharding`.
        **metadata: any further metadata.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Count(nnx.Variable): pass
        >>> c = Count(jnp.array(0), tag="steps")
        >>> c += 1
        >>> int(c[...]), c.tag, c.ref
        (1, 'steps', False)
        >>> sorted(c.get_metadata())
        ['eager_sharding', 'hijax', 'ref', 'tag']
    """

    __slots__ = (
        "_raw_value",
        "_var_metadata",
        "_nnx_observed",
        "_nnx_frozen",
        "_nnx_special",
        "_nnx_trace",
        "__weakref__",
    )

    _raw_value: A
    _var_metadata: dict[str, tp.Any]
    _nnx_observed: bool
    _nnx_frozen: Frozen | None  # cached hashable view of the metadata (see metadata_key)
    _nnx_special: bool  # holds a Ref or hooks: reads/writes take the general path
    _nnx_trace: tp.Any  # weak reference to the JAX trace the Variable was created in
    _nnx_class_hooks: tp.ClassVar[tuple[tuple[str, tp.Any], ...]] = ()

    def __init__(
        self,
        value: A | VariableMetadata[A],
        *,
        hijax: bool | None = None,
        ref: bool | None = None,
        eager_sharding: bool | None = None,
        **metadata: tp.Any,
    ) -> None:
        flags = {"hijax": hijax, "ref": ref, "eager_sharding": eager_sharding}
        raw: A = _meta.unpack_value(self, value, metadata, flags, Variable)
        hijax, ref, eager = _meta.resolve_flags(self, raw, metadata, flags)
        for key, hook in self._nnx_class_hooks:
            metadata.setdefault(key, hook)
        _init_slots(self, raw, metadata)
        if "on_create_value" in metadata:
            raw = run_value_hooks(metadata["on_create_value"], self, raw)
            _set_raw(self, raw)
        _set_raw(self, self.create_value(raw))
        if eager is not None:  # given explicitly: the placement is required
            metadata["eager_sharding"] = eager
        if not _SHARDING_KEYS.isdisjoint(metadata):
            _sharding_hook.apply(self)
        metadata["hijax"] = hijax
        metadata["ref"] = ref
        if eager is None:
            metadata["eager_sharding"] = _meta.eager_default()
        if ref or hijax:  # (hooks were seen by _init_slots; a Ref/box: general path)
            _set_raw(self, _meta.wrap_value(self._raw_value, ref, hijax))
            _set_special(self, True)
        _set_frozen(self, None)

    # ------------------------------------------------------------------ pytree
    def __init_subclass__(cls, **kwargs: tp.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._nnx_class_hooks = tuple(
            (key, getattr(cls, key)) for key in HOOK_KEYS if callable(getattr(cls, key, None))
        )
        _register_pytree(cls)

    # ------------------------------------------------------------------ flags
    @property
    def hijax(self) -> bool:
        """Whether the value is held in a JAX hi-type box (see ``nnx_graph._hijax``)."""
        return bool(self._var_metadata.get("hijax", False))

    @property
    def ref(self) -> bool:
        """Whether the value is held in a JAX mutable array reference (``jax.new_ref``)."""
        return bool(self._var_metadata.get("ref", False))

    @property
    def sharding_names(self) -> tp.Any:
        """The sharding annotation (``out_sharding`` metadata), ``None`` when absent."""
        return self._var_metadata.get("out_sharding")

    @sharding_names.setter
    def sharding_names(self, names: tp.Any) -> None:
        self.set_metadata(out_sharding=names)

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
        """The held value, without any checks (a ``Ref`` itself when ``ref=True``)."""
        return _meta.unbox(self._raw_value) if self._nnx_special else self._raw_value

    @raw_value.setter
    def raw_value(self, value: A) -> None:
        self.set_raw_value(value)

    def get_value(self, index: tp.Any = None) -> A:
        """Return the value (or ``value[index]`` when an index is given), after the
        ``on_get_value`` hooks if any."""
        value = self._raw_value
        if isinstance(value, jax.core.Tracer) and leaked_tracer(value):
            raise _meta.leak_error(self)
        if self._nnx_special:
            return _meta.special_get(self, value, index)  # type: ignore[no-any-return]
        if index is not None and index is not Ellipsis:
            return value[index]  # type: ignore[index, no-any-return]
        return value

    def set_value(self, value: A, *, index: tp.Any = None) -> None:
        """Replace the value (or ``value[index]`` when an index is given), after the
        ``on_set_value`` hooks if any. ``v[...] = x`` broadcasts ``x`` to the shape of
        an array value, as ``jax.Array.at[...].set`` does."""
        if self._nnx_trace is not _trace_now():
            _meta.check_trace(self, "set its value")
        if isinstance(value, Variable):
            value = value._raw_value
        if self._nnx_special:
            _meta.special_set(self, value, index)
        elif index is None:
            _set_raw(self, value)
        else:
            _set_raw(self, _meta.set_at(self._raw_value, index, value))

    def __getitem__(self, index: tp.Any) -> tp.Any:
        if index is Ellipsis:
            return self.get_value()
        return self.get_value(index)

    def __setitem__(self, index: tp.Any, value: tp.Any) -> None:
        self.set_value(value, index=index)

    def __delitem__(self, index: tp.Any) -> None:
        value: tp.Any = self.get_value()
        del value[index]
        self.set_value(value)

    def __contains__(self, item: tp.Any) -> bool:
        return item in self.get_value()  # type: ignore[operator]

    # ------------------------------------------------------------------ metadata
    def get_metadata(
        self,
        name: str | None = None,
        default: tp.Any = MISSING,
        *,
        exclude_required: bool | None = None,
    ) -> tp.Any:
        """All metadata as a dict (without ``hijax``/``ref``/``eager_sharding`` when
        ``exclude_required=True``), or one entry by name (``default`` when absent).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> nnx.Param(jnp.zeros(1), tag="a").get_metadata(exclude_required=True)
            {'tag': 'a'}
        """
        return _meta.get_metadata(self, name, default, exclude_required)

    def set_metadata(self, *args: tp.Any, **metadata: tp.Any) -> None:
        """Set metadata: ``set_metadata(key=value)``, ``set_metadata(name, value)``, or
        ``set_metadata(dict)`` (replaces all metadata; ``hijax``/``ref``/
        ``eager_sharding`` are kept, and changing them raises ValueError).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> p = nnx.Param(jnp.zeros(1)); p.set_metadata(tag="t"); p.tag
            't'
        """
        if self._nnx_trace is not _trace_now():
            _meta.check_trace(self, "set its metadata")
        _meta.set_metadata(self, args, metadata)
        self._metadata_changed()

    def _metadata_changed(self) -> None:
        _set_frozen(self, None)
        _set_special(self, _meta.is_special(self._var_metadata))
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
        value = _meta.unbox(object.__getattribute__(self, "_raw_value"))
        try:
            return getattr(value, name)
        except AttributeError:
            raise _meta.attribute_error(self, name) from None

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name in _SLOTS:
            object.__setattr__(self, name, value)
            return
        if isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        self.set_metadata(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._var_metadata:
            self.del_metadata(name)
        else:
            object.__delattr__(self, name)

    # ------------------------------------------------------------------ copies
    @property
    def type(self) -> type[Variable[A]]:
        """The Variable's class (its collection)."""
        return type(self)

    var_type = type  # the ``type`` property: the Variable's class

    def copy(self: V, value: tp.Any = MISSING, *, _copy_ref: bool = True, **updates: tp.Any) -> V:
        """A new Variable of the same type: this value (or ``value``) and a copy of
        the metadata updated with ``updates``. With ``ref=True`` the copy gets its own
        reference (``_copy_ref=False`` shares this one).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> q = nnx.Param(jnp.zeros(2), tag="a").copy(jnp.ones(2), tag="b")
            >>> type(q).__name__, float(q[...].sum()), q.tag
            ('Param', 2.0, 'b')
        """
        return _meta.copy_variable(self, value, _copy_ref, updates)  # type: ignore[no-any-return]

    replace = copy
    to_state = copy  # compatibility: Variables are their own state
    to_variable = copy

    def copy_from(self, other: Variable[A]) -> None:
        """Take ``other``'s value and metadata (this object stays the same); ``other``
        must be of the same type (ValueError otherwise)."""
        if type(self) is not type(other):
            raise ValueError(
                f"Cannot copy from incompatible container: {self._describe()}.copy_from "
                f"expected a {type(self).__name__}, found a {type(other).__name__}. Fix: "
                f"pass a {type(self).__name__}, or use update_from_state to take only "
                "its value and metadata."
            )
        if self is other:
            return
        self.set_raw_value(other._raw_value)
        self.set_metadata(dict(other._var_metadata))

    def update_from_state(self, variable_state: Variable[A]) -> None:
        """Take ``variable_state``'s value and metadata, keeping ``hijax``/``ref``."""
        self.set_raw_value(variable_state._raw_value)
        if self._var_metadata != variable_state._var_metadata:
            metadata = dict(variable_state._var_metadata)
            metadata["hijax"], metadata["ref"] = self.hijax, self.ref
            _set_metadata(self, metadata)
            self._metadata_changed()

    def has_metadata(self, name: str) -> bool:
        """Whether metadata ``name`` is set."""
        return name in self._var_metadata

    def del_metadata(self, name: str) -> None:
        """Remove metadata ``name`` (KeyError when absent; ``hijax``/``ref`` cannot be
        removed: ValueError)."""
        if self._nnx_trace is not _trace_now():
            _meta.check_trace(self, "delete its metadata")
        _meta.del_metadata(self, name)
        self._metadata_changed()

    def get_raw_value(self) -> A:
        """The held value, without checks (the ``Ref`` itself when ``ref=True``)."""
        return _meta.unbox(self._raw_value) if self._nnx_special else self._raw_value

    def set_raw_value(self, value: A, *, _unsafe_bypass_check: bool = False) -> None:
        """Replace the held value, without hooks."""
        if not _unsafe_bypass_check and self._nnx_trace is not _trace_now():
            _meta.check_trace(self, "set its value")
        _meta.set_raw(self, value) if self._nnx_special else _set_raw(self, value)

    def create_value(self, value: A) -> A:
        """Hook for subclasses transforming a value on creation; returns it as is."""
        return value

    def add_axis(self, axis_index: int, axis_name: tp.Any) -> None:
        """Called when a transform (``nnx.vmap``/``nnx.scan``) adds axis ``axis_index``
        (mesh axis ``axis_name``) to the value: runs the ``on_add_axis`` hooks.
        (The sharding annotation itself is updated by the transform.)"""
        hooks = self._var_metadata.get("on_add_axis")
        if hooks:
            run_axis_hooks(hooks, self, axis_index, axis_name)

    def remove_axis(self, axis_index: int, axis_name: tp.Any) -> None:
        """Called when a transform removes axis ``axis_index``: runs the
        ``on_remove_axis`` hooks."""
        hooks = self._var_metadata.get("on_remove_axis")
        if hooks:
            run_axis_hooks(hooks, self, axis_index, axis_name)

    @classmethod
    def from_metadata(cls, value: A, attributes: dict[str, tp.Any]) -> Variable[A]:
        """A Variable holding ``value`` with metadata ``attributes`` as given (no
        hooks run, no placement): how transforms rebuild Variables."""
        metadata = dict(attributes)
        for key in REQUIRED_KEYS:
            metadata.setdefault(key, _meta.flag_default(key))
        return new_variable(cls, value, metadata)

    required_metadata: tp.ClassVar[frozenset[str]] = frozenset(REQUIRED_KEYS)

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
        return tuple(np.shape(value) if not self._nnx_special else _meta.special_shape(value))

    @property
    def dtype(self) -> tp.Any:
        value = self._raw_value if not self._nnx_special else self.get_value()
        dtype = getattr(value, "dtype", None)
        return np.asarray(value).dtype if dtype is None else dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # ``__eq__`` compares values (installed below); keep identity hashing.
    __hash__ = object.__hash__

    # ------------------------------------------------------------------ repr
    def _describe(self) -> str:
        value = _meta.unbox(self._raw_value)
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
_set_special = tp.cast(tp.Any, Variable.__dict__["_nnx_special"]).__set__
_set_trace = tp.cast(tp.Any, Variable.__dict__["_nnx_trace"]).__set__


def _init_slots(var: Variable[tp.Any], value: tp.Any, metadata: dict[str, tp.Any]) -> None:
    special = _meta.is_special(metadata)
    _set_raw(var, _meta.wrap(value, metadata) if special else value)
    _set_metadata(var, metadata)
    _set_observed(var, False)
    _set_frozen(var, None)
    _set_special(var, special)
    _set_trace(var, _trace_now())


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
shown_metadata = _meta.shown_metadata


def variable_repr(var: Variable[tp.Any]) -> str:
    """``Param(value=Array(shape=(2,), dtype=float32), tag='a')``."""
    return _meta.variable_repr(var, value_repr)


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
# (defined in _variable_types.py, which needs the Variable class above)
from nnx_graph._variable_types import (  # noqa: E402
    BatchStat,
    Cache,
    Intermediate,
    Param,
    Perturbation,
)

VariableState = Variable
"""Compatibility alias: in this library a Variable is its own state."""
