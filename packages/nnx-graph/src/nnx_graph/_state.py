"""State: a nested mapping from path parts (``str | int``) to Variables or arrays.

``nnx.split`` and ``nnx.state`` return States; they are JAX pytrees (keys in sorted
order), so they pass through ``jax.jit``, ``jax.tree.map`` and optax unchanged.
"""

from __future__ import annotations

import functools
import typing as tp
from collections.abc import Iterator, Mapping, MutableMapping, Sequence

import jax

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._filters import split_pairs as _split_pairs
from nnx_graph._paths import Key, PathParts, _sort_key, restore_int_paths, sorted_keys
from nnx_graph._state_pure import _iter_flat, replace_by_pure_dict, state_repr, to_pure_dict
from nnx_graph._variables import Variable

__all__ = [
    "FlatState",
    "State",
    "filter_state",
    "from_flat_state",
    "map_state",
    "merge_state",
    "replace_by_pure_dict",
    "restore_int_paths",
    "split_state",
    "to_flat_state",
    "to_pure_dict",
]


class FlatState(Sequence[tuple[PathParts, tp.Any]]):
    """A flat, path-sorted sequence of ``(path, leaf)`` pairs.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.State({"a": {"b": nnx.Param(jnp.ones(1))}})
        >>> s.flat_state().paths
        (('a', 'b'),)
    """

    __slots__ = ("_paths", "_leaves")

    _paths: tuple[PathParts, ...]
    _leaves: list[tp.Any]

    def __init__(
        self, items: tp.Iterable[tuple[PathParts, tp.Any]], /, *, sort: bool = True
    ) -> None:
        pairs = list(items)
        if sort:
            pairs.sort(key=lambda kv: tuple(_sort_key(k) for k in kv[0]))
        self._paths = tuple(p for p, _ in pairs)
        self._leaves = [v for _, v in pairs]

    @staticmethod
    def from_sorted_keys_values(keys: tuple[PathParts, ...], values: list[tp.Any], /) -> FlatState:
        """A FlatState over already sorted ``keys`` and their ``values``, taken as they
        are (not copied, not re-sorted).

        Example::

            >>> from nnx_graph.statelib import FlatState
            >>> flat = FlatState.from_sorted_keys_values((("a",), ("b",)), [1, 2])
            >>> flat.paths, flat.leaves
            ((('a',), ('b',)), [1, 2])
        """
        flat = object.__new__(FlatState)
        flat._paths = keys
        flat._leaves = values
        return flat

    @staticmethod
    def merge(
        flat_state: tp.Iterable[tuple[PathParts, tp.Any]],
        /,
        *flat_states: tp.Iterable[tuple[PathParts, tp.Any]],
    ) -> FlatState:
        """Concatenate ``(path, leaf)`` sequences into one path-sorted FlatState.

        Pairs are kept as they are: a path present in several inputs appears several
        times (in input order). A single FlatState is returned unchanged.

        Example::

            >>> from nnx_graph.statelib import FlatState
            >>> FlatState.merge([(("z",), 1)], [(("a",), 2)]).paths
            (('a',), ('z',))
        """
        if not flat_states:
            if isinstance(flat_state, FlatState):
                return flat_state
            return FlatState(flat_state, sort=True)
        return FlatState((pair for flat in (flat_state, *flat_states) for pair in flat), sort=True)

    @property
    def paths(self) -> tuple[PathParts, ...]:
        return self._paths

    @property
    def leaves(self) -> list[tp.Any]:
        return self._leaves

    def __getitem__(self, index: tp.Any) -> tp.Any:
        """``flat[i]`` is the pair ``(path, leaf)``; a slice gives a FlatState."""
        if isinstance(index, slice):
            return FlatState(zip(self._paths[index], self._leaves[index]), sort=False)
        return (self._paths[index], self._leaves[index])

    def __len__(self) -> int:
        return len(self._paths)

    def __iter__(self) -> Iterator[tuple[PathParts, tp.Any]]:
        return iter(zip(self._paths, self._leaves))

    def __repr__(self) -> str:
        return f"FlatState({list(zip(self._paths, self._leaves))!r})"

    def to_nested_state(self) -> State:
        """The nested :class:`State` with these leaves."""
        return from_flat_state(self)

    def filter(self, first: tp.Any, /, *filters: tp.Any) -> tp.Any:
        """Keep the leaves matching ``first`` (one FlatState per filter given; with
        several, each leaf goes to the first filter it matches).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> s = nnx.State({"w": nnx.Param(jnp.ones(1)), "m": nnx.BatchStat(jnp.ones(1))})
            >>> s.flat_state().filter(nnx.BatchStat).paths
            (('m',),)
        """
        groups = _split_pairs(list(self), (first, *filters), exhaustive=False)
        flats = tuple(FlatState(group, sort=False) for group in groups)
        return flats[0] if len(flats) == 1 else flats

    def split(self, first: tp.Any, /, *filters: tp.Any) -> tp.Any:
        """Partition the leaves by filters (each goes to the first filter it matches;
        every leaf must match one, so end with ``...``). One filter gives one
        FlatState, several give a tuple.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> s = nnx.State({"w": nnx.Param(jnp.ones(1)), "m": nnx.BatchStat(jnp.ones(1))})
            >>> params, rest = s.flat_state().split(nnx.Param, ...)
            >>> params.paths, rest.paths
            ((('w',),), (('m',),))
        """
        groups = _split_pairs(list(self), (first, *filters))
        flats = tuple(FlatState(group, sort=False) for group in groups)
        return flats[0] if len(flats) == 1 else flats


