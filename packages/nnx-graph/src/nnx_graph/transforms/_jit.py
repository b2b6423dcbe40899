"""``nnx.jit``: full graph semantics at the cost of a flat ``jax.jit`` call.

Per tuple of root objects, the first call traverses the graph once and caches the
ordered Variables and the compiled function (``_jit_cache.py``). Later calls check
the structural epoch (one integer compare), read the Variables' values into a list,
dispatch ``jax.jit`` on it, and write back only the Variables the function changed:
the compiled function returns an :class:`Updates` pytree whose aux data is the
trace's :class:`Outcome`, so which leaves changed (or the new structure) is part of
its output structure, known from the trace and returned with every call.

One call path serves the graph layout (positional arguments, nodes passed directly:
keyed by the arguments' ids) and the tree layout (keyword or static arguments, nodes
in containers: flattened every call), see ``_jit_layout.py``. Costly checks run
only when an entry is built or after a failure (``_jit_checks.py``).

Calls on the same root objects are serialised (a re-entrant lock per root, taken
around read, dispatch and write-back), so several threads may step one model.
"""

from __future__ import annotations

import functools
import inspect
import typing as tp

import jax
import numpy as np

from nnx_graph._graphdef import build, flatten_graph
from nnx_graph._ref_outputs import freeze_refs, thaw_refs
from nnx_graph._variables import Variable
from nnx_graph.transforms._axes import StateAxes
from nnx_graph.transforms._bridge import (
    NODE_TYPES,
    Bridge,
    Outcome,
    Updates,
    fill_tree,
    split_tree,
)
from nnx_graph.transforms._jit_cache import Cache, Compiled, Entry
from nnx_graph.transforms._jit_checks import (
    check_donated_leaves,
    check_in_shardings_count,
    check_outer_trace,
    check_static,
    closure_guard,
    diagnose,
)
from nnx_graph.transforms._jit_layout import GraphLayout, Probe, TreeLayout
from nnx_graph.transforms._jit_stages import Lowered, Traced, static_args_of, with_static_args
from nnx_graph.transforms._modes import check_prefix, reject_bound_method, resolve
from nnx_graph.transforms._shardings import constrain_tree, keep_input_shardings

__all__ = ["JitWrapped"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])
Layout = GraphLayout | TreeLayout
# Arguments of these classes are single leaves: the graph layout passes them as
# they are. Anything else (tuples, dicts, States, dataclasses...) may hold Variables
# or Modules and goes through the tree layout, which finds them.
# (grown with the concrete classes seen, e.g. jax's array class, so that the check is
# one set lookup; nothing is created at import time)
_LEAF_CLASSES: set[type] = {np.ndarray, int, float, bool, complex, type(None), str}
_LEAF_TYPES = (jax.core.Tracer, np.generic, jax.Array)
_TRACER = jax.core.Tracer
try:  # the running trace: an EvalTrace unless under a JAX transform (private API)
    from jax._src import core as _jax_core

    _TRACE_CTX: tp.Any = _jax_core.trace_ctx
    _EVAL_TRACE: tp.Any = _jax_core.EvalTrace
except (ImportError, AttributeError):  # pragma: no cover - JAX moved it: always check
    _TRACE_CTX, _EVAL_TRACE = None, None


def _under_a_transform() -> bool:
    return _TRACE_CTX is None or _TRACE_CTX.trace.__class__ is not _EVAL_TRACE


# Writing a Variable's value through its slot descriptor skips Variable.__setattr__.
_SET_RAW = Variable.__dict__["_raw_value"].__set__


def _normalize(x: int | tp.Sequence[int] | None) -> tuple[int, ...]:
    if x is None:
        return ()
    if isinstance(x, int):
        return (x,)
    return tuple(x)


def _names(x: str | tp.Iterable[str] | None) -> tuple[str, ...]:
    if x is None:
        return ()
    if isinstance(x, str):
        return (x,)
    return tuple(x)


