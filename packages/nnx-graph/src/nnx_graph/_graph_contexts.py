"""Split/merge contexts and update contexts, for hand-written transforms.

* ``with nnx.split_context() as ctx:`` — every ``ctx.split``/``ctx.flatten`` in the
  block shares one reference table: an object already split earlier in the block
  becomes a reference in later GraphDefs (and is not repeated in their States).
* ``with nnx.merge_context() as ctx:`` — ``ctx.merge``/``ctx.unflatten`` of those
  GraphDefs, in the same order, rebuild the objects with the sharing restored.
* ``with nnx.update_context(tag):`` plus ``split_context(tag)`` /
  ``merge_context(tag, inner=...)``: the four-step protocol of a transform. Outer
  split, inner merge (``inner=True``), inner split, outer merge (``inner=False``):
  the outer merge updates the original objects in place instead of creating new
  ones, so changes made inside (values, new attributes) reach the caller.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import typing as tp
from collections.abc import Iterator

from nnx_graph._filters import Filter
from nnx_graph._filters import split_pairs as _split_pairs
from nnx_graph._graph import merge as _plain_merge
from nnx_graph._graph import split as _plain_split
from nnx_graph._graph import update as _plain_update
from nnx_graph._graph_match import flat_lookup, match_leaves, mismatch_error
from nnx_graph._graphdef import GraphDef, Slot, build, flatten_graph
from nnx_graph._state import FlatState, from_flat_state
from nnx_graph._variables import Variable

__all__ = [
    "MergeContext",
    "SplitContext",
    "UpdateContext",
    "UpdateContextManager",
    "current_update_context",
    "merge_context",
    "split_context",
    "update_context",
]

A = tp.TypeVar("A")
F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])


class _Local(threading.local):
    def __init__(self) -> None:
        self.update_contexts: dict[tp.Hashable, list[UpdateContext]] = {}


_LOCAL = _Local()


class RefIndex:
    """The reference table of a split context: object -> node index."""

    __slots__ = ("ids", "nodes")

    def __init__(self) -> None:
        self.ids: dict[int, int] = {}
        self.nodes: list[tp.Any] = []

    def __contains__(self, obj: object) -> bool:
        return id(obj) in self.ids

    def __getitem__(self, obj: object) -> int:
        return self.ids[id(obj)]

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"RefIndex({len(self.ids)} objects)"


class SplitContext:
    """The object of ``with nnx.split_context() as ctx``: :meth:`split` and
    :meth:`flatten` share one reference table. See :func:`split_context`."""

    def __init__(self, ctxtag: tp.Hashable | None, ref_index: RefIndex, is_inner: bool | None):
        self.ctxtag, self.ref_index, self.is_inner = ctxtag, ref_index, is_inner

    def _flatten(self, node: tp.Any) -> tuple[GraphDef[tp.Any], list[tuple[tp.Any, tp.Any]]]:
        start = len(self.ref_index.nodes)
        flat = flatten_graph(node, ref_index=self.ref_index.ids, ref_nodes=self.ref_index.nodes)
        gdef = flat.graphdef
        uctx = current_update_context(self.ctxtag) if self.ctxtag is not None else None
        if uctx is not None and uctx.inner_ref_outer_index is not None:
            outer = uctx.inner_ref_outer_index
            gdef._outer = {
                i: outer[id(obj)]
                for i, obj in enumerate(flat.nodes[start:], start)
                if id(obj) in outer
            }
        pairs = [
            (p, v._raw_value if v.__class__ is Slot else v)
            for p, v in zip(gdef.leaf_paths, flat.leaves)
        ]
        return gdef, pairs

    def split(self, node: A, *filters: Filter) -> tuple[tp.Any, ...]:
        """Like :func:`nnx.split`, sharing references with earlier calls in this context."""
        gdef, pairs = self._flatten(node)
        if isinstance(node, Variable) and not filters:  # a bare Variable is its own state
            return gdef, (pairs[0][1] if pairs else from_flat_state([]))
        if not filters:
            return gdef, from_flat_state(pairs)
        return (gdef, *(from_flat_state(g) for g in _split_pairs(pairs, filters)))

    def flatten(self, node: A, *filters: Filter, with_paths: bool = True) -> tuple[tp.Any, ...]:
        """Like :func:`nnx.flatten` (FlatStates, one per filter; or the leaves list
        with ``with_paths=False``), sharing references with earlier calls."""
        if not with_paths and filters:
            raise ValueError(
                "SplitContext.flatten: Cannot use filters with with_paths=False. Fix: drop "
                "the filters or keep with_paths=True."
            )
        gdef, pairs = self._flatten(node)
        if not with_paths:
            return gdef, [v for _, v in pairs]
        if not filters:
            return gdef, FlatState(pairs, sort=False)
        return (gdef, *(FlatState(g, sort=False) for g in _split_pairs(pairs, filters)))

    def __repr__(self) -> str:
        return f"SplitContext(ctxtag={self.ctxtag!r}, is_inner={self.is_inner!r})"


class MergeContext:
    """The object of ``with nnx.merge_context() as ctx``: :meth:`merge` and
    :meth:`unflatten` resolve references to objects built earlier in the same
    context. See :func:`merge_context`."""

    def __init__(self, ctxtag: tp.Hashable | None, index_ref: list[tp.Any], is_inner: bool | None):
        self.ctxtag, self.index_ref, self.is_inner = ctxtag, index_ref, is_inner

    def _build(self, graphdef: GraphDef[tp.Any], leaves: list[tp.Any]) -> tp.Any:
        existing = None
        if self.ctxtag is not None and self.is_inner is False and graphdef._outer:
            outer = current_update_context(self.ctxtag).outer_index_outer_ref
            if outer is not None:
                existing = {i: outer[j] for i, j in graphdef._outer.items() if j < len(outer)}
        root, _ = build(
            graphdef, leaves, reuse_variables=True, existing=existing, nodes=self.index_ref
        )
        return root

    def merge(self, graphdef: GraphDef[A], state: tp.Any, /, *states: tp.Any) -> A:
        """Like :func:`nnx.merge` (Variables copied), resolving references to objects
        built earlier in this context."""
        return tp.cast(A, self._unflatten(graphdef, (state, *states), copy=True))

    def unflatten(self, graphdef: GraphDef[A], flat_state: tp.Any, /, *flat_states: tp.Any) -> A:
        """Like :func:`nnx.unflatten` (Variables reused): FlatStates or a leaves list."""
        if type(flat_state) is list:
            if flat_states:
                raise ValueError(
                    "MergeContext.unflatten: Cannot use multiple flat_states when flat_state "
                    f"is a list (found {len(flat_states)} more). Fix: pass one list."
                )
            if len(flat_state) != graphdef.num_leaves:
                raise ValueError(
                    f"MergeContext.unflatten: expected {graphdef.num_leaves} leaves for this "
                    f"GraphDef, found {len(flat_state)}. Fix: pass the leaves of ctx.flatten."
                )
            return tp.cast(A, self._build(graphdef, list(flat_state)))
        return tp.cast(A, self._unflatten(graphdef, (flat_state, *flat_states), copy=False))

    def _unflatten(
        self, graphdef: GraphDef[tp.Any], states: tuple[tp.Any, ...], copy: bool
    ) -> tp.Any:
        if isinstance(states[0], Variable) and len(states) == 1:
            leaves: list[tp.Any] = [states[0].copy() if copy else states[0]]
            return self._build(graphdef, leaves)
        flat = flat_lookup(states)
        leaves, missing, extra = match_leaves(graphdef.leaf_paths, flat)
        if missing or extra:
            raise mismatch_error("MergeContext.merge", missing, extra)
        if copy:
            leaves = [v.copy() if isinstance(v, Variable) else v for v in leaves]
        return self._build(graphdef, leaves)

    def __repr__(self) -> str:
        return f"MergeContext(ctxtag={self.ctxtag!r}, is_inner={self.is_inner!r})"


@contextlib.contextmanager
def split_context(ctxtag: tp.Hashable | None = None) -> Iterator[SplitContext]:
    """A block in which several ``ctx.split``/``ctx.flatten`` calls share references.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> shared = nnx.Param(jnp.zeros(2))
        >>> a, b = nnx.Dict(v=shared), nnx.Dict(v=shared, w=nnx.Param(jnp.ones(1)))
        >>> with nnx.split_context() as ctx:
        ...     ga, sa = ctx.split(a)
        ...     gb, sb = ctx.split(b)  # `shared` is a reference to a's Variable
        >>> list(sb)
        ['w']
        >>> with nnx.merge_context() as ctx:
        ...     a2, b2 = ctx.merge(ga, sa), ctx.merge(gb, sb)
        >>> a2["v"] is b2["v"]
        True
    """
    uctx = current_update_context(ctxtag) if ctxtag is not None else None
    is_inner = uctx.outer_ref_outer_index is not None if uctx is not None else None
    ctx = SplitContext(ctxtag, RefIndex(), is_inner)
    try:
        yield ctx
    finally:
        if ctxtag is not None:
            current_update_context(ctxtag).flatten_end(ctx.ref_index)


@contextlib.contextmanager
def merge_context(
    ctxtag: tp.Hashable | None = None, inner: bool | None = None
) -> Iterator[MergeContext]:
    """A block in which ``ctx.merge``/``ctx.unflatten`` rebuild the GraphDefs of one
    split context with their sharing. With an update context tag, ``inner`` says
    which side of the transform this merge is on (required). See
    :func:`split_context` for an example.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> with nnx.merge_context() as ctx:
        ...     d = ctx.merge(*nnx.split(nnx.Dict(w=nnx.Param(jnp.ones(1)))))
        >>> d["w"].shape
        (1,)
    """
    ctx = MergeContext(ctxtag, [], inner)
    try:
        yield ctx
    finally:
        if ctxtag is not None:
            if inner is None:
                raise ValueError(
                    "nnx.merge_context: inner_merge must be specified when using ctxtag "
                    f"({ctxtag!r}). Fix: pass inner=True inside the transform, inner=False "
                    "for the merge back outside."
                )
            current_update_context(ctxtag).unflatten_end(ctx.index_ref, inner)


class UpdateContext:
    """The state of one transform call under ``nnx.update_context(tag)``: the outer
    objects by index (from the outer split) and the inner objects' outer indices
    (from the inner merge), so that the outer merge updates the outer objects in
    place. Also has ``split``/``merge``/``update`` helpers of its own.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> c = nnx.Dict(n=nnx.Variable(jnp.array(0)))
        >>> with nnx.update_context("demo"):
        ...     with nnx.split_context("demo") as ctx:
        ...         g, s = ctx.split(c)
        ...     with nnx.merge_context("demo", inner=True) as ctx:
        ...         inner = ctx.merge(g, s)
        ...     inner["n"].value = jnp.array(5)
        ...     with nnx.split_context("demo") as ctx:
        ...         g, s = ctx.split(inner)
        ...     with nnx.merge_context("demo", inner=False) as ctx:
        ...         out = ctx.merge(g, s)
        >>> out is c, int(c["n"].value)
        (True, 5)
    """

    def __init__(
        self,
        tag: tp.Hashable,
        outer_ref_outer_index: tp.Any = None,
        outer_index_inner_ref: tp.Any = None,
        outer_index_outer_ref: tp.Any = None,
        inner_ref_outer_index: tp.Any = None,
        static_cache: tp.Any = None,
    ) -> None:
        self.tag = tag
        self.outer_ref_outer_index: RefIndex | None = outer_ref_outer_index
        self.outer_index_inner_ref: list[tp.Any] | None = outer_index_inner_ref
        self.outer_index_outer_ref: list[tp.Any] | None = outer_index_outer_ref
        self.inner_ref_outer_index: dict[int, int] | None = inner_ref_outer_index
        self.static_cache = static_cache

    def flatten_end(self, ref_index: RefIndex) -> None:
        """End of a split in this context: the first (outer) split records the
        outer objects; a later (inner) split clears the inner tables."""
        if self.outer_ref_outer_index is None:
            self.outer_ref_outer_index = ref_index
            self.outer_index_outer_ref = ref_index.nodes
        else:
            self.outer_index_inner_ref = None
            self.inner_ref_outer_index = None

    def unflatten_end(self, index_ref: list[tp.Any], inner_merge: bool) -> None:
        """End of a merge in this context: an inner merge records which inner
        object stands for which outer index."""
        if inner_merge:
            self.outer_index_inner_ref = index_ref
            self.inner_ref_outer_index = {
                id(obj): i for i, obj in enumerate(index_ref) if obj is not None
            }

    def split(self, node: tp.Any, *filters: tp.Any) -> tuple[tp.Any, ...]:
        """``nnx.split`` (kept for code using this object directly)."""
        return _plain_split(node, *filters)

    def merge(self, graphdef: GraphDef[tp.Any], state: tp.Any, *states: tp.Any) -> tp.Any:
        """``nnx.merge(..., copy=True)``."""
        return _plain_merge(graphdef, state, *states, copy=True)

    def update(self, node: tp.Any, state: tp.Any, *states: tp.Any) -> None:
        """``nnx.update``."""
        _plain_update(node, state, *states)

    def __enter__(self) -> UpdateContext:
        _LOCAL.update_contexts.setdefault(self.tag, []).append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _LOCAL.update_contexts[self.tag].pop()

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UpdateContext)

    def __repr__(self) -> str:
        return f"UpdateContext(tag={self.tag!r})"


class UpdateContextManager:
    """What :func:`update_context` returns: each ``with`` block (or call of a
    function it decorates) gets a fresh :class:`UpdateContext` for ``tag``."""

    def __init__(self, tag: tp.Hashable) -> None:
        self.tag = tag

    def __enter__(self) -> UpdateContext:
        ctx = UpdateContext(self.tag)
        _LOCAL.update_contexts.setdefault(self.tag, []).append(ctx)
        return ctx

    def __exit__(self, *exc: object) -> None:
        stack = _LOCAL.update_contexts.get(self.tag)
        if not stack:
            raise RuntimeError(f"No update context found for tag {self.tag!r}, this is a bug.")
        stack.pop()
        if not stack:
            del _LOCAL.update_contexts[self.tag]

    def __call__(self, f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            with self:
                return f(*args, **kwargs)

        return tp.cast(F, wrapper)

    def __repr__(self) -> str:
        return f"UpdateContextManager(tag={self.tag!r})"


def update_context(tag: tp.Hashable) -> UpdateContextManager:
    """A context manager (or decorator) opening a fresh :class:`UpdateContext`
    for ``tag``; see :class:`UpdateContext` for the protocol.

    Example::

        >>> import nnx_graph as nnx
        >>> with nnx.update_context("t") as ctx:
        ...     nnx.current_update_context("t") is ctx
        True
        >>> @nnx.update_context("t")
        ... def inside():
        ...     return nnx.current_update_context("t").tag
        >>> inside()
        't'
    """
    return UpdateContextManager(tag)


def current_update_context(tag: tp.Hashable) -> UpdateContext:
    """The innermost active :class:`UpdateContext` with this tag.

    Example::

        >>> import nnx_graph as nnx
        >>> with nnx.update_context("t"):
        ...     nnx.current_update_context("t").tag
        't'
    """
    stack = _LOCAL.update_contexts.get(tag)
    if not stack:
        raise ValueError(
            f"No update context found for tag {tag!r}: none with this tag is active. Fix: "
            f"call this inside `with nnx.update_context({tag!r}):`."
        )
    return stack[-1]
