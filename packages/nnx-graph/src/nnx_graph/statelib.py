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

from nnx_graph import (
    FlatState,
    State,
    filter_state,
    from_flat_state,
    map_state,
    merge_state,
    replace_by_pure_dict,
    restore_int_paths,
    split_state,
    to_flat_state,
    to_pure_dict,
)

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
