"""The graph API's compatibility and tree helpers: ``pure``/``unpack``, the
functional ``call``, ``to_tree``/``from_tree``, ``prefix``, the graph-mode switches
and ``UpdateContext``. All are built on ``split``/``merge``/``update``."""

from __future__ import annotations

import threading
import typing as tp
from collections.abc import Mapping

import jax

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._filters import All, Filter, to_predicate
from nnx_graph._graph import _pairs, find_duplicates, merge, split
from nnx_graph._graph_config import (
    graph_mode_default,
    graph_updates_default,
    set_graph_mode,
    set_graph_updates,
)
from nnx_graph._graph_contexts import (
    MergeContext,
    SplitContext,
    UpdateContext,
    current_update_context,
    merge_context,
    split_context,
    update_context,
)
from nnx_graph._graph_state import GraphState
from nnx_graph._graph_trees import NodeStates, from_tree, to_tree
from nnx_graph._records import GraphDef
from nnx_graph._state import State, from_flat_state, map_state, merge_state
from nnx_graph._variable_meta import convert_mode
from nnx_graph._variables import Variable

__all__ = [
    "MergeContext",
    "NodeStates",
    "SplitContext",
    "merge_context",
    "split_context",
    "merge",
    "merge_state",
    "UpdateContext",
    "as_pure",
    "call",
    "current_update_context",
    "from_tree",
    "graph_mode_default",
    "graph_updates_default",
    "prefix",
    "pure",
    "set_graph_mode",
    "set_graph_updates",
    "to_tree",
    "unpack",
    "update_context",
    "vars_as",
    "with_vars",
]

A = tp.TypeVar("A")


def pure(tree: A) -> A:
    """Replace every Variable in a pytree (e.g. a State) with its raw value.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.pure(nnx.State({"w": nnx.Param(jnp.zeros(2))}))
        >>> type(s["w"]).__name__
        'ArrayImpl'
    """
    return tp.cast(
        A,
        jax.tree.map(
            lambda x: x.get_value() if isinstance(x, Variable) else x,
            tree,
            is_leaf=lambda x: isinstance(x, Variable),
        ),
    )


as_pure = pure


def unpack(node: A, *filters: Filter, graph: bool | None = None) -> tp.Any:
    """Like :func:`split`, with the GraphDef bundled into each returned State: a
    :class:`GraphState` (a tuple of them for two or more filters) that
    ``nnx.merge`` takes alone.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> gs = nnx.unpack(M())
        >>> nnx.merge(gs).w.shape
        (2,)
    """
    gdef, *states = split(node, *filters, graph=graph)
    if len(states) == 1:
        return GraphState(gdef, states[0])
    return tuple(GraphState(gdef, s) for s in states)


_VAR_MODES = {"hijax": False, "ref": False, "mutable": True}


def vars_as(
    node: A,
    /,
    *,
    hijax: bool | None = None,
    ref: bool | None = None,
    mutable: bool | None = None,
    only: Filter = ...,
    allow_duplicates: bool = False,
) -> A:
    """A new graph like ``node`` whose Variables (those matching ``only``) are in
    the requested mode. Variables already in it are kept (the same objects).

    ``ref=True`` gives converted Variables (same type and metadata) whose value is
    held in a fresh ``jax.new_ref``, updated in place even under ``jax.jit``;
    ``ref=False`` reads such values back into plain arrays; ``hijax=True/False``
    likewise moves values into (and out of) a JAX hi-type box (see ``Variable``).
    The originals are not changed. ``mutable=False`` has no counterpart here and
    raises a ValueError naming the Variable. A Variable reachable along two paths
    would be converted once per path, so it raises too unless
    ``allow_duplicates=True``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> d = nnx.Dict(w=nnx.Param(jnp.ones(2)))
        >>> d2 = nnx.vars_as(d, hijax=False)
        >>> d2 is d, d2["w"] is d["w"]
        (False, True)
        >>> d3 = nnx.vars_as(d, ref=True)
        >>> d3["w"].ref, d["w"].ref
        (True, False)
    """
    requested = {
        k: v for k, v in (("hijax", hijax), ("ref", ref), ("mutable", mutable)) if v is not None
    }
    match = to_predicate(only)

    def differs(path: tp.Any, x: tp.Any) -> bool:
        return isinstance(x, Variable) and any(
            getattr(x, k, _VAR_MODES[k]) != v for k, v in requested.items()
        )

    def to_mode(path: tp.Any, x: tp.Any) -> tp.Any:
        if not (match(path, x) and differs(path, x)):
            return x
        return convert_mode(x, requested, format_path(path))

    if requested and not allow_duplicates:
        for paths in find_duplicates(node, only=All(differs, only)):
            shown = "\n  ".join(format_path(p) for p in paths)
            raise ValueError(
                f"nnx.vars_as: Found duplicate at paths:\n  {shown}\nA shared Variable "
                "would be converted once per path. Fix: pass allow_duplicates=True."
            )
    if isinstance(node, Variable):  # a Variable on its own (as Flax accepts)
        return tp.cast(A, to_mode((), node))
    if type(node) is State:  # (nested States are walked by path, not split as nodes)
        return tp.cast(A, map_state(to_mode, tp.cast(State, node)))
    gdef, st = split(node)
    return merge(gdef, map_state(to_mode, st))


