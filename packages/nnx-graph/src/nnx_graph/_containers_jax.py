"""How nnx.List and nnx.Dict (and their subclasses) flatten as JAX pytrees: their
items are the children (a List's static items, and items declared
``nnx.static(...)``, go to the aux data)."""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph._hashing import hashable
from nnx_graph._kinds import has_data
from nnx_graph._paths import sorted_keys

if tp.TYPE_CHECKING:
    from nnx_graph._module_base import Dict, List


def _list_flatten(node: List[tp.Any]) -> tuple[list[tp.Any], _ListAux]:
    kinds = node._nnx_item_kinds
    if kinds is None:
        mask = tuple(has_data(v) for v in node)
    else:
        mask = tuple(has_data(v) if k is None else k for v, k in zip(node, kinds))
    children = [v for v, m in zip(node, mask) if m]
    statics = tuple(hashable(v) if not m else None for v, m in zip(node, mask))
    values = [v for v, m in zip(node, mask) if not m]
    return children, _ListAux(mask, statics, values, None if kinds is None else tuple(kinds))


class _ListAux:
    __slots__ = ("mask", "key", "values", "kinds")

    def __init__(
        self,
        mask: tuple[bool, ...],
        key: tuple[tp.Any, ...],
        values: list[tp.Any],
        kinds: tuple[bool | None, ...] | None,
    ) -> None:
        self.mask, self.key, self.values, self.kinds = mask, key, values, kinds

    def __hash__(self) -> int:
        return hash((self.mask, self.key, self.kinds))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ListAux) and (self.mask, self.key, self.kinds) == (
            other.mask,
            other.key,
            other.kinds,
        )


def _list_unflatten(
    cls: type[List[tp.Any]],
) -> tp.Callable[[_ListAux, tp.Iterable[tp.Any]], List[tp.Any]]:
    def unflatten(aux: _ListAux, children: tp.Iterable[tp.Any]) -> List[tp.Any]:
        data_iter = iter(children)
        static_iter = iter(aux.values)
        out = list.__new__(cls)  # no creation trace: rebuilt inside the trace using it
        list.extend(out, [next(data_iter) if m else next(static_iter) for m in aux.mask])
        if aux.kinds is not None:
            out.__dict__["_nnx_item_kinds"] = list(aux.kinds)
        return out

    return unflatten


def _list_flatten_with_keys(node: List[tp.Any]) -> tuple[list[tuple[tp.Any, tp.Any]], _ListAux]:
    children, aux = _list_flatten(node)
    keys = [jax.tree_util.SequenceKey(i) for i, m in enumerate(aux.mask) if m]
    return list(zip(keys, children)), aux


def _dict_flatten(node: Dict[tp.Any]) -> tuple[list[tp.Any], tuple[tp.Any, ...]]:
    keys = tuple(sorted_keys(node))
    return [dict.__getitem__(node, k) for k in keys], keys


def _dict_unflatten(
    cls: type[Dict[tp.Any]],
) -> tp.Callable[[tuple[tp.Any, ...], tp.Iterable[tp.Any]], Dict[tp.Any]]:
    def unflatten(keys: tuple[tp.Any, ...], children: tp.Iterable[tp.Any]) -> Dict[tp.Any]:
        out = dict.__new__(cls)  # no creation trace: rebuilt inside the trace using it
        dict.update(out, zip(keys, children))
        return out

    return unflatten


def _dict_flatten_with_keys(
    node: Dict[tp.Any],
) -> tuple[list[tuple[tp.Any, tp.Any]], tuple[tp.Any, ...]]:
    children, keys = _dict_flatten(node)
    return [(jax.tree_util.DictKey(k), c) for k, c in zip(keys, children)], keys
