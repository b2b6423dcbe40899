"""Pytree: the base of every graph node (Modules, containers, Rngs, Optimizers).

Attributes are classified as *data* (Variables, arrays, graph nodes, and
containers holding them) or *static* (everything else: sizes, flags, callables).
Classification is decided when the graph is traversed, so a list that starts empty
and is appended to later works.  ``nnx.data(...)``/``nnx.static(...)`` (or
annotations ``x: nnx.Data[...]``) override it.

Every structural mutation of an object that a transform cache has seen bumps the
structural epoch (see ``_epoch.py``), so caches are never stale.
"""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph import _epoch, _kinds
from nnx_graph._hashing import hashable
from nnx_graph._kinds import _KINDS as _KINDS  # (re-exported for the graph layer)
from nnx_graph._kinds import KIND_ARRAY as KIND_ARRAY
from nnx_graph._kinds import KIND_CONTAINER as KIND_CONTAINER
from nnx_graph._kinds import KIND_NODE as KIND_NODE
from nnx_graph._kinds import KIND_OTHER as KIND_OTHER
from nnx_graph._kinds import KIND_VARIABLE as KIND_VARIABLE
from nnx_graph._kinds import check_opaque_pytree, data_types, has_data, has_marker
from nnx_graph._kinds import is_data as is_data
from nnx_graph._kinds import kind_of as kind_of
from nnx_graph._kinds import register_data_type as register_data_type
from nnx_graph._markers import (
    Data,
    Static,
    _class_kinds,
    _DataMarker,
    _Marker,
    data,
    data_in_static_message,
    dataclass,
    nested_marker_message,
    static,
    static_marker_message,
    static_to_data_message,
    unexpected_data_message,
)
from nnx_graph._traces import _trace_now, check_trace

__all__ = [
    "Data",
    "Dict",
    "List",
    "Object",
    "Pytree",
    "Static",
    "check_pytree",
    "data",
    "dataclass",
    "has_data",
    "is_data",
    "register_data_type",
    "static",
]

A = tp.TypeVar("A")


def is_graph_node(value: object) -> bool:
    """True for objects the graph API traverses with identity (Pytree, List, Dict and
    types registered with ``graphlib.register_graph_node_type``)."""
    return isinstance(value, _kinds.NODE_TYPES)


def _convert_container(value: tp.Any) -> tp.Any:
    """Plain lists/dicts that hold data (or are empty) become List/Dict so that
    later mutation is tracked."""
    if type(value) is list and (not value or has_data(value)):
        return auto_container(List(value))
    if type(value) is dict and (not value or has_data(value)):
        return auto_container(Dict(value))
    return value


def auto_container(container: tp.Any) -> tp.Any:
    """Mark a List/Dict made from a plain list/dict: it is a plain container for
    Flax's Module queries (``iter_modules``/``iter_children`` do not list it, as
    Flax does not list a plain list), while explicit ones are Modules."""
    container.__dict__["_nnx_auto"] = True
    return container


