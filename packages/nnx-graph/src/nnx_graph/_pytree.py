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
import numpy as np

from nnx_graph import _epoch
from nnx_graph._hashing import hashable
from nnx_graph._markers import (
    Data,
    Static,
    _class_kinds,
    _DataMarker,
    _Marker,
    data,
    dataclass,
    static,
)
from nnx_graph._paths import sorted_keys
from nnx_graph._variables import Variable

__all__ = [
    "Data",
    "Dict",
    "List",
    "Object",
    "Pytree",
    "Static",
    "data",
    "dataclass",
    "has_data",
    "is_data",
    "register_data_type",
    "static",
]

A = tp.TypeVar("A")
T = tp.TypeVar("T")

_EXTRA_DATA_TYPES: set[type] = set()

# What a value is, decided once per type (isinstance against ABCs such as jax.Array
# is slow and the traversals ask for every attribute).
KIND_OTHER, KIND_VARIABLE, KIND_NODE, KIND_ARRAY, KIND_CONTAINER = range(5)
_KINDS: dict[type, int] = {}


def _classify(typ: type) -> int:
    if issubclass(typ, Variable):
        return KIND_VARIABLE
    if issubclass(typ, (Pytree, List, Dict)):
        return KIND_NODE
    if issubclass(typ, (jax.Array, np.ndarray, jax.core.Tracer)) or (
        _EXTRA_DATA_TYPES and issubclass(typ, tuple(_EXTRA_DATA_TYPES))
    ):
        return KIND_ARRAY
    if issubclass(typ, (list, tuple, dict)):
        return KIND_CONTAINER
    return KIND_OTHER


def kind_of(value: object) -> int:
    """``KIND_VARIABLE`` / ``KIND_NODE`` / ``KIND_ARRAY`` (a data leaf) /
    ``KIND_CONTAINER`` (a list, tuple or dict, maybe holding data) / ``KIND_OTHER``."""
    typ = type(value)
    kind = _KINDS.get(typ)
    if kind is None:
        kind = _KINDS[typ] = _classify(typ)
    return kind


def register_data_type(typ: type, /) -> None:
    """Treat instances of ``typ`` as data (state) when assigned to a Pytree.

    Example::

        >>> import nnx_graph as nnx
        >>> class Box:
        ...     pass
        >>> nnx.register_data_type(Box)
        >>> nnx.is_data(Box())
        True
    """
    _EXTRA_DATA_TYPES.add(typ)
    _KINDS.clear()


def is_graph_node(value: object) -> bool:
    """True for objects the graph API traverses with identity (Pytree, List, Dict)."""
    return isinstance(value, (Pytree, List, Dict))


def is_data(value: object) -> bool:
    """True when ``value`` is state: a Variable, array, graph node, or a registered
    data type.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.is_data(jnp.ones(1)), nnx.is_data(3)
        (True, False)
    """
    kind = kind_of(value)
    return kind != KIND_OTHER and kind != KIND_CONTAINER


def has_data(value: object) -> bool:
    """True when ``value`` is data or a (nested) list/tuple/dict containing data.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.has_data((1, [jnp.ones(1)])), nnx.has_data((1, "a"))
        (True, False)
    """
    kind = kind_of(value)
    if kind == KIND_OTHER:
        return False
    if kind != KIND_CONTAINER:
        return True
    values = value.values() if isinstance(value, dict) else value
    return any(has_data(v) for v in values)  # type: ignore[attr-defined]


def _convert_container(value: tp.Any) -> tp.Any:
    """Plain lists/dicts that hold data (or are empty) become List/Dict so that
    later mutation is tracked."""
    if type(value) is list and (not value or has_data(value)):
        return List(value)
    if type(value) is dict and (not value or has_data(value)):
        return Dict(value)
    return value


