"""Filters under Flax's module path (``flax.nnx.filterlib``).

The filter classes are the same objects as ``nnx_graph.<name>``; ``PathIn`` and
``HasTag`` are defined here.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_graph import filterlib
    >>> box = nnx_graph.Dict(a=nnx_graph.Param(jnp.ones(1)), b=nnx_graph.Param(jnp.zeros(1)))
    >>> state = nnx_graph.state(box, filterlib.PathIn(("a",)))
    >>> list(state.keys())
    ['a']
"""

from __future__ import annotations

import types
import typing as tp
from collections.abc import Hashable

from nnx_graph import (
    All,
    Any,
    Everything,
    Not,
    Nothing,
    OfType,
    PathContains,
    WithTag,
)
from nnx_graph._filters import Filter, Predicate, filters_to_predicates, to_predicate
from nnx_graph._paths import Key, PathParts

#: The filters that are not combinators: a type, a tag string, a predicate, a bool,
#: ``...`` or ``None`` (``Filter`` adds tuples and lists of filters).
FilterLiteral = type | str | Predicate | bool | types.EllipsisType | None


@tp.runtime_checkable
class HasTag(tp.Protocol):
    """Structural type of objects carrying a ``tag`` (what :class:`WithTag` matches).

    Example::

        >>> from nnx_graph.filterlib import HasTag
        >>> class Tagged:
        ...     tag = "dropout"
        >>> isinstance(Tagged(), HasTag), isinstance(object(), HasTag)
        (True, False)
    """

    tag: str


class PathIn:
    """Filter matching values whose full path is one of ``paths``.

    Each path is a tuple of keys, as in ``nnx.to_flat_state``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph
        >>> from nnx_graph.filterlib import PathIn
        >>> f = PathIn(("layer", "kernel"), ("bias",))
        >>> f(("layer", "kernel"), None), f(("layer", "bias"), None)
        (True, False)
    """

    def __init__(self, *paths: tuple[Hashable, ...]) -> None:
        for path in paths:
            if not isinstance(path, tuple):
                raise TypeError(
                    f"nnx.filterlib.PathIn expected each path to be a tuple of keys, found "
                    f"{path!r} of type {type(path).__name__}. Fix: write ('layer', "
                    "'kernel') instead of 'layer/kernel'."
                )
        self.paths = frozenset(paths)

    def __call__(self, path: tuple[Hashable, ...], x: object) -> bool:
        return tuple(path) in self.paths

    def __repr__(self) -> str:
        return f"PathIn({', '.join(repr(p) for p in sorted(self.paths, key=repr))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathIn) and self.paths == other.paths

    def __hash__(self) -> int:
        return hash((PathIn, self.paths))


__all__ = [
    "All",
    "Any",
    "Everything",
    "Filter",
    "FilterLiteral",
    "HasTag",
    "Key",
    "Not",
    "Nothing",
    "OfType",
    "PathContains",
    "PathIn",
    "PathParts",
    "Predicate",
    "WithTag",
    "filters_to_predicates",
    "to_predicate",
]
