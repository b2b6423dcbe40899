"""Per-leaf axis specs: ``StateAxes``, ``Carry`` and resolving axes for graph leaves."""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

from nnx_graph._errors import format_path
from nnx_graph._filters import to_predicate

__all__ = ["Carry", "StateAxes", "check_state_axes_used", "leaf_axes"]


class _CarryType:
    """Marks the carry argument/output of :func:`nnx.scan` (``nnx.Carry``).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        ... def total(carry, x):
        ...     return carry + x
        >>> float(total(0.0, jnp.arange(4.0)))
        6.0
    """

    _instance: _CarryType | None = None

    def __new__(cls) -> _CarryType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "nnx.Carry"


Carry = _CarryType()


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


class StateAxes:
    """Axis per kind of state for a graph-node argument of ``vmap``/``scan``/``pmap``:
    ``StateAxes({nnx.Param: 0, nnx.BatchStat: None})``. The first matching filter
    wins; every Variable must match one (end with ``...``). ``nnx.Carry`` is allowed
    as an axis in ``scan``.

    Example::

        >>> import nnx_graph as nnx
        >>> axes = nnx.StateAxes({nnx.Param: 0, ...: None})
        >>> list(axes.axes)
        [0, None]
    """

    def __init__(
        self, filter_axes: Mapping[tp.Any, tp.Any] | tp.Iterable[tuple[tp.Any, tp.Any]], /
    ) -> None:
        items = filter_axes.items() if isinstance(filter_axes, Mapping) else filter_axes
        pairs = list(items)
        self.filters = tuple(f for f, _ in pairs)
        self.axes = tuple(a for _, a in pairs)
        self._predicates = tuple(to_predicate(f) for f in self.filters)

    def items(self) -> list[tuple[tp.Any, tp.Any]]:
        return list(zip(self.filters, self.axes))

    def index_for(self, path: tuple[tp.Any, ...], leaf: tp.Any) -> int | None:
        """Index of the first filter matching ``leaf`` at ``path``."""
        for k, predicate in enumerate(self._predicates):
            if predicate(path, leaf):
                return k
        return None

    def axis_for(
        self, path: tuple[tp.Any, ...], leaf: tp.Any, where: str, root: str = "model"
    ) -> tp.Any:
        k = self.index_for(path, leaf)
        if k is None:
            raise ValueError(
                f"{where}: {format_path(path, root)} ({type(leaf).__name__}) matches none of "
                f"the StateAxes filters [{', '.join(map(filter_repr, self.filters))}]. "
                "Expected every Variable of the argument to match one filter. Fix: add "
                "`...: None` (broadcast) or `...: 0` as the last entry."
            )
        return self.axes[k]

    def __repr__(self) -> str:
        inner = ", ".join(f"{filter_repr(f)}: {a!r}" for f, a in self.items())
        return f"StateAxes({{{inner}}})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateAxes) and self.items() == other.items()

    def __hash__(self) -> int:
        return hash(tuple(self.items()))


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
    """Raise when a StateAxes filter selects nothing: it matches no Variable at all
    (a likely typo), or an earlier filter already takes everything it matches."""
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
                raise ValueError(
                    f"{where}: in the StateAxes of argument {pos}, the filter {name} matches no "
                    "Variable of that argument. Expected each filter to select some state. "
                    f"Fix: remove {name} from the StateAxes or fix the filter."
                )
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