def _flat_state_flatten(flat: FlatState) -> tuple[list[tp.Any], tuple[PathParts, ...]]:
    return flat._leaves, flat._paths


def _flat_state_unflatten(paths: tuple[PathParts, ...], leaves: tp.Iterable[tp.Any]) -> FlatState:
    return FlatState.from_sorted_keys_values(paths, list(leaves))


jax.tree_util.register_pytree_node(FlatState, _flat_state_flatten, _flat_state_unflatten)


class State(MutableMapping[Key, tp.Any]):
    """A nested mapping of path parts to Variables (or plain arrays).

    Access entries by key or attribute (``state['linear']['kernel']`` or
    ``state.linear.kernel``). States are pytrees.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> state = nnx.State({"layers": {0: {"w": nnx.Param(jnp.ones(2))}}})
        >>> state.layers[0].w.shape
        (2,)
        >>> state.to_pure_dict()["layers"][0]["w"].tolist()
        [1.0, 1.0]
    """

    __slots__ = ("_mapping",)

    def __init__(
        self,
        mapping: Mapping[Key, tp.Any] | tp.Iterable[tuple[Key, tp.Any]] = (),
        /,
        *,
        _copy: bool = True,
    ) -> None:
        if not _copy:
            # wrap ``mapping`` itself: later changes through the State show in the dict
            if not isinstance(mapping, dict):
                raise ValueError(
                    f"Expected a dictionary when `_copy=False`, got {type(mapping)} instead. "
                    "Fix: pass a plain dict, or leave _copy at its default (True)."
                )
            object.__setattr__(self, "_mapping", mapping)
            return
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        data: dict[Key, tp.Any] = {}
        for key, value in items:
            if isinstance(value, Mapping) and not isinstance(value, State):
                value = State(value)
            data[key] = value
        object.__setattr__(self, "_mapping", data)

    def __init_subclass__(cls, **kwargs: tp.Any) -> None:
        super().__init_subclass__(**kwargs)
        # subclasses are pytrees too, and unflatten to their own class
        jax.tree_util.register_pytree_with_keys(
            cls,
            _state_flatten_with_keys,
            functools.partial(_state_unflatten_as, cls),
            _state_flatten,
        )

    # --------------------------------------------------------------- mapping
    @property
    def raw_mapping(self) -> dict[Key, tp.Any]:
        mapping: dict[Key, tp.Any] = self._mapping
        return mapping

    def __getitem__(self, key: Key) -> tp.Any:
        value = self._mapping[key]
        if type(value) is dict:  # a nested plain dict of a `_copy=False` State: a view
            return type(self)(value, _copy=False)
        return value

    def __setitem__(self, key: Key, value: tp.Any) -> None:
        if isinstance(value, Mapping) and not isinstance(value, State):
            value = State(value)
        self._mapping[key] = value

    def __delitem__(self, key: Key) -> None:
        del self._mapping[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._mapping)

    def __len__(self) -> int:
        return len(self._mapping)

    def __getattr__(self, name: str) -> tp.Any:
        if name.startswith("__") or name == "_mapping":  # _mapping: not yet set (unpickling)
            raise AttributeError(name)
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(
                f"No attribute {name!r} in State: expected one of its keys "
                f"{list(self._mapping)}. Fix: check the spelling, or take the State from the "
                "object that has it."
            ) from None

    def __setattr__(self, name: str, value: tp.Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self._mapping) == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[tp.Any, ...]:
        # copy/deepcopy/pickle rebuild from the mapping (sharing is kept by deepcopy's memo)
        return (type(self), (self._mapping,))

    def __or__(self, other: State) -> State:
        return merge_state(self, other)

    def __sub__(self, other: Mapping[Key, tp.Any]) -> State:
        """The entries whose path is not in ``other``: ``state - params``."""
        drop = set(flat_dict(other))
        return from_flat_state([(p, v) for p, v in to_flat_state(self) if p not in drop])

    def map(self, f: tp.Callable[[PathParts, tp.Any], tp.Any]) -> State:
        """A new State with ``f(path, leaf)`` for every leaf (see :func:`map_state`).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> s = nnx.State({"w": jnp.ones(1)}).map(lambda path, x: x * 3)
            >>> s["w"].tolist()
            [3.0]
        """
        return map_state(f, self)

    def __repr__(self) -> str:
        return state_repr(self)

    # --------------------------------------------------------------- flat
    def flat_state(self) -> FlatState:
        """The leaves with their paths, sorted by path."""
        return to_flat_state(self)

    @classmethod
    def from_flat_path(
        cls, flat_state: tp.Iterable[tuple[PathParts, tp.Any]] | Mapping[PathParts, tp.Any], /
    ) -> State:
        """Build a nested State (of this class) from ``(path, leaf)`` pairs or a
        ``{path: leaf}`` mapping.

        Example::

            >>> import nnx_graph as nnx
            >>> nnx.State.from_flat_path({("x", 0): 1, ("x", 1): 2})["x"][1]
            2
        """
        return from_flat_state(flat_state, cls=cls)

    # --------------------------------------------------------------- filters
    def filter(self, first: tp.Any, /, *filters: tp.Any) -> tp.Any:
        """Keep only leaves matching the filters (one State per filter).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> s = nnx.State({"w": nnx.Param(jnp.ones(1)), "m": nnx.BatchStat(jnp.ones(1))})
            >>> list(s.filter(nnx.Param))
            ['w']
        """
        return filter_state(self, first, *filters)

    def split(self, first: tp.Any, /, *filters: tp.Any) -> tp.Any:
        """Partition leaves by filters; every leaf must match one (use ``...`` last)."""
        return split_state(self, first, *filters)

    @classmethod
    def merge(cls, state: Mapping[Key, tp.Any], /, *states: Mapping[Key, tp.Any]) -> State:
        """Merge States (or nested mappings) into one State; later ones win on equal
        paths.

        Example::

            >>> import nnx_graph as nnx
            >>> nnx.State.merge({"a": 1}, {"b": {"c": 2}, "a": 3}).to_pure_dict()
            {'a': 3, 'b': {'c': 2}}
        """
        return merge_state(state, *states)

    # --------------------------------------------------------------- pure dicts
    def to_pure_dict(
        self, extract_fn: tp.Callable[[tp.Any], tp.Any] | None = None
    ) -> dict[Key, tp.Any]:
        """Nested plain dicts with the raw values (integer keys kept as ints); see
        :func:`to_pure_dict`."""
        return to_pure_dict(self, extract_fn)

    def replace_by_pure_dict(
        self,
        pure_dict: Mapping[tp.Any, tp.Any],
        replace_fn: tp.Callable[[tp.Any, tp.Any], tp.Any] | None = None,
        *,
        allow_missing: bool = True,
    ) -> None:
        """Replace the leaves with the values of a pure dict (e.g. a loaded
        checkpoint); see :func:`replace_by_pure_dict`."""
        replace_by_pure_dict(self, pure_dict, replace_fn, allow_missing=allow_missing)


