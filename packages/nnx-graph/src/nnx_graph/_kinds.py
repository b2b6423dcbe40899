"""What a value is for a Pytree attribute: data (Variables, arrays, graph nodes,
registered data types), a container that may hold data, or static. Decided once
per type; the graph node classes register themselves in ``NODE_TYPES``."""

from __future__ import annotations

import typing as tp

import jax
import numpy as np

from nnx_graph._markers import _Marker, opaque_pytree_message
from nnx_graph._variables import Variable

__all__ = [
    "KIND_ARRAY",
    "KIND_CONTAINER",
    "KIND_NODE",
    "KIND_OTHER",
    "KIND_VARIABLE",
    "data_types",
    "has_data",
    "check_opaque_pytree",
    "has_marker",
    "hidden_data",
    "is_data",
    "kind_of",
    "register_data_type",
]

T = tp.TypeVar("T")

NODE_TYPES: tuple[type, ...] = ()  # set by nnx_graph._pytree: (Pytree, List, Dict)
_EXTRA_DATA_TYPES: set[type] = set()

# What a value is, decided once per type (isinstance against ABCs such as jax.Array
# is slow and the traversals ask for every attribute).
KIND_OTHER, KIND_VARIABLE, KIND_NODE, KIND_ARRAY, KIND_CONTAINER = range(5)
_KINDS: dict[type, int] = {}


def _classify(typ: type) -> int:
    if issubclass(typ, Variable):
        return KIND_VARIABLE
    if issubclass(typ, NODE_TYPES):
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


def register_data_type(type_: T, /) -> T:
    """Treat instances of ``type_`` as data (state) when assigned to a Pytree.
    Returns ``type_``, so it also works as a class decorator.

    Example::

        >>> import nnx_graph as nnx
        >>> @nnx.register_data_type
        ... class Box:
        ...     pass
        >>> nnx.is_data(Box())
        True
    """
    _EXTRA_DATA_TYPES.add(tp.cast(type, type_))
    _KINDS.clear()
    return type_


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


def data_types(value: tp.Any) -> list[str]:
    """Type names of the data (Variables, arrays, graph nodes) inside ``value``."""
    kind = kind_of(value)
    if kind == KIND_OTHER:
        return []
    if kind != KIND_CONTAINER:
        return [type(value).__name__]
    values = value.values() if isinstance(value, dict) else value
    return sorted({name for v in values for name in data_types(v)})


def has_marker(value: tp.Any) -> bool:
    if isinstance(value, _Marker):
        return True
    if kind_of(value) != KIND_CONTAINER:
        return False
    values = value.values() if isinstance(value, dict) else value
    return any(has_marker(v) for v in values)


_PYTREE_NODE_TYPES: dict[type, bool] = {}


def hidden_data(value: tp.Any) -> list[str]:
    """Type names of the arrays/Variables inside ``value`` when it is a pytree node
    registered with JAX only (nnx does not traverse it, so it would be static)."""
    typ = type(value)
    is_node = _PYTREE_NODE_TYPES.get(typ)
    if is_node is None:
        treedef = jax.tree.structure(value, is_leaf=lambda x: x is not value)
        is_node = _PYTREE_NODE_TYPES[typ] = not jax.tree_util.treedef_is_leaf(treedef)
    if not is_node:
        return []
    leaves = jax.tree.leaves(value, is_leaf=lambda x: isinstance(x, Variable))
    return sorted({type(leaf).__name__ for leaf in leaves if kind_of(leaf) != KIND_OTHER})


def check_opaque_pytree(obj: object, name: str, value: tp.Any, declared: bool | None) -> None:
    """Refuse a JAX-only pytree holding arrays/Variables on an attribute that would make
    it static (its state would silently be left out of ``nnx.state`` and transforms)."""
    if declared is not True:
        found = hidden_data(value)
        if found:
            raise ValueError(opaque_pytree_message(obj, name, value, found))
