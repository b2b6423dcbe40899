"""Per-leaf axis specs: ``StateAxes``, ``Carry`` and resolving axes for graph leaves."""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

from nnx_graph._errors import format_path
from nnx_graph._filters import to_predicate
from nnx_graph._state import State, to_flat_state
from nnx_graph._variables import Variable

__all__ = [
    "Carry",
    "StateAxes",
    "check_state_axes_used",
    "is_prefix_tree",
    "leaf_axes",
    "lookup_prefix",
]


class _CarryMeta(type):
    def __repr__(cls) -> str:
        return "nnx.Carry"


class Carry(metaclass=_CarryMeta):
    """Marks the carry argument/output of :func:`nnx.scan`: pass the class itself
    in ``in_axes``/``out_axes`` (``in_axes=(nnx.Carry, 0)``), or as the axis of
    some Variables in a :class:`StateAxes`. It is never instantiated.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        ... def total(carry, x):
        ...     return carry + x
        >>> float(total(0.0, jnp.arange(4.0)))
        6.0
    """


def filter_repr(the_filter: tp.Any) -> str:
    """A short readable name for a filter: ``nnx.Param``, ``...``, ``'dropout'``."""
    if the_filter is Ellipsis:
        return "..."
    if isinstance(the_filter, type):
        module = the_filter.__module__
        prefix = "nnx." if module.startswith("nnx_graph") else ""
        return prefix + the_filter.__qualname__
    if isinstance(the_filter, tuple):
        return "(" + ", ".join(map(filter_repr, the_filter)) + ")"
    return repr(the_filter)


class StateAxes(Mapping[tp.Any, tp.Any]):
    """Axis per kind of state for a graph-node argument of ``vmap``/``scan``/``pmap``:
    ``StateAxes({nnx.Param: 0, nnx.BatchStat: None})``. The first matching filter
    wins; every Variable must match one (end with ``...``). ``nnx.Carry`` is allowed
    as an axis in ``scan``. It is a read-only mapping from filter to axis
    (``keys``/``values``/``items``, ``len``, ``axes[filter]``); ``filters`` and
    ``axes`` are the two sequences, and ``map_prefix(path, variable)`` gives the axis
    of one Variable. Given a State of axes (e.g. from ``nnx.prefix``), each path
    becomes a filter for exactly that path.

    Example::

        >>> import nnx_graph as nnx
        >>> axes = nnx.StateAxes({nnx.Param: 0, ...: None})
        >>> list(axes.axes), len(axes), axes[nnx.Param]
        ([0, None], 2, 0)
    """

    def __init__(
        self, filter_axes: Mapping[tp.Any, tp.Any] | tp.Iterable[tuple[tp.Any, tp.Any]], /
    ) -> None:
        pairs: list[tuple[tp.Any, tp.Any]]
        if isinstance(filter_axes, State):
            pairs = [(_PathIs(path), axis) for path, axis in to_flat_state(filter_axes)]
        else:
            items = filter_axes.items() if isinstance(filter_axes, Mapping) else filter_axes
            pairs = list(items)
        self._filters: tuple[tp.Any, ...] = tuple(f for f, _ in pairs)
        self._axes: tuple[tp.Any, ...] = tuple(a for _, a in pairs)
        self._predicates = tuple(to_predicate(f) for f in self._filters)

    @property
    def filters(self) -> tuple[tp.Any, ...]:
        """The filters, in order (the first one matching a Variable wins)."""
        return self._filters

    @property
    def axes(self) -> tuple[tp.Any, ...]:
        """The axis of each filter, in the order of :attr:`filters`."""
        return self._axes

    # ------------------------------------------------------------- mapping
    def __getitem__(self, key: tp.Any) -> tp.Any:
        try:
            return self.axes[self.filters.index(key)]
        except ValueError:
            raise _NoSuchFilter(
                f"StateAxes: {filter_repr(key)} is not one of its filters "
                f"[{', '.join(map(filter_repr, self.filters))}]."
            ) from None

    def __iter__(self) -> tp.Iterator[tp.Any]:
        return iter(self.filters)

    def __len__(self) -> int:
        return len(self.filters)

    # ------------------------------------------------------------- lookups
    def index_for(self, path: tuple[tp.Any, ...], leaf: tp.Any) -> int | None:
        """Index of the first filter matching ``leaf`` at ``path``."""
        for k, predicate in enumerate(self._predicates):
            if predicate(path, leaf):
                return k
        return None

    def map_prefix(self, path: tuple[tp.Any, ...], variable: tp.Any) -> tp.Any:
        """The axis of ``variable`` at ``path`` (ValueError when no filter matches)."""
        return self.axis_for(path, variable, "StateAxes.map_prefix", "state")

    def axis_for(
        self, path: tuple[tp.Any, ...], leaf: tp.Any, where: str, root: str = "model"
    ) -> tp.Any:
        k = self.index_for(path, leaf)
        if k is None:
            raise ValueError(
                f"{where}: {format_path(path, root)} ({type(leaf).__name__}) matches none of "
                f"the StateAxes filters [{', '.join(map(filter_repr, self.filters))}]: no "
                "axis found for it. Expected every Variable of "
                "the argument to match one filter. Fix: add `...: None` (broadcast) or "
                "`...: 0` as the last entry."
            )
        return self.axes[k]

    def __repr__(self) -> str:
        inner = ", ".join(f"{filter_repr(f)}: {a!r}" for f, a in self.items())
        return f"StateAxes({{{inner}}})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StateAxes)
            and self.filters == other.filters
            and self.axes == other.axes
        )

    def __hash__(self) -> int:
        return hash((self.filters, self.axes))


