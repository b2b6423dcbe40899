"""Filters select Variables (or any graph leaves) by type, tag, path or predicate.

A filter is one of: a type (``nnx.Param``), a string (a tag, or a registered
collection name such as ``'params'``), a callable ``(path, value) -> bool``, a
tuple/list (any of), ``...`` / ``True`` (everything), ``None`` / ``False``
(nothing), or one of the combinators below.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import types
import typing as tp

from nnx_graph._errors import FilterError, GraphStructureError, format_path
from nnx_graph._variable_names import variable_name_from_type
from nnx_graph._variables import Variable

__all__ = [
    "All",
    "Any",
    "Everything",
    "Filter",
    "Not",
    "Nothing",
    "OfType",
    "PathContains",
    "Predicate",
    "WithTag",
    "filters_to_predicates",
    "split_pairs",
    "to_predicate",
]

Path = tuple[tp.Any, ...]
Predicate = tp.Callable[[Path, tp.Any], bool]
Filter = tp.Union[
    type, str, Predicate, "tuple[Filter, ...]", "list[Filter]", bool, None, "types.EllipsisType"
]


@dataclasses.dataclass(frozen=True)
class WithTag:
    """Matches values whose ``tag`` metadata equals ``tag`` (RNG streams are tagged
    with their stream name).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.WithTag("a")((), nnx.Param(jnp.zeros(1), tag="a"))
        True
    """

    tag: str

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return getattr(value, "tag", None) == self.tag


@dataclasses.dataclass(frozen=True)
class PathContains:
    """Matches values whose path contains ``key`` (``exact=False``: a substring of a
    string path part).

    Example::

        >>> nnx_path = ("encoder", "kernel")
        >>> import nnx_graph as nnx
        >>> nnx.PathContains("encoder")(nnx_path, None)
        True
    """

    key: tp.Any
    exact: bool = True

    def __call__(self, path: Path, value: tp.Any) -> bool:
        if self.exact:
            return self.key in path
        return builtins.any(
            (isinstance(p, str) and isinstance(self.key, str) and self.key in p) or p == self.key
            for p in path
        )


@dataclasses.dataclass(frozen=True)
class OfType:
    """Matches values that are instances of ``type`` (or Variables of that type).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.OfType(nnx.Param)((), nnx.Param(jnp.zeros(1)))
        True
    """

    type: type

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return isinstance(value, self.type) or (
            hasattr(value, "type")
            and isinstance(value.type, type)
            and issubclass(value.type, self.type)
        )


class Any:
    """Matches when any of the given filters matches.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> f = nnx.Any(nnx.Param, nnx.BatchStat)
        >>> f((), nnx.BatchStat(jnp.zeros(1)))
        True
    """

    def __init__(self, *filters: Filter) -> None:
        self.predicates = tuple(to_predicate(f) for f in filters)

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return builtins.any(p(path, value) for p in self.predicates)

    def __repr__(self) -> str:
        return f"Any({', '.join(map(repr, self.predicates))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Any) and self.predicates == other.predicates

    def __hash__(self) -> int:
        return hash(("Any", self.predicates))


class All:
    """Matches when every given filter matches.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> f = nnx.All(nnx.Param, nnx.PathContains("w"))
        >>> f(("w",), nnx.Param(jnp.zeros(1)))
        True
    """

    def __init__(self, *filters: Filter) -> None:
        self.predicates = tuple(to_predicate(f) for f in filters)

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return builtins.all(p(path, value) for p in self.predicates)

    def __repr__(self) -> str:
        return f"All({', '.join(map(repr, self.predicates))})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, All) and self.predicates == other.predicates

    def __hash__(self) -> int:
        return hash(("All", self.predicates))


class Not:
    """Matches when the given filter does not.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.Not(nnx.Param)((), nnx.BatchStat(jnp.zeros(1)))
        True
    """

    def __init__(self, collection_filter: Filter, /) -> None:
        self.predicate = to_predicate(collection_filter)

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return not self.predicate(path, value)

    def __repr__(self) -> str:
        return f"Not({self.predicate!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Not) and self.predicate == other.predicate

    def __hash__(self) -> int:
        return hash(("Not", self.predicate))


class Everything:
    """Matches everything (the filter ``...``).

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.Everything()((), 1)
        True
    """

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return True

    def __repr__(self) -> str:
        return "Everything()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Everything)

    def __hash__(self) -> int:
        return hash(Everything)


class Nothing:
    """Matches nothing.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.Nothing()((), 1)
        False
    """

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return False

    def __repr__(self) -> str:
        return "Nothing()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Nothing)

    def __hash__(self) -> int:
        return hash(Nothing)


@dataclasses.dataclass(frozen=True)
class _WithCollectionName:
    """A string filter: a tag, or a registered collection name like 'params'."""

    name: str

    def __call__(self, path: Path, value: tp.Any) -> bool:
        if getattr(value, "tag", None) == self.name:
            return True
        return isinstance(value, Variable) and variable_name_from_type(type(value)) == self.name


_PREDICATE_CACHE: dict[tp.Any, Predicate] = {}


def to_predicate(the_filter: tp.Any) -> Predicate:
    """Turn any filter into a predicate ``(path, value) -> bool``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._filters import to_predicate
        >>> to_predicate(nnx.Param)((), nnx.Param(jnp.zeros(1)))
        True
    """
    # keyed by type too: True == 1 and hash(True) == hash(1), but only True is a filter
    key = (type(the_filter), the_filter)
    try:
        return _PREDICATE_CACHE[key]
    except (KeyError, TypeError):
        pass
    predicate = _to_predicate(the_filter)
    with contextlib.suppress(TypeError):
        _PREDICATE_CACHE[key] = predicate
    return predicate


def _to_predicate(the_filter: tp.Any) -> Predicate:
    if isinstance(
        the_filter,
        (WithTag, PathContains, OfType, Any, All, Not, Everything, Nothing, _WithCollectionName),
    ):
        return the_filter
    if the_filter is Ellipsis or the_filter is True:
        return Everything()
    if the_filter is None or the_filter is False:
        return Nothing()
    if isinstance(the_filter, type):
        return OfType(the_filter)
    if isinstance(the_filter, str):
        return _WithCollectionName(the_filter)
    if isinstance(the_filter, (tuple, list)):
        return Any(*the_filter)
    if callable(the_filter):
        return tp.cast(Predicate, the_filter)
    raise FilterError(
        f"Expected a filter (a Variable type such as nnx.Param, a tag string, a "
        f"callable (path, value) -> bool, a tuple of filters, ..., or nnx.Any/All/Not/"
        f"PathContains/WithTag/OfType), found {the_filter!r} of type "
        f"{type(the_filter).__name__}. Fix: pass e.g. nnx.Param or (nnx.Param, "
        f"nnx.BatchStat)."
    )


def filters_to_predicates(filters: tp.Sequence[tp.Any]) -> tuple[Predicate, ...]:
    """Convert filters for ``split``; ``...`` may only be the last one."""
    for i, f in enumerate(filters):
        if (f is Ellipsis or f is True) and i != len(filters) - 1:
            raise FilterError(
                f"`...` (Everything) may only be the last filter, found it at position {i} "
                f"of {len(filters)}: every later filter would match nothing. Fix: move `...` "
                "to the end."
            )
    return tuple(to_predicate(f) for f in filters)


def split_pairs(
    pairs: list[tuple[Path, tp.Any]],
    filters: tp.Sequence[tp.Any],
    *,
    exhaustive: bool = True,
) -> list[list[tuple[Path, tp.Any]]]:
    """Partition ``pairs`` by ``filters``: each goes to the first filter it matches.
    Unmatched pairs are an error when ``exhaustive``, dropped otherwise."""
    if not filters:
        filters = (...,)
    predicates = filters_to_predicates(filters)
    groups: list[list[tuple[Path, tp.Any]]] = [[] for _ in predicates]
    unmatched: list[Path] = []
    for path, value in pairs:
        for i, predicate in enumerate(predicates):
            if predicate(path, value):
                groups[i].append((path, value))
                break
        else:
            unmatched.append(path)
    if unmatched and exhaustive:
        shown = ", ".join(format_path(p, "state") for p in unmatched[:8])
        more = f" and {len(unmatched) - 8} more" if len(unmatched) > 8 else ""
        raise GraphStructureError(
            f"Non-exhaustive filters {tuple(filters)!r}: no filter matched {shown}{more}. "
            "Expected every leaf to match one filter. Fix: add `...` as the last filter "
            "to collect the rest."
        )
    return groups
