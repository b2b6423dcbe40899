"""Make arbitrary static values usable inside hashable structures (GraphDef)."""

from __future__ import annotations

import typing as tp

import numpy as np

__all__ = ["Unhashable", "hashable"]


class Unhashable:
    """Wraps a value that cannot be hashed.

    All wrappers of one type share a hash; equality compares the wrapped values
    (identity first, then ``==`` when that gives a plain bool).  This keeps the
    hash/equality contract while letting equal configurations compare equal.
    """

    __slots__ = ("value",)

    def __init__(self, value: tp.Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(type(self.value).__name__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Unhashable):
            return False
        if self.value is other.value:
            return True
        if type(self.value) is not type(other.value):
            return False
        try:
            if isinstance(self.value, np.ndarray) or hasattr(self.value, "__jax_array__"):
                return bool(np.array_equal(np.asarray(self.value), np.asarray(other.value)))
            result = self.value == other.value
        except Exception:
            return False
        return result if isinstance(result, bool) else False

    def __repr__(self) -> str:
        return repr(self.value)


def hashable(value: tp.Any) -> tp.Any:
    """Return ``value`` if it is hashable, else a structure of hashable wrappers."""
    try:
        hash(value)
        return value
    except TypeError:
        pass
    if isinstance(value, tuple):
        return tuple(hashable(v) for v in value)
    if isinstance(value, list):
        return ("__list__", tuple(hashable(v) for v in value))
    if isinstance(value, dict):
        try:
            items = sorted(value.items())
        except TypeError:
            items = list(value.items())
        return ("__dict__", tuple((hashable(k), hashable(v)) for k, v in items))
    if isinstance(value, set):
        return ("__set__", frozenset(hashable(v) for v in value))
    return Unhashable(value)


class Frozen:
    """Holds an arbitrary value; compares and hashes by a hashable view of it.

    GraphDefs store static attributes and Variable metadata this way so that they
    keep the original object (to rebuild the graph) and still hash.
    """

    __slots__ = ("value", "_key", "_hash")

    def __init__(self, value: tp.Any) -> None:
        self.value = value
        self._key = hashable(value)
        self._hash = hash((type(value).__name__, self._key))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Frozen)
            and self._hash == other._hash
            and type(self.value) is type(other.value)
            and self._key == other._key
        )

    def __repr__(self) -> str:
        return repr(self.value)
