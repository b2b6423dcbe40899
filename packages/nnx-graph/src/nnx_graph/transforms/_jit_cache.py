"""The per-root cache of ``nnx.jit``: what one traversal of a call's graph nodes
yields, kept until the structural epoch moves, without keeping the objects alive.

* :class:`Entry`: per tuple of root objects, the GraphDef (in a detached
  :class:`Bridge`), the ordered leaves to read and write, the compiled function and
  the argument layout. Roots are held weakly: a dead root evicts its entry. It is
  valid while the structural epoch stands, no mutable static value changed in place
  and the nodes' fingerprint (attributes replaced behind ``__setattr__``) matches.
* :class:`Compiled`: per (GraphDef, layout), the ``jax.jit`` of the inner function.
* :class:`Cache`: both maps, bounded (least recently created entries go first).
* :func:`root_locks`: the locks that serialise calls on the same root objects
  (re-entrant, one per root object, taken in a fixed order).
"""

from __future__ import annotations

import threading
import typing as tp
import weakref

from nnx_graph import _epoch
from nnx_graph._graphdef import (
    GraphDef,
    Slot,
    StaticDef,
    VariableDef,
    fingerprint,
    walk,
)
from nnx_graph._hashing import Frozen, hashable
from nnx_graph._variables import Variable
from nnx_graph.transforms._bridge import Bridge
from nnx_graph.transforms._shardings import place_leaves

__all__ = ["Cache", "Compiled", "Entry", "WeakSlot", "lock_pair", "root_guard", "root_locks"]

_EPOCH = _epoch.EPOCH
MAX_ENTRIES = 16


class Compiled:
    """A ``jax.jit``-compiled inner function for one structure and argument layout.
    ``kept_index``/``donated_index`` split the leaves into the two value lists.
    ``plain``: it takes just ``(values, dyn)`` (nothing donated, no static
    arguments), which keeps JAX's dispatch of the common call as cheap as possible;
    otherwise ``(values, dyn, donated_values, donated_dyn, statics)``.
    ``leaf_shardings``: the ``in_shardings`` entry of every leaf (empty without
    ``in_shardings``)."""

    __slots__ = ("jitted", "kept_index", "donated_index", "plain", "leaf_shardings")

    def __init__(
        self,
        jitted: tp.Callable[..., tp.Any],
        kept_index: tuple[int, ...],
        donated_index: tuple[int, ...],
        plain: bool = False,
        leaf_shardings: tuple[tp.Any, ...] = (),
    ) -> None:
        self.jitted = jitted
        self.kept_index = kept_index
        self.donated_index = donated_index
        self.plain = plain
        self.leaf_shardings = leaf_shardings


class WeakSlot(Slot):
    """A Slot (array attribute) that holds its owner weakly, so a cache entry does
    not keep the object alive; valid while the entry is (its roots are alive)."""

    __slots__ = ("_owner_ref",)

    def __init__(self, slot: Slot) -> None:
        self._owner_ref = weakref.ref(slot.owner)
        self.key = slot.key
        self.subpath = slot.subpath

    @property
    def owner(self) -> tp.Any:
        return self._owner_ref()


class Entry:
    """What one traversal of the call's graph nodes yields, valid until the
    structural epoch moves (or a mutable static value changes in place)."""

    __slots__ = (
        "epoch",
        "key",
        "refs",
        "bridge",
        "leaves",
        "donated_leaves",
        "all_leaves",
        "compiled",
        "layout",
        "all_variables",
        "mutable_statics",
        "matches",
        "lock",
        "lock2",
        "node_positions",
    )

    def __init__(
        self,
        key: tp.Any,
        nodes: tp.Sequence[tp.Any],
        bridge: Bridge,
        compiled: Compiled,
        layout: tp.Any,
        evict: tp.Callable[[weakref.ref[tp.Any]], None] | None,
    ) -> None:
        self.epoch = _EPOCH[0]
        self.key = key
        if compiled.leaf_shardings:  # in_shardings also place the caller's arrays
            place_leaves(bridge.leaves, compiled.leaf_shardings)
        # weak: the cache must not keep the caller's objects alive (a dead root
        # evicts its entry, releasing the Variables below)
        self.refs = tuple(weakref.ref(n, evict) for n in nodes)
        leaves = [WeakSlot(leaf) if isinstance(leaf, Slot) else leaf for leaf in bridge.leaves]
        self.bridge = Bridge.detached(bridge.graphdef, leaves)
        self.all_leaves = leaves
        self.leaves = [leaves[i] for i in compiled.kept_index]
        self.donated_leaves = [leaves[i] for i in compiled.donated_index]
        self.compiled = compiled
        self.layout = layout
        self.all_variables = all(isinstance(leaf, Variable) for leaf in leaves)
        self.mutable_statics = mutable_statics(bridge.graphdef)
        # attributes replaced behind __setattr__'s back (vars(m)[k] = v ...) do not
        # move the epoch: the fingerprint of the traversed nodes catches them
        self.matches = fingerprint(bridge.nodes).matches
        # taken as lock then lock2, released in the reverse order (see lock_pair)
        self.lock, self.lock2 = lock_pair(root_locks(nodes))
        # graph layout: where the roots sit among the arguments (see valid_args)
        self.node_positions: tuple[int, ...] | None = getattr(layout, "node_positions", None)

    def valid(self, nodes: tp.Sequence[tp.Any]) -> bool:
        """Still describes ``nodes``: same epoch, same (live) objects, and no mutable
        static value changed in place."""
        if self.epoch != _EPOCH[0]:
            return False
        # a plain loop: cheaper than all(<generator>) on the per-call path
        for ref, node in zip(self.refs, nodes):
            if ref() is not node:
                return False
        if self.mutable_statics and statics_changed(self.mutable_statics):
            return False
        return self.matches()

    def valid_args(self, args: tp.Sequence[tp.Any]) -> bool:
        """:meth:`valid` for a graph-layout call, reading the roots straight from
        the positional arguments (no list of nodes built per call)."""
        if self.node_positions is None:
            return self.valid(self.layout.nodes(args, None))
        if self.epoch != _EPOCH[0]:
            return False
        for ref, i in zip(self.refs, self.node_positions):
            if ref() is not args[i]:
                return False
        if self.mutable_statics and statics_changed(self.mutable_statics):
            return False
        return self.matches()


