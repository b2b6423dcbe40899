"""Nested-mapping helpers under Flax's module path (``flax.nnx.traversals``):
flatten a nested dict to ``{path_tuple: leaf}`` and back.

Example::

    >>> from nnx_graph import traversals
    >>> flat = traversals.flatten_mapping({"a": {"b": 1}, "c": 2})
    >>> flat
    {('a', 'b'): 1, ('c',): 2}
    >>> traversals.unflatten_mapping(flat)
    {'a': {'b': 1}, 'c': 2}
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Mapping

IsLeafCallable = Callable[[tuple[tp.Any, ...], Mapping[tp.Any, tp.Any]], bool]


class _EmptyNode:
    """Marks an empty sub-mapping kept by ``flatten_mapping(keep_empty_nodes=True)``."""

    _instance: _EmptyNode | None = None

    def __new__(cls) -> _EmptyNode:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "empty_node"


empty_node = _EmptyNode()
"""The value that stands for an empty sub-mapping in a flat mapping."""


def _walk(
    xs: Mapping[tp.Any, tp.Any],
    prefix: tuple[tp.Any, ...],
    is_leaf: IsLeafCallable | None,
    keep_empty_nodes: bool,
    out: list[tuple[tuple[tp.Any, ...], tp.Any]],
) -> None:
    for key, value in xs.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and not (is_leaf is not None and is_leaf(path, value)):
            if not value:
                if keep_empty_nodes:
                    out.append((path, empty_node))
                continue
            _walk(value, path, is_leaf, keep_empty_nodes, out)
        else:
            out.append((path, value))


def _check_mapping(xs: object, fn: str) -> None:
    if not isinstance(xs, Mapping):
        raise TypeError(
            f"nnx.traversals.{fn} expected a Mapping (a dict or a State), found "
            f"{type(xs).__name__}. Fix: pass the nested dict itself."
        )


def flatten_mapping(
    xs: Mapping[tp.Any, tp.Any],
    /,
    *,
    keep_empty_nodes: bool = False,
    is_leaf: IsLeafCallable | None = None,
    sep: str | None = None,
) -> dict[tp.Any, tp.Any]:
    """Flatten a nested mapping into ``{path: leaf}``, paths being key tuples.

    Arguments:
        xs: the nested mapping.
        keep_empty_nodes: keep empty sub-mappings as ``empty_node`` leaves (so that
            :func:`unflatten_mapping` restores them).
        is_leaf: ``(path, sub_mapping) -> bool``; True stops the descent there.
        sep: join each path with this separator into a string key instead.

    Example::

        >>> from nnx_graph.traversals import flatten_mapping
        >>> flatten_mapping({"a": {"b": 1, "c": {}}}, sep="/")
        {'a/b': 1}
    """
    _check_mapping(xs, "flatten_mapping")
    items: list[tuple[tuple[tp.Any, ...], tp.Any]] = []
    _walk(xs, (), is_leaf, keep_empty_nodes, items)
    if sep is None:
        return dict(items)
    return {sep.join(str(k) for k in path): value for path, value in items}


def flatten_to_sequence(
    xs: Mapping[tp.Any, tp.Any], /, *, is_leaf: IsLeafCallable | None = None
) -> list[tuple[tp.Any, tp.Any]]:
    """Like :func:`flatten_mapping`, as a list of ``(path, leaf)`` in insertion order;
    empty sub-mappings are dropped.

    Example::

        >>> from nnx_graph.traversals import flatten_to_sequence
        >>> flatten_to_sequence({"a": {"b": 1}, "c": 2})
        [(('a', 'b'), 1), (('c',), 2)]
    """
    _check_mapping(xs, "flatten_to_sequence")
    items: list[tuple[tuple[tp.Any, ...], tp.Any]] = []
    _walk(xs, (), is_leaf, False, items)
    return list(items)


def unflatten_mapping(xs: tp.Any, /, *, sep: str | None = None) -> dict[tp.Any, tp.Any]:
    """Rebuild the nested dict from ``{path: leaf}`` (or ``(path, leaf)`` pairs);
    ``empty_node`` leaves become empty dicts.

    Arguments:
        xs: a mapping or a sequence of ``(path, leaf)`` pairs.
        sep: the separator the keys were joined with (string keys).

    Example::

        >>> from nnx_graph.traversals import unflatten_mapping
        >>> unflatten_mapping({"a/b": 1, "c": 2}, sep="/")
        {'a': {'b': 1}, 'c': 2}
    """
    pairs = xs.items() if isinstance(xs, Mapping) else xs
    result: dict[tp.Any, tp.Any] = {}
    for key, value in pairs:
        path = tuple(key.split(sep)) if sep is not None else key
        if not isinstance(path, tuple):
            path = (path,)
        node = result
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TypeError(
                    f"nnx.traversals.unflatten_mapping: path {path!r} goes through "
                    f"{path[: i + 1]!r}, which is a leaf ({child!r}), not a mapping. Fix: "
                    "a flat mapping may not hold both a path and one of its prefixes."
                )
            node = child
        node[path[-1]] = {} if value is empty_node else value
    return result


__all__ = [
    "IsLeafCallable",
    "empty_node",
    "flatten_mapping",
    "flatten_to_sequence",
    "unflatten_mapping",
]
