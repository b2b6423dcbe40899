"""State containers under Flax's module path (``flax.nnx.statelib``).

Every name here is the same object as ``nnx_graph.<name>``.

Example::

    >>> import jax.numpy as jnp
    >>> from nnx_graph import statelib
    >>> s = statelib.State({"a": {"b": jnp.ones(1)}})
    >>> [path for path, _ in statelib.to_flat_state(s)]
    [('a', 'b')]
"""

from __future__ import annotations

import typing as tp

from nnx_graph import _state
from nnx_graph._paths import Key, PathParts
from nnx_graph._state import *  # noqa: F403
from nnx_graph._state import State, from_flat_state, to_flat_state
from nnx_graph._variables import Variable
from nnx_graph.filterlib import PathIn

#: ``extract_fn`` of :func:`to_pure_dict`: a leaf to the value to store.
ExtractValueFn = tp.Callable[[tp.Any], tp.Any]
#: ``replace_fn`` of :func:`replace_by_pure_dict`: ``(old_leaf, value) -> new_leaf``.
SetValueFn = tp.Callable[[tp.Any, tp.Any], tp.Any]


def diff(state: State, other: State) -> State:
    """The entries of ``state`` whose paths ``other`` does not have.

    Example::

        >>> import jax.numpy as jnp
        >>> from nnx_graph.statelib import State, diff
        >>> new = State({"a": jnp.ones(1), "b": {"c": jnp.zeros(2)}})
        >>> list(diff(new, State({"a": jnp.ones(1)})).keys())
        ['b']
    """
    if not other:
        return state
    seen = {path for path, _ in to_flat_state(other)}
    return from_flat_state({path: v for path, v in to_flat_state(state) if path not in seen})


def create_path_filters(state: State) -> dict[PathIn, tp.Any]:
    """Group the paths of ``state`` by leaf value: ``{PathIn(*paths): value}``, one
    entry per distinct (hashable) value, Variables contributing their value.

    Useful to build a filter-keyed mapping (e.g. for ``nnx.StateAxes`` or sharding)
    from a State whose leaves are the per-path settings.

    Example::

        >>> import nnx_graph
        >>> from nnx_graph.statelib import create_path_filters
        >>> axes = nnx_graph.State({"a": 0, "b": 0, "c": None})
        >>> for f, value in create_path_filters(axes).items():
        ...     print(sorted(f.paths), value)
        [('a',), ('b',)] 0
        [('c',)] None
    """
    paths_by_value: dict[tp.Any, list[tuple[tp.Any, ...]]] = {}
    for path, leaf in to_flat_state(state):
        value = leaf.get_value() if isinstance(leaf, Variable) else leaf
        paths_by_value.setdefault(value, []).append(path)
    return {PathIn(*paths): value for value, paths in paths_by_value.items()}


__all__ = ["ExtractValueFn", "Key", "PathParts", "SetValueFn", "create_path_filters", "diff"]
__all__ += _state.__all__
