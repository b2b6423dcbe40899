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

from nnx_graph import _state
from nnx_graph._state import *  # noqa: F403
from nnx_graph._state import State, from_flat_state, to_flat_state


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


__all__ = ["diff"]
__all__ += _state.__all__