# ----------------------------------------------------------------- pytree
def _state_flatten_with_keys(state: State) -> tuple[list[tuple[tp.Any, tp.Any]], tuple[Key, ...]]:
    keys = tuple(sorted_keys(state._mapping))
    return [(jax.tree_util.DictKey(k), state._mapping[k]) for k in keys], keys


def _state_flatten(state: State) -> tuple[list[tp.Any], tuple[Key, ...]]:
    keys = tuple(sorted_keys(state._mapping))
    return [state._mapping[k] for k in keys], keys


def _state_unflatten(keys: tuple[Key, ...], children: tp.Iterable[tp.Any]) -> State:
    new = object.__new__(State)
    object.__setattr__(new, "_mapping", dict(zip(keys, children)))
    return new


def _state_unflatten_as(
    cls: type[State], keys: tuple[Key, ...], children: tp.Iterable[tp.Any]
) -> State:
    new = object.__new__(cls)
    object.__setattr__(new, "_mapping", dict(zip(keys, children)))
    return new


jax.tree_util.register_pytree_with_keys(
    State, _state_flatten_with_keys, _state_unflatten, _state_flatten
)


# ----------------------------------------------------------------- functions
def to_flat_state(state: Mapping[Key, tp.Any]) -> FlatState:
    """Flatten a (nested) State into a path-sorted :class:`FlatState`.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.to_flat_state(nnx.State({"a": jnp.ones(1)})).paths
        (('a',),)
    """
    return FlatState(_iter_flat(state, ()), sort=False)


