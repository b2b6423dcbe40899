"""``GraphState``: a State bundled with the GraphDef it belongs to, as returned by
:func:`nnx.unpack`, so one value is enough to rebuild the object."""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator, MutableMapping

import jax

from nnx_graph._paths import sorted_keys
from nnx_graph._records import GraphDef
from nnx_graph._state import State

__all__ = ["GraphState"]

A = tp.TypeVar("A")


class GraphState(MutableMapping[tp.Any, tp.Any], tp.Generic[A]):
    """A :class:`State` together with its :class:`GraphDef`. Reads and writes go to
    the State (``gs["w"]``, ``gs.w``, iteration, ``len``); ``nnx.merge(gs)`` (or
    ``nnx.merge(gs1, gs2)`` for several filtered parts) rebuilds the object. A
    pytree: its leaves are the State's.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2)); self.s = nnx.BatchStat(jnp.zeros(1))
        >>> params, rest = nnx.unpack(M(), nnx.Param, ...)
        >>> list(params), type(nnx.merge(params, rest)).__name__
        (['w'], 'M')
    """

    __slots__ = ("_graphdef", "_state")
    _graphdef: GraphDef[A]
    _state: State

    def __init__(self, _graphdef: GraphDef[A], _state: State) -> None:
        if not isinstance(_state, State):
            raise ValueError(
                f"GraphState: expected a State object as the state, found "
                f"{type(_state).__name__}. Fix: use nnx.unpack(node) or "
                "nnx.GraphState(graphdef, nnx.State(mapping))."
            )
        object.__setattr__(self, "_graphdef", _graphdef)
        object.__setattr__(self, "_state", _state)

    @property
    def graphdef(self) -> GraphDef[A]:
        """The GraphDef this state belongs to."""
        return self._graphdef

    def __getattr__(self, name: str) -> tp.Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._state, name)

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name in ("_graphdef", "_state"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._state, name, value)

    def __getitem__(self, key: tp.Any) -> tp.Any:
        return self._state[key]

    def __setitem__(self, key: tp.Any, value: tp.Any) -> None:
        self._state[key] = value

    def __delitem__(self, key: tp.Any) -> None:
        del self._state[key]

    def __iter__(self) -> Iterator[tp.Any]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraphState):
            return NotImplemented
        return bool(self._graphdef == other._graphdef and self._state == other._state)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"GraphState(_graphdef={self._graphdef!r}, _state={self._state!r})"


def _flatten_with_keys(gs: GraphState[tp.Any]) -> tuple[list[tuple[tp.Any, tp.Any]], tp.Any]:
    # the same key paths as the State itself (no `_state` step), as in Flax
    state = gs._state
    keys = tuple(sorted_keys(state._mapping))
    children = [(jax.tree_util.DictKey(k), state._mapping[k]) for k in keys]
    return children, (gs._graphdef, type(state), keys)


def _flatten(gs: GraphState[tp.Any]) -> tuple[list[tp.Any], tp.Any]:
    state = gs._state
    keys = tuple(sorted_keys(state._mapping))
    return [state._mapping[k] for k in keys], (gs._graphdef, type(state), keys)


def _unflatten(aux: tp.Any, children: tp.Iterable[tp.Any]) -> GraphState[tp.Any]:
    graphdef, cls, keys = aux
    state = object.__new__(cls)
    object.__setattr__(state, "_mapping", dict(zip(keys, children)))
    return GraphState(graphdef, state)


jax.tree_util.register_pytree_with_keys(GraphState, _flatten_with_keys, _unflatten, _flatten)