def _graph_key(args: tuple[tp.Any, ...]) -> tuple[int | None, ...] | None:
    """The graph layout's cache key (a node's id or None per argument), or None when
    an argument needs the tree layout."""
    ids: list[int | None] = []
    for a in args:
        if isinstance(a, NODE_TYPES):
            ids.append(id(a))
        elif a.__class__ in _LEAF_CLASSES:
            ids.append(None)
        elif isinstance(a, _LEAF_TYPES):
            if not isinstance(a, jax.core.Tracer):
                _LEAF_CLASSES.add(a.__class__)
            ids.append(None)
        else:
            return None
    return tuple(ids)


class JitWrapped:
    """The callable returned by :func:`jit`; on a class body it also works as a
    method decorator (the instance becomes the first argument).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.count = nnx.Variable(jnp.array(0))
        ...     @nnx.jit
        ...     def increment(self, by):
        ...         self.count.value = self.count.value + by
        >>> c = Counter(); c.increment(2); c.increment(3)
        >>> isinstance(Counter.increment, nnx.JitWrapped), int(c.count.value)
        (True, 5)
    """

    def __init__(
        self,
        fun: tp.Callable[..., tp.Any],
        in_shardings: tp.Any = None,
        out_shardings: tp.Any = None,
        static_argnums: int | tp.Sequence[int] | None = None,
        static_argnames: str | tp.Iterable[str] | None = None,
        donate_argnums: int | tp.Sequence[int] | None = None,
        donate_argnames: str | tp.Iterable[str] | None = None,
        keep_unused: bool = False,
        device: tp.Any = None,
        backend: str | None = None,
        inline: bool = False,
        compiler_options: dict[str, tp.Any] | None = None,
        *,
        graph: bool | None = None,
        graph_updates: bool | None = None,
    ) -> None:
        reject_bound_method(fun, "jit")
        functools.update_wrapper(self, fun)
        self.fun = fun
        # Flax's checks for graph=False / graph_updates=False (None: the default mode)
        self._mode = resolve(f"nnx.jit({self._name})", graph, graph_updates)
        check_prefix(in_shardings, "in_shardings", "jit", self._mode, StateAxes)
        check_prefix(out_shardings, "out_shardings", "jit", self._mode, StateAxes)
        self.in_shardings = in_shardings
        self.out_shardings = out_shardings
        self.static_argnums = _normalize(static_argnums)
        self.static_argnames = _names(static_argnames)
        self.donate_argnums = _normalize(donate_argnums)
        self.donate_argnames = _names(donate_argnames)
        try:
            self._signature: inspect.Signature | None = inspect.signature(fun)
        except (TypeError, ValueError):
            self._signature = None
        self._resolve_names()
        self._jit_kwargs: dict[str, tp.Any] = dict(
            keep_unused=keep_unused, inline=inline, compiler_options=compiler_options
        )
        if device is not None:
            self._jit_kwargs["device"] = device
        if backend is not None:
            self._jit_kwargs["backend"] = backend
        self._simple = not self.static_argnums and not self.static_argnames
        self._store = Cache()
        # the two maps, under the names tools that inspect the cache use
        self._cache = self._store.entries
        self._compiled = self._store.compiled

    def _resolve_names(self) -> None:
        """As in ``jax.jit``: argnames also name positional parameters and argnums
        also name keyword uses of them."""
        params = self._params()
        for name in self.static_argnames:
            if name in params and params.index(name) not in self.static_argnums:
                self.static_argnums = (*self.static_argnums, params.index(name))
        for name in self.donate_argnames:
            if name in params and params.index(name) not in self.donate_argnums:
                self.donate_argnums = (*self.donate_argnums, params.index(name))
        for num in self.static_argnums:
            if 0 <= num < len(params) and params[num] not in self.static_argnames:
                self.static_argnames = (*self.static_argnames, params[num])
        for num in self.donate_argnums:
            if 0 <= num < len(params) and params[num] not in self.donate_argnames:
                self.donate_argnames = (*self.donate_argnames, params[num])

    def _params(self) -> list[str]:
        """Names of the positional parameters of the function."""
        if self._signature is None:
            return []
        return [
            p.name
            for p in self._signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    def __get__(self, obj: tp.Any, objtype: tp.Any = None) -> tp.Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __repr__(self) -> str:
        return f"nnx.jit({self._name})"

    @property
    def _name(self) -> str:
        return str(getattr(self.fun, "__qualname__", self.fun))

    # ------------------------------------------------------------------ the call path
    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        entry, probe = self._entry(args, kwargs)
        dyn, donated_dyn, statics = entry.layout.split(args, kwargs, probe)
        # calls on the same objects are serialised (uncontended: one C call a lock)
        lock, lock2 = entry.lock, entry.lock2
        lock.acquire()
        lock2.acquire()
        try:
            values = [leaf._raw_value for leaf in entry.leaves]
            compiled = entry.compiled
            try:
                if compiled.plain:  # (thaw_refs: references returned, see _ref_outputs)
                    out, updates = thaw_refs(compiled.jitted(values, dyn), values, dyn)
                else:
                    donated_values = [leaf._raw_value for leaf in entry.donated_leaves]
                    result = compiled.jitted(values, dyn, donated_values, donated_dyn, statics)
                    out, updates = thaw_refs(result, values, dyn, donated_values, donated_dyn)
            except Exception as error:
                self._diagnose(entry, error, dyn, donated_dyn)
                raise
            outcome = updates.outcome
            if outcome.structure is not None:
                return self._write_structure(entry, args, probe, out, updates)
            new_values = updates.values
            if new_values and _under_a_transform():
                self._check_outer(entry, outcome.changed or (), new_values)
            leaves = entry.all_leaves
            if entry.all_variables:
                for i, value in zip(outcome.changed or (), new_values):
                    _SET_RAW(leaves[i], value)
            else:
                for i, value in zip(outcome.changed or (), new_values):
                    leaves[i]._raw_value = value
            return out
        finally:
            lock2.release()
            lock.release()

    def _entry(
        self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
    ) -> tuple[Entry, Probe | None]:
        """The valid cache entry for this call (built on a miss)."""
        key: tp.Any = _graph_key(args) if self._simple and not kwargs else None
        probe = None
        if key is None:
            probe = self._probe(args, kwargs)
            key = ("tree", tuple(map(id, probe.nodes)), probe.treedef)
            key += (probe.static_positions, probe.static_names)
        entry = self._cache.get(key)
        if entry is None or not (
            entry.valid_args(args)
            if probe is None
            else entry.valid(entry.layout.nodes(args, probe))
        ):
            entry = self._new_entry(args, kwargs, key, probe)
        return entry, probe

    def _inner_args(
        self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
    ) -> tuple[Entry, tuple[tp.Any, ...]]:
        """The entry and the arguments of its inner ``jax.jit`` function."""
        entry, probe = self._entry(args, kwargs)
        dyn, donated_dyn, statics = entry.layout.split(args, kwargs, probe)
        values = [leaf._raw_value for leaf in entry.leaves]
        if entry.compiled.plain:
            return entry, (values, dyn)
        donated_values = [leaf._raw_value for leaf in entry.donated_leaves]
        return entry, (values, dyn, donated_values, donated_dyn, statics)

    # ------------------------------------------------------------------ AOT / abstract
    def lower(self, *args: tp.Any, **kwargs: tp.Any) -> Lowered:
        """Lower the compiled function for these arguments: a :class:`Lowered`
        wrapping JAX's (``.as_text()``, ``.cost_analysis()``, ``.compile()``, whose
        result is called like this function and carries updates back). The caller's
        objects are not changed.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> class C(nnx.Module):
            ...     def __init__(self):
            ...         self.w = nnx.Param(jnp.ones(3))
            >>> f = nnx.jit(lambda c, x: (c.w.value * x).sum())
            >>> "stablehlo" in f.lower(C(), jnp.ones(3)).as_text()
            True
        """
        entry, inner = self._inner_args(args, kwargs)
        jitted: tp.Any = entry.compiled.jitted
        statics = None if self._simple else static_args_of(self, args, kwargs)
        return Lowered(jitted.lower(*inner), self, statics)

    def trace(self, *args: tp.Any, **kwargs: tp.Any) -> Traced:
        """Trace the function for these arguments: a :class:`Traced` wrapping JAX's
        (``.jaxpr``, ``.lower()``). The caller's objects are not changed.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> f = nnx.jit(lambda x: x * 2)
            >>> "mul" in str(f.trace(jnp.ones(2)).jaxpr)
            True
        """
        entry, inner = self._inner_args(args, kwargs)
        jitted: tp.Any = entry.compiled.jitted
        statics = None if self._simple else static_args_of(self, args, kwargs)
        return Traced(jitted.trace(*inner), self, statics)

    def _call_with(
        self,
        executable: tp.Callable[..., tp.Any],
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        static_args: tp.Any = None,
    ) -> tp.Any:
        """A call through an ahead-of-time compiled ``executable`` (``Compiled``):
        the same reads and write-back as ``__call__``; ``static_args`` (those given
        to ``lower``) are put back in place."""
        if static_args is not None:
            args, kwargs = with_static_args(args, kwargs, static_args)
        entry, probe = self._entry(args, kwargs)
        dyn, donated_dyn, _ = entry.layout.split(args, kwargs, probe)
        lock, lock2 = entry.lock, entry.lock2
        lock.acquire()
        lock2.acquire()
        try:
            values = [leaf._raw_value for leaf in entry.leaves]
            if entry.compiled.plain:
                out, updates = thaw_refs(executable(values, dyn), values, dyn)
            else:
                donated_values = [leaf._raw_value for leaf in entry.donated_leaves]
                result = executable(values, dyn, donated_values, donated_dyn)
                out, updates = thaw_refs(result, values, dyn, donated_values, donated_dyn)
            if updates.outcome.structure is not None:
                return self._write_structure(entry, args, probe, out, updates)
            leaves = entry.all_leaves
            for i, value in zip(updates.outcome.changed or (), updates.values):
                leaves[i]._raw_value = value
            return out
        finally:
            lock2.release()
            lock.release()

    def eval_shape(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        """The output's shapes and dtypes (``jax.ShapeDtypeStruct``s; Modules
        returned come back abstract) without running anything. The caller's objects
        are not changed.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> nnx.jit(lambda x: x.sum(0)).eval_shape(jnp.ones((4, 3)))
            ShapeDtypeStruct(shape=(3,), dtype=float32)
        """
        entry, inner = self._inner_args(args, kwargs)
        jitted = entry.compiled.jitted
        if not entry.compiled.plain:  # the static argument stays a Python value
            jitted = functools.partial(jitted, statics=inner[4])
            inner = inner[:4]
        out, updates = thaw_refs(jax.eval_shape(jitted, *inner), *inner[:4], abstract=True)
        structure = updates.outcome.structure
        if structure is None or not structure.num_out_nodes:
            return out
        root, _ = build(structure.graphdef, list(updates.values))
        return fill_tree(out, root[1])

    def _probe(self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]) -> Probe:
        """Flatten a tree-layout call's arguments (static ones checked and set aside)."""
        nargs = len(args)
        static_pos = tuple(
            sorted({p if p >= 0 else nargs + p for p in self.static_argnums if -nargs <= p < nargs})
        )
        static_names = tuple(n for n in self.static_argnames if n in kwargs)
        for p in static_pos:
            check_static(self._name, f"argument {self._describe_position(p)}", args[p])
        for n in static_names:
            check_static(self._name, f"argument {n!r}", kwargs[n])
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in static_names}
        tree, nodes = split_tree((dyn_args, dyn_kwargs))
        dyn, treedef = jax.tree.flatten(tree)
        return Probe(nodes, dyn, treedef, static_pos, static_names)

    def _write_structure(
        self,
        entry: Entry,
        args: tuple[tp.Any, ...],
        probe: Probe | None,
        out_tree: tp.Any,
        updates: Updates,
    ) -> tp.Any:
        """Carry a structural change (or graph nodes in the output) back."""
        nodes = entry.layout.nodes(args, probe)
        # the entry holds no nodes (see Entry.refs): flatten the caller's again
        bridge = Bridge(nodes)
        if updates.values and _under_a_transform():
            structure = updates.outcome.structure
            assert structure is not None
            pairs = [(o, v) for o, v in zip(structure.origins, updates.values) if o >= 0]
            self._check_outer(entry, [o for o, _ in pairs], [v for _, v in pairs])
        out = bridge.write_back(updates, out_tree)
        # the caller's objects changed structure: the cached entry is now stale
        self._store.drop(entry)
        return out

    def _check_outer(
        self, entry: Entry, indices: tp.Sequence[int], values: tp.Sequence[tp.Any]
    ) -> None:
        names = entry.layout.root_names(self._params())
        check_outer_trace(
            self._name,
            entry.all_leaves,
            indices,
            values,
            lambda i: entry.bridge.describe_leaf(i, names),
        )

    # ------------------------------------------------------------------ entries
    def _new_entry(
        self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any], key: tp.Any, probe: Probe | None
    ) -> Entry:
        layout: Layout
        if probe is None:
            layout = GraphLayout.make(args, _is_node, set(self.donate_argnums))
        else:
            layout = TreeLayout.make(
                probe, len(args), set(self.donate_argnums), set(self.donate_argnames)
            )
        nodes = layout.nodes(args, probe)
        params = self._params()
        bridge = Bridge(
            nodes,
            where=f"nnx.jit({self._name})",
            root_names=lambda: layout.root_names(params),
            mode=self._mode,
        )
        compiled = self._compiled_for(bridge, layout)
        if layout.donates:
            check_donated_leaves(
                self._name, bridge, layout.root_names(params), compiled.donated_index
            )
        holds_tracers = any(isinstance(leaf._raw_value, _TRACER) for leaf in bridge.leaves)
        evict = None if holds_tracers else self._store.evicter(key)
        entry = Entry(key, nodes, bridge, compiled, layout, evict)
        if not holds_tracers:  # objects built inside another trace: do not cache them
            self._store.put(entry)
        return entry

    def _compiled_for(self, bridge: Bridge, layout: Layout) -> Compiled:
        structure_key = (bridge.graphdef, layout)
        compiled = self._compiled.get(structure_key)
        if compiled is None:
            # the compiled function outlives this call's objects: it gets a bridge
            # that only knows the structure
            compiled = self._compile(Bridge.detached(bridge.graphdef, mode=self._mode), layout)
            with self._store.lock:
                self._compiled[structure_key] = compiled
        return compiled

    def _compile(self, bridge: Bridge, layout: Layout) -> Compiled:
        fun, name = self.fun, self._name
        out_shardings = self.out_shardings
        donated_roots = set(layout.donated_roots)
        paths = bridge.paths
        donated_index = tuple(i for i, p in enumerate(paths) if p[0] in donated_roots)
        kept_index = tuple(i for i, p in enumerate(paths) if p[0] not in donated_roots)
        num_leaves = len(paths)
        state_specs: list[tp.Any] = []  # per-leaf in_shardings, for updated Variables

        def merge(kept: tp.Sequence[tp.Any], donated: tp.Sequence[tp.Any]) -> list[tp.Any]:
            if not donated_index:
                return list(kept)
            full: list[tp.Any] = [None] * num_leaves
            for i, v in zip(kept_index, kept):
                full[i] = v
            for i, v in zip(donated_index, donated):
                full[i] = v
            return full

        def inner(
            values: list[tp.Any],
            dyn: list[tp.Any],
            donated_values: list[tp.Any],
            donated_dyn: list[tp.Any],
            statics: tp.Any,
        ) -> tp.Any:
            trace = bridge.enter(merge(values, donated_values))
            args, kwargs = layout.rebuild(trace.roots, dyn, donated_dyn, statics)
            with closure_guard(name, fun):
                out = fun(*args, **kwargs)
            if state_specs:
                keep_input_shardings(trace, paths, state_specs)
            if out_shardings is not None:
                out = constrain_tree(out, out_shardings)
            result = bridge.exit(trace, out)
            outcome = result.outcome
            if outcome.structure is None and donated_index:
                # donated buffers must come back out so XLA can reuse them
                changed = set(outcome.changed or ()) | set(donated_index)
                result = result._replace(outcome=Outcome(tuple(sorted(changed)), None))
            return freeze_refs(result, values, dyn, donated_values, donated_dyn)

        jit_kwargs = dict(self._jit_kwargs)
        plain = isinstance(layout, GraphLayout) and not layout.donates
        if self.in_shardings is not None:
            shardings = self._in_shardings(bridge, layout, kept_index, donated_index)
            jit_kwargs["in_shardings"] = shardings[:2] if plain else shardings
            state_specs.extend(merge(shardings[0], shardings[2]))
        if plain:

            def plain_inner(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
                return inner(values, dyn, [], [], None)

            jitted = jax.jit(plain_inner, **jit_kwargs)
        else:
            jit_kwargs["static_argnames"] = ("statics",)
            if layout.donates:
                jit_kwargs["donate_argnums"] = (2, 3)
            jitted = jax.jit(inner, **jit_kwargs)
        return Compiled(jitted, kept_index, donated_index, plain, tuple(state_specs))

    def _in_shardings(
        self,
        bridge: Bridge,
        layout: Layout,
        kept_index: tuple[int, ...],
        donated_index: tuple[int, ...],
    ) -> tp.Any:
        """``in_shardings`` for the inner function from one entry per positional
        argument of the wrapped function (static ones excluded, as in ``jax.jit``)."""
        static = layout.static_positions if isinstance(layout, TreeLayout) else ()
        specs = check_in_shardings_count(self._name, self.in_shardings, layout.nargs - len(static))
        where = f"nnx.jit({self._name}) in_shardings"
        if isinstance(layout, TreeLayout):
            values, dyn, donated_dyn = layout.in_shardings(
                specs, bridge.paths, where, self._describe_position
            )
        else:
            # a StateSharding matches its filters against the Variables: stand-ins
            # of the right types and metadata, built from the GraphDef
            leaves = None
            if any(isinstance(s, StateAxes) for s in specs):
                graphdef = bridge.graphdef
                root, _ = build(graphdef, [None] * graphdef.num_leaves)
                leaves = flatten_graph(root, check_leaks=False, observe=False).leaves
            values, dyn, donated_dyn = layout.in_shardings(specs, bridge, where, leaves)
        kept = [values[i] for i in kept_index]
        donated = [values[i] for i in donated_index]
        return (kept, dyn, donated, donated_dyn)

    # ------------------------------------------------------------------ errors
    def _describe_position(self, p: int) -> str:
        params = self._params()
        return f"{p} ({params[p]!r})" if p < len(params) else str(p)

    def _diagnose(
        self,
        entry: Entry,
        error: Exception,
        dyn: tp.Sequence[tp.Any],
        donated_dyn: tp.Sequence[tp.Any],
    ) -> None:
        layout = entry.layout
        params = self._params()
        diagnose(
            self._name,
            entry.bridge,
            lambda: layout.root_names(params),
            error,
            entry.compiled.donated_index if layout.donates else None,
            dyn,
            donated_dyn,
        )


def _is_node(x: object) -> bool:
    return isinstance(x, NODE_TYPES)
