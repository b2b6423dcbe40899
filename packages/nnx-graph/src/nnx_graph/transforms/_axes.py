"""Per-leaf axis specs: ``StateAxes``, ``Carry`` and resolving axes for graph leaves."""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

from nnx_graph._errors import format_path
from nnx_graph._filters import to_predicate

__all__ = ["Carry", "StateAxes", "leaf_axes"]


class _CarryType:
    """Marks the carry argument/output of :func:`nnx.scan`."""

    _instance: _CarryType | None = None

    def __new__(cls) -> _CarryType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "nnx.Carry"


Carry = _CarryType()


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

    def __init__(self, filter_axes: Mapping[tp.Any, tp.Any] | tp.Iterable[tuple[tp.Any, tp.Any]],
                 /) -> None:
        items = filter_axes.items() if isinstance(filter_axes, Mapping) else filter_axes
        pairs = list(items)
        self.filters = tuple(f for f, _ in pairs)
        self.axes = tuple(a for _, a in pairs)
        self._predicates = tuple(to_predicate(f) for f in self.filters)

    def items(self) -> list[tuple[tp.Any, tp.Any]]:
        return list(zip(self.filters, self.axes))

    def axis_for(self, path: tuple[tp.Any, ...], leaf: tp.Any, where: str) -> tp.Any:
        for predicate, axis in zip(self._predicates, self.axes):
            if predicate(path, leaf):
                return axis
        raise ValueError(
            f"{where}: {format_path(path)} ({type(leaf).__name__}) matches none of the "
            f"StateAxes filters {list(self.filters)}. Expected every Variable of the argument "
            "to match one filter. Fix: add `...: None` (broadcast) or `...: 0` as the last "
            "entry."
        )

    def __repr__(self) -> str:
        inner = ", ".join(f"{f!r}: {a!r}" for f, a in self.items())
        return f"StateAxes({{{inner}}})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateAxes) and self.items() == other.items()

    def __hash__(self) -> int:
        return hash(tuple(self.items()))


def leaf_axes(spec_per_arg: tp.Sequence[tp.Any], leaf_arg: tp.Sequence[int],
              leaf_paths: tp.Sequence[tuple[tp.Any, ...]], leaves: tp.Sequence[tp.Any],
              where: str) -> list[tp.Any]:
    """The axis of every graph leaf given per-argument specs (int/None/Carry/StateAxes)."""
    out = []
    used: dict[int, set[int]] = {}
    for pos, path, leaf in zip(leaf_arg, leaf_paths, leaves):
        spec = spec_per_arg[pos]
        if isinstance(spec, StateAxes):
            axis = spec.axis_for(path[1:], leaf, f"{where} (argument {pos})")
            used.setdefault(pos, set()).add(spec.axes.index(axis))
        else:
            axis = spec
        out.append(axis)
    return out


def check_state_axes_used(spec_per_arg: tp.Sequence[tp.Any], leaf_arg: tp.Sequence[int],
                          leaf_paths: tp.Sequence[tuple[tp.Any, ...]],
                          leaves: tp.Sequence[tp.Any], where: str) -> None:
    """Raise when a StateAxes filter matches nothing (a likely typo)."""
    for pos, spec in enumerate(spec_per_arg):
        if not isinstance(spec, StateAxes):
            continue
        matched = [False] * len(spec.filters)
        for p, path, leaf in zip(leaf_arg, leaf_paths, leaves):
            if p != pos:
                continue
            for k, predicate in enumerate(spec._predicates):
                if predicate(path[1:], leaf):
                    matched[k] = True
                    break
        unused = [f for f, m in zip(spec.filters, matched) if not m and f is not ...]
        if unused:
            raise ValueError(
                f"{where}: in the StateAxes of argument {pos}, the filter(s) {unused} match no "
                "Variable (an earlier filter took them, or there are none). Expected each "
                "filter to select some state. Fix: remove them or reorder the filters."
            )