class Cache:
    """Entries per root tuple and compiled functions per (GraphDef, layout)."""

    __slots__ = ("entries", "compiled", "lock", "__weakref__")

    def __init__(self) -> None:
        self.entries: dict[tp.Any, Entry] = {}
        self.compiled: dict[tp.Any, Compiled] = {}
        self.lock = threading.Lock()

    def evicter(self, key: tp.Any) -> tp.Callable[[weakref.ref[tp.Any]], None]:
        """The weak-reference callback for an entry's roots: drop the entry."""
        owner = weakref.ref(self)

        def evict(dead: weakref.ref[tp.Any]) -> None:
            cache = owner()
            if cache is None:
                return
            with cache.lock:
                entry = cache.entries.get(key)
                if entry is not None and any(ref is dead for ref in entry.refs):
                    del cache.entries[key]

        return evict

    def put(self, entry: Entry) -> None:
        with self.lock:
            if len(self.entries) >= MAX_ENTRIES and entry.key not in self.entries:
                self.entries.pop(next(iter(self.entries)))
            self.entries[entry.key] = entry

    def drop(self, entry: Entry) -> None:
        with self.lock:
            if self.entries.get(entry.key) is entry:
                del self.entries[entry.key]


# ---------------------------------------------------------------- mutable statics
def mutable_statics(graphdef: GraphDef[tp.Any]) -> tuple[Frozen, ...]:
    """Static values that can change in place without any structural mutation
    (lists, dicts, sets, or tuples holding them, stored as static attributes or
    Variable metadata): the epoch cannot see ``model.config["rate"] = 0.5``, so
    calls compare these against their snapshot. Usually there are none."""
    found: list[Frozen] = []
    for visit in walk(graphdef, paths=False):
        record = visit.record
        if isinstance(record, StaticDef):
            frozen = record.value
            if frozen._key is not frozen.value:  # needed a hashable view: mutable
                found.append(frozen)
        elif isinstance(record, VariableDef):
            found.extend(Frozen(x) for x in record.metadata.value.values() if hashable(x) is not x)
    return tuple(found)


def statics_changed(statics: tp.Sequence[Frozen]) -> bool:
    return any(hashable(frozen.value) != frozen._key for frozen in statics)


# ---------------------------------------------------------------- per-root locks
# One re-entrant lock per live root object (by id; a finalizer drops it with the
# object). Re-entrant so that a function closing over a root may call another
# nnx.jit on it while tracing.
_ROOT_LOCKS: dict[int, threading.RLock] = {}
_REGISTRY_LOCK = threading.Lock()


def _lock_for(obj: tp.Any) -> threading.RLock:
    key = id(obj)
    with _REGISTRY_LOCK:
        lock = _ROOT_LOCKS.get(key)
        if lock is None:
            lock = _ROOT_LOCKS[key] = threading.RLock()
            weakref.finalize(obj, _ROOT_LOCKS.pop, key, None)
        return lock


class _Locks:
    """Several root locks taken in a fixed (id) order, so two calls on overlapping
    roots cannot deadlock."""

    __slots__ = ("locks",)

    def __init__(self, locks: tuple[threading.RLock, ...]) -> None:
        self.locks = locks

    def acquire(self) -> bool:
        for lock in self.locks:
            lock.acquire()
        return True

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def root_locks(nodes: tp.Sequence[tp.Any]) -> tuple[threading.RLock, ...]:
    """The locks serialising calls on ``nodes``, in the (id) order to take them:
    reading their values, dispatching and writing the results back happen as one
    step, so concurrent calls on the same objects neither lose updates nor
    interleave. Uncontended, taking one costs one C call."""
    unique = {id(n): n for n in nodes}
    return tuple(_lock_for(unique[k]) for k in sorted(unique))


class _Lockable(tp.Protocol):
    def acquire(self) -> bool: ...  # pragma: no cover
    def release(self) -> None: ...  # pragma: no cover


class _NoLock:
    __slots__ = ()

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


_NO_LOCK = _NoLock()


def lock_pair(locks: tuple[threading.RLock, ...]) -> tuple[_Lockable, _Lockable]:
    """The root locks as exactly two (taken first then second), so the call path
    takes them with two plain C calls, without a loop or a context manager: one
    root's re-entrant lock is taken twice; more than two roots share the first of
    the pair (a Python-level group); no roots, nothing to serialise."""
    if not locks:
        return _NO_LOCK, _NO_LOCK
    if len(locks) == 1:
        return locks[0], locks[0]
    if len(locks) == 2:
        return locks[0], locks[1]
    return _Locks(locks[:-1]), locks[-1]


def root_guard(nodes: tp.Sequence[tp.Any]) -> tp.ContextManager[tp.Any]:
    """:func:`root_locks` as one context manager."""
    locks = root_locks(nodes)
    if len(locks) == 1:
        return locks[0]
    return _Locks(locks)