with_vars = vars_as


# ----------------------------------------------------------------- functional call
class _CallableProxy:
    def __init__(
        self,
        graphdef: GraphDef[tp.Any],
        st: State,
        path: tuple[tuple[bool, tp.Any], ...] = (),
        graph: bool | None = None,
    ) -> None:
        # path: (is_item, key) steps from the root to the method
        self._graphdef, self._state, self._path, self._graph = graphdef, st, path, graph

    def __getattr__(self, name: str) -> _CallableProxy:
        return _CallableProxy(
            self._graphdef, self._state, (*self._path, (False, name)), self._graph
        )

    def __getitem__(self, key: tp.Any) -> _CallableProxy:
        return _CallableProxy(self._graphdef, self._state, (*self._path, (True, key)), self._graph)

    def __call__(
        self, *args: tp.Any, **kwargs: tp.Any
    ) -> tuple[tp.Any, tuple[GraphDef[tp.Any], State]]:
        node = merge(self._graphdef, self._state, copy=True)
        method = node
        for is_item, key in self._path:
            method = method[key] if is_item else getattr(method, key)
        out = method(*args, **kwargs)
        return out, split(node, graph=self._graph)


def call(graphdef_state: tuple[GraphDef[tp.Any], tp.Any], /) -> tp.Any:
    """Functional call: ``out, (graphdef, state) = nnx.call((graphdef, state)).method(x)``.
    The inputs are not modified; the new state is returned. Sub-objects are reached
    by attribute or by item (``nnx.call(split_dict)["key"].method(x)``).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        ...     def __call__(self):
        ...         self.n += 1
        ...         return self.n.value
        >>> out, (g, s) = nnx.call(nnx.split(Counter()))()
        >>> int(out), int(s["n"].value)
        (1, 1)
    """
    gdef, st = graphdef_state
    return _CallableProxy(gdef, st)


def call_with_graph(graphdef_state: tuple[GraphDef[tp.Any], tp.Any], graph: bool | None) -> tp.Any:
    """:func:`call` whose result is split with ``graph`` (``GraphDef.apply``)."""
    gdef, st = graphdef_state
    return _CallableProxy(gdef, st, (), graph)


def prefix(
    node: tp.Any,
    filter_map: Mapping[tp.Any, tp.Any] | tp.Callable[..., tp.Any],
    /,
    *,
    graph: bool | None = None,
) -> State:
    """A State with the same paths as ``nnx.state(node)`` whose leaves are the value
    of the first filter in ``filter_map`` matching each Variable (or, when
    ``filter_map`` is a function, ``filter_map(path, leaf)``): a convenient way to
    build per-Variable axes or shardings.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2)); self.s = nnx.BatchStat(jnp.zeros(2))
        >>> nnx.prefix(M(), {nnx.Param: 0, ...: None}).to_pure_dict()
        {'s': None, 'w': 0}

    A tuple or list of nodes gives a tuple or list of States, one per node, so
    ``px1, px2 = nnx.prefix((m1, m2), ...)`` unpacks as in Flax.
    """
    if type(node) in (tuple, list):
        parts = [prefix(n, filter_map, graph=graph) for n in node]
        return tp.cast(State, type(node)(parts))
    _, pairs = _pairs(node)
    if not isinstance(filter_map, Mapping):
        return from_flat_state([(path, filter_map(path, leaf)) for path, leaf in pairs])
    predicates = [(to_predicate(f), v) for f, v in filter_map.items()]
    out = []
    for path, leaf in pairs:
        for predicate, value in predicates:
            if predicate(path, leaf):
                out.append((path, value))
                break
        else:
            raise GraphStructureError(
                f"nnx.prefix: No filter matched leaf at path {format_path(path)} "
                f"({type(leaf).__name__}); the filters are {list(filter_map)}. Fix: add "
                "`...: default` as the last entry."
            )
    return from_flat_state(out)


# ----------------------------------------------------------------- compat switches
_MODE = threading.local()
