"""Filters select Variables (or any graph leaves) by type, tag, path or predicate.

A filter is one of: a type (``nnx.Param``), a string (matched against the value's
``tag``: RNG stream Variables are tagged with their stream name, other Variables only
when created with ``tag=...``), a callable ``(path, value) -> bool``, a tuple/list
(any of), ``...`` / ``True`` (everything), ``None`` / ``False`` (nothing), or one of
the combinators below.

A string never matches a collection name: ``"params"`` selects the Variables tagged
``"params"`` (the ``params`` RNG stream), not the ``nnx.Param``s; use the type.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import types
import typing as tp

from nnx_graph._errors import FilterError, GraphStructureError, format_path

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


_NO_TAG = object()


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
        tag = getattr(value, "tag", _NO_TAG)  # one lookup (Variables resolve it in metadata)
        return tag is not _NO_TAG and tag == self.tag

    def __repr__(self) -> str:
        return f"WithTag({self.tag!r})"


@dataclasses.dataclass(frozen=True)
class PathContains:
    """Matches values whose path contains ``key`` (``exact=False``: ``str(key)`` is a
    substring of ``str(part)`` for some path part, so ``1`` also matches ``10``).

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
        key = str(self.key)
        return builtins.any(key in str(part) for part in path)

    def __repr__(self) -> str:
        return f"PathContains({self.key!r}, exact={self.exact})"


@dataclasses.dataclass(frozen=True)
class OfType:
    """Matches values that are instances of ``type``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.OfType(nnx.Param)((), nnx.Param(jnp.zeros(1)))
        True
    """

    type: type

    def __call__(self, path: Path, value: tp.Any) -> bool:
        return isinstance(value, self.type)

    def __repr__(self) -> str:
        return f"OfType({self.type!r})"


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


class FilterOrderError(FilterError, ValueError):
    """``...`` (everything) followed by another filter: a :class:`FilterError` that is
    also a ``ValueError``, the type Flax raises for it."""


_PREDICATE_CACHE: dict[tp.Any, Predicate] = {}


def to_predicate(filter: tp.Any) -> Predicate:  # Flax's parameter name
    """Turn any filter into a predicate ``(path, value) -> bool``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._filters import to_predicate
        >>> to_predicate(nnx.Param)((), nnx.Param(jnp.zeros(1)))
        True
    """
    the_filter = filter
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
        (WithTag, PathContains, OfType, Any, All, Not, Everything, Nothing),
    ):
        return the_filter
    if the_filter is Ellipsis or the_filter is True:
        return Everything()
    if the_filter is None or the_filter is False:
        return Nothing()
    if isinstance(the_filter, type):
        return OfType(the_filter)
    if isinstance(the_filter, str):
        return WithTag(the_filter)
    if isinstance(the_filter, (tuple, list)):
        return Any(*the_filter)
    if callable(the_filter):
        return tp.cast(Predicate, the_filter)
    raise FilterError(
        f"Invalid collection filter. Expected a filter (a Variable type such as nnx.Param, "
        f"a tag string, a "
        f"callable (path, value) -> bool, a tuple of filters, ..., or nnx.Any/All/Not/"
        f"PathContains/WithTag/OfType), found {the_filter!r} of type "
        f"{type(the_filter).__name__}. Fix: pass e.g. nnx.Param or (nnx.Param, "
        f"nnx.BatchStat)."
    )


def filters_to_predicates(filters: tp.Sequence[tp.Any]) -> tuple[Predicate, ...]:
    """Convert the filters of a ``split``; ``...``/``True`` may only be followed by
    more ``...``/``True`` (a filter after "everything" could never match).

    Example::

        >>> import nnx_graph as nnx
        >>> from nnx_graph.filterlib import filters_to_predicates
        >>> filters_to_predicates(("dropout", ...))
        (WithTag('dropout'), Everything())
    """
    for i, f in enumerate(filters):
        if (f is Ellipsis or f is True) and i != len(filters) - 1:
            later = filters[i + 1 :]
            if builtins.all(g is Ellipsis or g is True for g in later):
                continue
            raise FilterOrderError(
                f"`...` or `True` can only be used as the last filters, found {f!r} at index "
                f"{i} of {len(filters)} followed by {tuple(later)!r}: every later filter would "
                "match nothing. Fix: move `...` to the end."
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
            f"Non-exhaustive filters, got a non-empty remainder: no filter of "
            f"{tuple(filters)!r} matched {shown}{more}. Expected every leaf to match one "
            "filter. Fix: add `...` as the last filter to match all remaining elements."
        )
    return groups
