"""The structural epoch: one counter that every structural mutation bumps.

Transforms cache, per root object, what a graph traversal yields (the GraphDef and
the ordered Variables).  A cached traversal stays valid as long as no object that
was part of it changed *structurally*: an attribute set or deleted on a graph node,
a container mutated, Variable metadata changed.  Setting a Variable's value is not
structural and does not bump the epoch.

Objects are only "observed" once a cached traversal has visited them; mutating an
object that no cache has seen cannot make a cache stale, so it does not bump.  This
keeps object construction (which sets many attributes) from invalidating caches.
"""

from __future__ import annotations

import itertools

__all__ = ["bump", "current"]

_counter = itertools.count(1)
# A one-element list so readers see the newest value without a function call.
EPOCH: list[int] = [0]


def bump() -> None:
    """Record that the structure of some observed object changed."""
    # next() on itertools.count is atomic under the GIL, so concurrent bumps
    # never produce the same number twice.
    EPOCH[0] = next(_counter)


def current() -> int:
    """The current epoch value."""
    return EPOCH[0]