_set_mapping = tp.cast(tp.Any, State.__dict__["_mapping"]).__set__


def from_flat_state(
    flat_state: tp.Iterable[tuple[PathParts, tp.Any]] | Mapping[PathParts, tp.Any],
    *,
    cls: type[State] = State,
) -> State:
    """Build a nested State from ``(path, leaf)`` pairs.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.from_flat_state([(("a", 0), jnp.ones(1))])
        >>> s["a"][0].shape
        (1,)
    """
    items = flat_state.items() if isinstance(flat_state, Mapping) else flat_state
    root: dict[Key, tp.Any] = {}
    new = object.__new__
    # Paths usually arrive in traversal order: keep the mappings along the previous
    # leaf's parent path and start from the longest prefix shared with it, so deep
    # graphs cost one step per new key instead of one per key of every path.
    prev: PathParts = ()
    chain: list[dict[Key, tp.Any]] = [root]
    for path, value in items:
        parent_path = path[:-1]
        if parent_path != prev:
            n, m = len(prev), len(parent_path)
            if m >= n and parent_path[:n] == prev:
                k = n
            elif m < n and prev[:m] == parent_path:
                k = m
            elif m == n and parent_path[:-1] == prev[:-1]:
                k = m - 1  # a sibling of the previous parent
            else:
                k, limit = 0, min(n, m)
                while k < limit and parent_path[k] == prev[k]:
                    k += 1
            del chain[k + 1 :]
            node = chain[k]
            for depth in range(k, len(parent_path)):
                key = parent_path[depth]
                child = node.get(key)
                if child is None:
                    child = new(State)
                    _set_mapping(child, {})
                    node[key] = child
                elif not isinstance(child, State):
                    raise GraphStructureError(
                        f"{format_path(path, 'state')}: expected "
                        f"{format_path(path[: depth + 1], 'state')} to be a nested State, "
                        f"found a leaf ({type(child).__name__}) there as well. Fix: do not "
                        "mix States of different structures (a path cannot be both a leaf "
                        "and a prefix)."
                    )
                node = child._mapping
                chain.append(node)
            prev = parent_path
        if path:
            if (
                not isinstance(value, Variable)
                and isinstance(value, Mapping)
                and not isinstance(value, State)
            ):
                value = State(value)
            chain[-1][path[-1]] = value
    out = new(cls)
    _set_mapping(out, root)
    return out