class _NoSuchFilter(KeyError, ValueError):
    """A filter that a StateAxes does not hold (a KeyError for the mapping protocol,
    a ValueError as in Flax)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _PathIs:
    """A filter matching exactly one path (StateAxes built from a State)."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[tp.Any, ...]) -> None:
        self.path = tuple(path)

    def __call__(self, path: tuple[tp.Any, ...], leaf: tp.Any) -> bool:
        return tuple(path) == self.path

    def __repr__(self) -> str:
        return f"PathIs({format_path(self.path, 'state')})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PathIs) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def is_prefix_tree(spec: tp.Any) -> bool:
    """A prefix tree of per-Variable specs over a graph node's state (a State or a
    mapping of them, e.g. from ``nnx.prefix``), as opposed to a StateAxes or one spec."""
    return isinstance(spec, Mapping) and not isinstance(spec, StateAxes)


def lookup_prefix(spec: tp.Any, path: tuple[tp.Any, ...], where: str, root: str) -> tp.Any:
    """The spec of the Variable at ``path`` inside a prefix tree: the first entry on
    the way down that is not a mapping."""
    node: tp.Any = spec
    for key in path:
        if not isinstance(node, Mapping) or isinstance(node, StateAxes):
            break
        if key not in node:
            raise ValueError(
                f"{where}: the prefix spec for {root} has no entry for "
                f"{format_path(tuple(path), root)}. Expected a tree over the argument's "
                "state (as made by nnx.prefix(node, ...)) covering each Variable. Fix: "
                "build it from the same object, or end it with a single spec higher up."
            )
        node = node[key]
    if isinstance(node, Variable):
        node = node.get_value()
    return node


def _root(root_names: tp.Callable[[], tp.Sequence[str]] | None, k: int) -> str:
    names = root_names() if root_names is not None else ()
    return names[k] if k < len(names) else f"arg{k}"


def leaf_axes(
    spec_per_arg: tp.Sequence[tp.Any],
    leaf_arg: tp.Sequence[int],
    leaf_paths: tp.Sequence[tuple[tp.Any, ...]],
    leaves: tp.Sequence[tp.Any],
    where: str,
    root_names: tp.Callable[[], tp.Sequence[str]] | None = None,
) -> list[tp.Any]:
    """The axis of every graph leaf given per-argument specs (int/None/Carry/StateAxes).
    ``leaf_paths`` are ``(root_index, *path)``."""
    out = []
    for pos, path, leaf in zip(leaf_arg, leaf_paths, leaves):
        spec = spec_per_arg[pos]
        if is_prefix_tree(spec):
            spec = lookup_prefix(spec, path[1:], where, _root(root_names, path[0]))
        if isinstance(spec, StateAxes):
            out.append(spec.axis_for(path[1:], leaf, where, _root(root_names, path[0])))
        else:
            out.append(spec)
    return out


def check_state_axes_used(
    spec_per_arg: tp.Sequence[tp.Any],
    leaf_arg: tp.Sequence[int],
    leaf_paths: tp.Sequence[tuple[tp.Any, ...]],
    leaves: tp.Sequence[tp.Any],
    where: str,
    root_names: tp.Callable[[], tp.Sequence[str]] | None = None,
) -> None:
    """Raise when an earlier StateAxes filter already takes every Variable a later
    one matches (the later one is dead). A filter matching no Variable of the
    argument is fine: one StateAxes is often shared by several calls (``__init__``
    of an empty Module, then ``__call__``) and modules."""
    for pos, spec in enumerate(spec_per_arg):
        if not isinstance(spec, StateAxes):
            continue
        selected = [False] * len(spec.filters)
        mine = [(path, leaf) for p, path, leaf in zip(leaf_arg, leaf_paths, leaves) if p == pos]
        for path, leaf in mine:
            k = spec.index_for(path[1:], leaf)
            if k is not None:
                selected[k] = True
        for k, the_filter in enumerate(spec.filters):
            if selected[k] or the_filter is Ellipsis:
                continue
            name = filter_repr(the_filter)
            predicate = spec._predicates[k]
            shadowed = [(path, leaf) for path, leaf in mine if predicate(path[1:], leaf)]
            if not shadowed:
                continue
            path, leaf = shadowed[0]
            earlier = spec.index_for(path[1:], leaf)
            assert earlier is not None
            raise ValueError(
                f"{where}: in the StateAxes of argument {pos}, the filter "
                f"{filter_repr(spec.filters[earlier])} (axis {spec.axes[earlier]!r}) comes "
                f"before {name} (axis {spec.axes[k]!r}) and already takes every Variable "
                f"{name} matches, e.g. {format_path(path[1:], _root(root_names, path[0]))} "
                f"({type(leaf).__name__}); the first matching filter wins, so {name} selects "
                f"nothing. Fix: put {name} before {filter_repr(spec.filters[earlier])}."
            )