class Pytree:
    """Base class for graph nodes: mutable Python objects whose data attributes are
    state.  Subclasses are registered as JAX pytrees (data attributes are children).

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

    def __init_subclass__(cls, pytree: bool = True, **kwargs: tp.Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._nnx_is_pytree = pytree
        cls._nnx_class_kinds = _class_kinds(cls)
        if pytree:
            jax.tree_util.register_pytree_with_keys(
                cls, _pytree_flatten_with_keys, _make_unflatten(cls), _pytree_flatten
            )

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name.startswith("_nnx_"):
            object.__setattr__(self, name, value)
            return
        d = self.__dict__
        if isinstance(value, _Marker):
            explicit = dict(self._nnx_explicit)
            explicit[name] = isinstance(value, _DataMarker)
            object.__setattr__(self, "_nnx_explicit", explicit)
            value = value.value
        elif name in d and d[name] is value:
            return  # e.g. `self.count += 1` re-assigning the same Variable
        if self._nnx_kind(name) is not False:
            value = _convert_container(value)
        if self._nnx_observed:
            _epoch.bump()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if self._nnx_observed and not name.startswith("_nnx_"):
            _epoch.bump()
        object.__delattr__(self, name)

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


def _node_repr(node: tp.Any) -> str:
    # the graph repr walks the GraphDef, which sits one layer above this module
    from nnx_graph._graphdef import node_repr

    return node_repr(node)


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


# ------------------------------------------------------------------ containers
class List(list[A]):
    """A list that is a graph node: ``self.layers = nnx.List([...])``.

    Plain lists holding data assigned to a Module attribute are converted to this
    type automatically, so ``append`` after assignment works and is tracked.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.items = []
        >>> m = M(); m.items.append(nnx.Param(jnp.ones(1)))
        >>> list(nnx.state(m)["items"])
        [0]
    """

    __slots__ = ("_nnx_observed", "__weakref__")

    def __init__(self, iterable: tp.Iterable[A] = (), /) -> None:
        super().__init__(_convert_container(v) for v in iterable)
        self._nnx_observed = False

    def _nnx_changed(self) -> None:
        if getattr(self, "_nnx_observed", False):
            _epoch.bump()

    def append(self, value: A) -> None:
        self._nnx_changed()
        super().append(_convert_container(value))

    def extend(self, values: tp.Iterable[A]) -> None:
        self._nnx_changed()
        super().extend(_convert_container(v) for v in values)

    def insert(self, index: tp.SupportsIndex, value: A) -> None:
        self._nnx_changed()
        super().insert(index, _convert_container(value))

    def pop(self, index: tp.SupportsIndex = -1) -> A:
        self._nnx_changed()
        return super().pop(index)

    def remove(self, value: A) -> None:
        self._nnx_changed()
        super().remove(value)

    def clear(self) -> None:
        self._nnx_changed()
        super().clear()

    def sort(self, *args: tp.Any, **kwargs: tp.Any) -> None:
        self._nnx_changed()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._nnx_changed()
        super().reverse()

    def __setitem__(self, index: tp.Any, value: tp.Any) -> None:
        self._nnx_changed()
        if isinstance(index, slice):
            super().__setitem__(index, [_convert_container(v) for v in value])
        else:
            super().__setitem__(index, _convert_container(value))

    def __delitem__(self, index: tp.Any) -> None:
        self._nnx_changed()
        super().__delitem__(index)

    def __iadd__(self, values: tp.Iterable[A]) -> tp.Self:  # type: ignore[override,misc]
        self.extend(values)
        return self

    def __imul__(self, n: tp.SupportsIndex) -> tp.Self:
        self._nnx_changed()
        return super().__imul__(n)

    def __repr__(self) -> str:
        return _node_repr(self)

    def __reduce__(self) -> tp.Any:
        # items after construction (not as an argument): copy/pickle register the
        # new List before its items, so a List reachable from its own items works
        return (type(self), (), None, iter(self))


class Dict(dict[tp.Any, A]):
    """A dict that is a graph node; entries are also readable as attributes.

    Plain dicts holding data assigned to a Module attribute become ``Dict``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> d = nnx.Dict(w=nnx.Param(jnp.ones(2)))
        >>> d.w.shape
        (2,)
    """

    __slots__ = ("_nnx_observed", "__weakref__")

    def __init__(self, *args: tp.Any, **kwargs: A) -> None:
        super().__init__()
        self._nnx_observed = False
        for key, value in dict(*args, **kwargs).items():
            super().__setitem__(key, _convert_container(value))

    def _nnx_changed(self) -> None:
        if getattr(self, "_nnx_observed", False):
            _epoch.bump()

    def __setitem__(self, key: tp.Any, value: A) -> None:
        self._nnx_changed()
        super().__setitem__(key, _convert_container(value))

    def __delitem__(self, key: tp.Any) -> None:
        self._nnx_changed()
        super().__delitem__(key)

    def update(self, *args: tp.Any, **kwargs: tp.Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def pop(self, key: tp.Any, *default: tp.Any) -> tp.Any:
        self._nnx_changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[tp.Any, A]:
        self._nnx_changed()
        return super().popitem()

    def clear(self) -> None:
        self._nnx_changed()
        super().clear()

    def setdefault(self, key: tp.Any, default: tp.Any = None) -> tp.Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: tp.Any) -> tp.Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __getattr__(self, name: str) -> A:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"nnx.Dict has no key {name!r}; its keys are {list(self)}. Fix: check the "
                f"spelling, or add it with d[{name!r}] = value."
            ) from None

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name.startswith("_nnx_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]

    def __repr__(self) -> str:
        return _node_repr(self)

    def __reduce__(self) -> tp.Any:
        return (type(self), (), None, None, iter(dict.items(self)))


def _list_flatten(node: List[tp.Any]) -> tuple[list[tp.Any], _ListAux]:
    mask = tuple(has_data(v) for v in node)
    children = [v for v, m in zip(node, mask) if m]
    statics = tuple(hashable(v) if not m else None for v, m in zip(node, mask))
    return children, _ListAux(mask, statics, [v for v, m in zip(node, mask) if not m])


class _ListAux:
    __slots__ = ("mask", "key", "values")

    def __init__(self, mask: tuple[bool, ...], key: tuple[tp.Any, ...], values: list[tp.Any]):
        self.mask, self.key, self.values = mask, key, values

    def __hash__(self) -> int:
        return hash((self.mask, self.key))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ListAux) and (self.mask, self.key) == (other.mask, other.key)


def _list_unflatten(aux: _ListAux, children: tp.Iterable[tp.Any]) -> List[tp.Any]:
    data_iter = iter(children)
    static_iter = iter(aux.values)
    out = List.__new__(List)
    list.extend(out, [next(data_iter) if m else next(static_iter) for m in aux.mask])
    out._nnx_observed = False
    return out


def _list_flatten_with_keys(node: List[tp.Any]) -> tuple[list[tuple[tp.Any, tp.Any]], _ListAux]:
    children, aux = _list_flatten(node)
    keys = [jax.tree_util.SequenceKey(i) for i, m in enumerate(aux.mask) if m]
    return list(zip(keys, children)), aux


jax.tree_util.register_pytree_with_keys(
    List, _list_flatten_with_keys, _list_unflatten, _list_flatten
)


def _dict_flatten(node: Dict[tp.Any]) -> tuple[list[tp.Any], tuple[tp.Any, ...]]:
    keys = tuple(sorted_keys(node))
    return [dict.__getitem__(node, k) for k in keys], keys


def _dict_unflatten(keys: tuple[tp.Any, ...], children: tp.Iterable[tp.Any]) -> Dict[tp.Any]:
    out = Dict.__new__(Dict)
    out._nnx_observed = False
    for k, v in zip(keys, children):
        dict.__setitem__(out, k, v)
    return out


def _dict_flatten_with_keys(
    node: Dict[tp.Any],
) -> tuple[list[tuple[tp.Any, tp.Any]], tuple[tp.Any, ...]]:
    children, keys = _dict_flatten(node)
    return [(jax.tree_util.DictKey(k), c) for k, c in zip(keys, children)], keys


jax.tree_util.register_pytree_with_keys(
    Dict, _dict_flatten_with_keys, _dict_unflatten, _dict_flatten
)
