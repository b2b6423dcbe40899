"""How nnx.List and nnx.Dict (and their subclasses) flatten as JAX pytrees (their
items are the children; a List's static items, and items declared
``nnx.static(...)``, go to the aux data) and are rebuilt from a GraphDef."""

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
    extra = (node._nnx_auto, None if kinds is None else tuple(kinds))
    return children, _ListAux(mask, statics, values, extra)


class _ListAux:
    __slots__ = ("mask", "key", "values", "extra")

    def __init__(
        self,
        mask: tuple[bool, ...],
        key: tuple[tp.Any, ...],
        values: list[tp.Any],
        extra: tuple[bool, tuple[bool | None, ...] | None],  # made from a plain list, kinds
    ) -> None:
        self.mask, self.key, self.values, self.extra = mask, key, values, extra

    def __hash__(self) -> int:
        return hash((self.mask, self.key, self.extra))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ListAux) and (self.mask, self.key, self.extra) == (
            other.mask,
            other.key,
            other.extra,
        )


def _list_unflatten(
    cls: type[List[tp.Any]],
) -> tp.Callable[[_ListAux, tp.Iterable[tp.Any]], List[tp.Any]]:
    def unflatten(aux: _ListAux, children: tp.Iterable[tp.Any]) -> List[tp.Any]:
        data_iter = iter(children)
        static_iter = iter(aux.values)
        out = list.__new__(cls)  # no creation trace: rebuilt inside the trace using it
        list.extend(out, [next(data_iter) if m else next(static_iter) for m in aux.mask])
        auto, kinds = aux.extra
        if auto:
            out.__dict__["_nnx_auto"] = True
        if kinds is not None:
            out.__dict__["_nnx_item_kinds"] = list(kinds)
        return out

    return unflatten


def _list_flatten_with_keys(node: List[tp.Any]) -> tuple[list[tuple[tp.Any, tp.Any]], _ListAux]:
    children, aux = _list_flatten(node)
    keys = [jax.tree_util.SequenceKey(i) for i, m in enumerate(aux.mask) if m]
    return list(zip(keys, children)), aux


_DictAux = tuple[tuple[tp.Any, ...], bool]  # the keys, made from a plain dict


def _dict_flatten(node: Dict[tp.Any]) -> tuple[list[tp.Any], _DictAux]:
    keys = tuple(sorted_keys(node))
    return [dict.__getitem__(node, k) for k in keys], (keys, node._nnx_auto)


def _dict_unflatten(
    cls: type[Dict[tp.Any]],
) -> tp.Callable[[_DictAux, tp.Iterable[tp.Any]], Dict[tp.Any]]:
    def unflatten(aux: _DictAux, children: tp.Iterable[tp.Any]) -> Dict[tp.Any]:
        out = dict.__new__(cls)  # no creation trace: rebuilt inside the trace using it
        dict.update(out, zip(aux[0], children))
        if aux[1]:
            out.__dict__["_nnx_auto"] = True
        return out

    return unflatten


def _dict_flatten_with_keys(
    node: Dict[tp.Any],
) -> tuple[list[tuple[tp.Any, tp.Any]], _DictAux]:
    children, aux = _dict_flatten(node)
    return [(jax.tree_util.DictKey(k), c) for k, c in zip(aux[0], children)], aux


def restore_explicit(node: tp.Any, explicit: dict[tp.Any, bool]) -> None:
    """On a List/Dict rebuilt from a GraphDef: what ``_nnx_explicit`` recorded."""
    d = node.__dict__
    if explicit.get("_nnx_auto"):
        d["_nnx_auto"] = True
    if isinstance(node, list) and any(type(k) is int for k in explicit):
        d["_nnx_item_kinds"] = [explicit.get(i) for i in range(len(node))]