def flat_dict(state: Mapping[Key, tp.Any]) -> dict[PathParts, tp.Any]:
    """``{path: leaf}`` for every leaf of a nested State, unsorted, iteratively."""
    out: dict[PathParts, tp.Any] = {}
    stack: list[tuple[PathParts, Mapping[Key, tp.Any]]] = [((), state)]
    while stack:
        prefix, mapping = stack.pop()
        if isinstance(mapping, State):
            mapping = mapping._mapping
        for key, value in mapping.items():
            if value.__class__ is State:
                if value._mapping:
                    stack.append(((*prefix, key), value._mapping))
            elif isinstance(value, Variable) or not isinstance(value, Mapping):
                out[(*prefix, key)] = value
            elif value:
                stack.append(((*prefix, key), value))
    return out


def filter_state(state: Mapping[Key, tp.Any], first: tp.Any, /, *filters: tp.Any) -> tp.Any:
    """Keep the leaves matching the filters; one State per filter given. As in
    :func:`split_state`, each leaf goes to the first filter it matches (the States
    are disjoint), but leaves matching no filter are simply left out.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.State({"w": nnx.Param(jnp.ones(1)), "m": nnx.BatchStat(jnp.ones(1))})
        >>> list(nnx.filter_state(s, nnx.BatchStat))
        ['m']
    """
    groups = _split_pairs(list(to_flat_state(state)), (first, *filters), exhaustive=False)
    states = tuple(from_flat_state(g) for g in groups)
    return states[0] if len(states) == 1 else states


def split_state(state: Mapping[Key, tp.Any], first: tp.Any, /, *filters: tp.Any) -> tp.Any:
    """Partition a State by filters (first match wins; every leaf must match).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.State({"w": nnx.Param(jnp.ones(1)), "m": nnx.BatchStat(jnp.ones(1))})
        >>> params, rest = nnx.split_state(s, nnx.Param, ...)
        >>> list(params), list(rest)
        (['w'], ['m'])
    """
    groups = _split_pairs(list(to_flat_state(state)), (first, *filters))
    states = tuple(from_flat_state(g) for g in groups)
    return states[0] if len(states) == 1 else states


def merge_state(
    state: Mapping[Key, tp.Any], /, *states: Mapping[Key, tp.Any], cls: type[State] = State
) -> State:
    """Merge States; later ones win where paths coincide.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> a = nnx.State({"w": jnp.ones(1)}); b = nnx.State({"m": jnp.ones(1)})
        >>> sorted(nnx.merge_state(a, b))
        ['m', 'w']
    """
    merged: dict[PathParts, tp.Any] = {}
    for s in (state, *states):
        for path, value in to_flat_state(s):
            merged[path] = value
    return from_flat_state(merged, cls=cls)


def map_state(f: tp.Callable[[PathParts, tp.Any], tp.Any], state: Mapping[Key, tp.Any]) -> State:
    """Apply ``f(path, leaf)`` to every leaf and return a new State.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.map_state(lambda p, v: v * 2, nnx.State({"w": jnp.ones(1)}))
        >>> s["w"].tolist()
        [2.0]
    """
    return from_flat_state([(p, f(p, v)) for p, v in to_flat_state(state)])
