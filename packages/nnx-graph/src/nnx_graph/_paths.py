"""Path keys: the order graph traversals and States use for keys (ints before
strings), and the int/str key spelling of checkpoint formats."""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator, Mapping

__all__ = [
    "MISSING",
    "Key",
    "PathParts",
    "match_key",
    "pure_paths",
    "restore_int_path",
    "restore_int_paths",
    "sorted_keys",
]

Key = str | int
PathParts = tuple[Key, ...]


def _sort_key(key: tp.Any) -> tuple[int, tp.Any]:
    # ints before strings, each group in natural order, anything else by repr
    if isinstance(key, int):
        return (0, key)
    if isinstance(key, str):
        return (1, key)
    return (2, repr(key))


def sorted_keys(keys: tp.Iterable[tp.Any]) -> list[tp.Any]:
    """Keys in traversal order: ints first (numerically), then strings, then others."""
    return sorted(keys, key=_sort_key)


def restore_int_path(path: tuple[tp.Any, ...]) -> PathParts:
    """Digit-only string keys back to ints: ``("layers", "0")`` -> ``("layers", 0)``."""
    return tuple(int(k) if isinstance(k, str) and k.isdigit() else k for k in path)


def match_key(mapping: Mapping[tp.Any, tp.Any], key: Key) -> tp.Any:
    """Find ``key`` in ``mapping`` tolerating int keys that were stored as strings
    (and digit-string keys that were turned into ints by ``restore_int_paths``)."""
    if key in mapping:
        return key
    if type(key) is int and str(key) in mapping:
        return str(key)
    if isinstance(key, str) and key.isdigit() and int(key) in mapping:
        return int(key)
    return MISSING


MISSING = object()


def pure_paths(node: tp.Any, prefix: tuple[tp.Any, ...]) -> Iterator[tuple[tp.Any, ...]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from pure_paths(value, (*prefix, key))
    else:
        yield prefix


def restore_int_paths(pure_dict: Mapping[tp.Any, tp.Any]) -> dict[Key, tp.Any]:
    """Turn string keys made of digits back into ints (checkpoint formats store
    ``{0: ...}`` as ``{"0": ...}``).

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.restore_int_paths({"layers": {"0": 1}})
        {'layers': {0: 1}}
    """
    out: dict[Key, tp.Any] = {}
    for key, value in pure_dict.items():
        new_key = int(key) if isinstance(key, str) and key.isdigit() else key
        out[new_key] = restore_int_paths(value) if isinstance(value, Mapping) else value
    return out