class Pytree:
    """Base class for graph nodes: mutable Python objects whose data attributes are
    state.  Subclasses are registered as JAX pytrees (data attributes are children).

    An attribute's kind is fixed by its first assignment: data (Variables, arrays,
    graph nodes, containers of them) or static (everything else), unless declared
    with ``nnx.data(...)``/``nnx.static(...)`` or ``nnx.Data[...]``/``nnx.Static[...]``
    annotations. Assigning data to a static attribute raises ValueError; a data
    attribute stays data. ``pytree=False`` subclasses skip these checks.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Point(nnx.Pytree):
        ...     def __init__(self):
        ...         self.xy = jnp.zeros(2)   # data
        ...         self.name = "p"          # static
        >>> len(jax.tree.leaves(Point()))
        1
    """

    _nnx_observed: bool = False
    _nnx_explicit: dict[str, bool] = {}  # noqa: RUF012  (per-instance copy on write)
    _nnx_is_pytree: bool = True
    _nnx_class_kinds: dict[str, bool] = {}  # noqa: RUF012  (set per class, read-only)
    # the trace the object was created in; None (objects rebuilt by merge/unflatten,
    # always inside the trace that uses them) skips the check
    _nnx_trace: tp.Any = None

    def __new__(cls, *args: tp.Any, **kwargs: tp.Any) -> tp.Self:
        obj = object.__new__(cls)
        obj.__dict__["_nnx_trace"] = _trace_now()
        return obj

    def __init_subclass__(cls, pytree: bool = True, **kwargs: tp.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._nnx_is_pytree = pytree
        cls._nnx_class_kinds = _class_kinds(cls)
        if pytree:
            cls._nnx_register_pytree()

    @classmethod
    def _nnx_register_pytree(cls) -> None:
        """Register ``cls`` with JAX: its data attributes are the children
        (nnx.List/nnx.Dict override this with their items)."""
        jax.tree_util.register_pytree_with_keys(
            cls, _pytree_flatten_with_keys, _make_unflatten(cls), _pytree_flatten
        )

    def __getstate__(self) -> dict[str, tp.Any]:
        # the creation trace is process-local: a copy or unpickled object records its own
        return {k: v for k, v in self.__dict__.items() if k != "_nnx_trace"}

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name[:5] == "_nnx_":
            object.__setattr__(self, name, value)
            return
        created = self._nnx_trace
        if created is not None and created is not _trace_now():
            check_trace(self, created, f"setting attribute {name!r}")
        d = self.__dict__
        new = name not in d
        if isinstance(value, _Marker):
            value = self._nnx_set_explicit(name, value)
        elif not new:
            old = d[name]
            if old is value:
                return  # e.g. `self.count += 1` re-assigning the same Variable
            if self._nnx_is_pytree:
                self._nnx_check_reassign(name, old, value)
        if self._nnx_kind(name) is not False:
            value = _convert_container(value)
        elif new and self._nnx_is_pytree and has_data(value):  # declared static
            raise ValueError(data_in_static_message(self, name, value, data_types(value)))
        if kind_of(value) == KIND_OTHER and self._nnx_is_pytree:  # JAX-only pytrees
            check_opaque_pytree(self, name, value, self._nnx_kind(name))
        if self._nnx_observed:
            _epoch.bump()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name[:5] != "_nnx_":
            created = self._nnx_trace
            if created is not None and created is not _trace_now():
                check_trace(self, created, f"deleting attribute {name!r}")
            if self._nnx_observed:
                _epoch.bump()
            if name in self._nnx_explicit and name not in type(self)._nnx_class_kinds:
                explicit = dict(self._nnx_explicit)
                del explicit[name]  # a deleted attribute's kind is decided afresh
                object.__setattr__(self, "_nnx_explicit", explicit)
        object.__delattr__(self, name)

    def _nnx_set_explicit(self, name: str, marker: _Marker) -> tp.Any:
        """Record the kind ``nnx.data(...)``/``nnx.static(...)`` declares; the value."""
        value = marker.value
        is_data_marker = isinstance(marker, _DataMarker)
        if self._nnx_is_pytree:
            if not is_data_marker and has_data(value):
                raise ValueError(static_marker_message(self, name, value, data_types(value)))
            if has_marker(value):
                raise ValueError(nested_marker_message(self, name, value))
        explicit = dict(self._nnx_explicit)
        explicit[name] = is_data_marker
        object.__setattr__(self, "_nnx_explicit", explicit)
        return value

    def _nnx_check_reassign(self, name: str, old: tp.Any, value: tp.Any) -> None:
        """Flax 0.12's rule for an existing attribute: static stays static (data may
        not be assigned), data stays data (a static value becomes a data leaf)."""
        kind = self._nnx_kind(name)
        new_data = has_data(value)
        if kind is None:
            old_data = has_data(old)
            if old_data and not new_data and not has_marker(value):
                explicit = dict(self._nnx_explicit)
                explicit[name] = True
                object.__setattr__(self, "_nnx_explicit", explicit)
            elif new_data and not old_data:
                raise ValueError(static_to_data_message(self, name, value))
        elif kind is False and new_data:
            raise ValueError(static_to_data_message(self, name, value))
        if has_marker(value):
            raise ValueError(nested_marker_message(self, name, value))

    # ------------------------------------------------------------ classification
    def _nnx_kind(self, name: str) -> bool | None:
        """True/False when ``name`` is declared data/static (by ``nnx.data``/
        ``nnx.static`` on assignment, or on the class), None to decide by value."""
        kind = self._nnx_explicit.get(name)
        return type(self)._nnx_class_kinds.get(name) if kind is None else kind

    def _nnx_is_data_attr(self, name: str, value: tp.Any) -> bool:
        kind = self._nnx_kind(name)
        return has_data(value) if kind is None else kind

    def _nnx_attributes(self) -> list[tuple[str, tp.Any]]:
        """The graph attributes in traversal order (sorted names)."""
        d = self.__dict__
        return [(k, d[k]) for k in sorted(d) if not k.startswith("_nnx_")]

    def __repr__(self) -> str:
        return _node_repr(self)


def check_pytree(pytree: tp.Any) -> None:
    """Raise ValueError if a static attribute of ``pytree`` (not of its sub-nodes)
    holds data, e.g. after an ``nnx.Static[...]``-declared attribute was filled
    behind ``__setattr__``'s back; TypeError if ``pytree`` is not a Pytree.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.cfg = nnx.static({"k": 1})
        >>> m = M(); m.cfg["k"] = jnp.ones(1)   # data inside a static attribute
        >>> try:
        ...     nnx.check_pytree(m)
        ... except ValueError as e:
        ...     print("Found unexpected data" in str(e))
        True
    """
    if not isinstance(pytree, Pytree):
        raise TypeError(
            f"Expected a Pytree, got {type(pytree).__name__}: nnx.check_pytree checks the "
            "attributes of one Pytree/Module. Fix: pass a Module or Pytree instance."
        )
    if not pytree._nnx_is_pytree:
        return
    for name, value in pytree._nnx_attributes():
        if pytree._nnx_kind(name) is False and has_data(value):
            raise ValueError(unexpected_data_message(pytree, name, value))


def _node_repr(node: tp.Any) -> str:
    # the repr walks the GraphDef, which sits one layer above this module
    from nnx_graph._repr import object_repr

    return object_repr(node)


Object = Pytree
"""Compatibility alias of :class:`Pytree`."""


def _pytree_split(node: Pytree) -> tuple[list[str], list[tp.Any], tuple[tp.Any, ...]]:
    keys: list[str] = []
    children: list[tp.Any] = []
    statics: list[tuple[str, tp.Any]] = []
    for name, value in node._nnx_attributes():
        if node._nnx_is_data_attr(name, value):
            keys.append(name)
            children.append(value)
        else:
            statics.append((name, hashable(value)))
    return keys, children, (tuple(keys), tuple(statics), dict(node._nnx_explicit).__repr__())


def _pytree_flatten_with_keys(node: Pytree) -> tuple[list[tuple[tp.Any, tp.Any]], tp.Any]:
    keys, children, aux = _pytree_split(node)
    return [(jax.tree_util.GetAttrKey(k), c) for k, c in zip(keys, children)], _PytreeAux(node, aux)


def _pytree_flatten(node: Pytree) -> tuple[list[tp.Any], tp.Any]:
    _, children, aux = _pytree_split(node)
    return children, _PytreeAux(node, aux)


class _PytreeAux:
    """Aux data of a flattened Pytree: the static attributes (compared by value)."""

    __slots__ = ("key", "statics", "explicit")

    def __init__(self, node: Pytree, aux: tuple[tp.Any, ...]) -> None:
        self.key = aux
        self.statics = {k: node.__dict__[k] for k, _ in aux[1]}
        self.explicit = dict(node._nnx_explicit)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PytreeAux) and self.key == other.key


def _make_unflatten(cls: type[Pytree]) -> tp.Callable[[_PytreeAux, tp.Iterable[tp.Any]], Pytree]:
    def unflatten(aux: _PytreeAux, children: tp.Iterable[tp.Any]) -> Pytree:
        node = object.__new__(cls)
        d = node.__dict__
        for name, value in zip(aux.key[0], children):
            d[name] = value
        d.update(aux.statics)
        if aux.explicit:
            d["_nnx_explicit"] = dict(aux.explicit)
        return node

    return unflatten


# Module, nnx.List and nnx.Dict subclass Pytree and are used by the functions above;
# they live in their own file, imported here so that they come with Pytree.
from nnx_graph._module_base import Dict, List  # noqa: E402
from nnx_graph._module_base import Module as Module  # noqa: E402

_kinds.NODE_TYPES = (Pytree,)
