"""``nnx.jit``: full graph semantics at the cost of a flat ``jax.jit`` call.

Per root objects, the first call traverses the graph once and caches the ordered
Variables and the compiled function for that structure.  Later calls check the
structural epoch (one integer compare), read the Variables' values into a list,
dispatch ``jax.jit`` on it, and write back only the Variables the function changed
(the compiled function returns them in a dict keyed by leaf index, so which ones
changed is part of its output structure, known from the trace).
"""

from __future__ import annotations

import functools
import inspect
import threading
import typing as tp
import weakref

import jax

from nnx_graph import _epoch
from nnx_graph._errors import TraceLeakError
from nnx_graph._variables import Variable, _leaked_tracer
from nnx_graph.transforms._bridge import NODE_TYPES, Bridge, Exit, fill_tree, split_tree
from nnx_graph.transforms._shardings import constrain_tree, leaf_shardings

__all__ = ["JitWrapped", "cached_partial", "jit", "jit_partial"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])
_EPOCH = _epoch.EPOCH
_CONTAINERS = (tuple, list, dict)
_MAX_ENTRIES = 16


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


class _Updates:
    """Output of a compiled call: new values of the leaves that changed.

    Which leaves changed is known at trace time; keeping it in the pytree's aux
    data makes it part of the compiled function's output structure, so every call
    gets it back for free (no dict keys to sort, no side channel)."""

    __slots__ = ("indices", "values", "token")

    def __init__(self, indices: tuple[int, ...], values: tp.Sequence[tp.Any],
                 token: int | None = None) -> None:
        self.indices = indices
        self.values = values
        self.token = token


jax.tree_util.register_pytree_node(
    _Updates,
    lambda u: (u.values, (u.indices, u.token)),
    lambda aux, values: _Updates(aux[0], values, aux[1]),
)

# Writing a Variable's value through its slot descriptor skips Variable.__setattr__.
_SET_RAW = Variable.__dict__["_raw_value"].__set__


class _Compiled:
    """A ``jax.jit``-compiled inner function for one structure and argument layout,
    plus the structural outcomes its traces recorded."""

    __slots__ = ("jitted", "exits")

    def __init__(self, jitted: tp.Callable[..., tp.Any]) -> None:
        self.jitted = jitted
        self.exits: dict[int, Exit] = {}


class _Entry:
    """What one traversal of the call's graph nodes yields, valid until the
    structural epoch moves."""

    __slots__ = ("epoch", "refs", "bridge", "leaves", "compiled", "layout", "all_variables")

    def __init__(self, epoch: int, nodes: tp.Sequence[tp.Any], bridge: Bridge,
                 compiled: _Compiled, layout: tp.Any) -> None:
        self.epoch = epoch
        self.refs = tuple(weakref.ref(n) for n in nodes)
        self.bridge = bridge
        self.leaves = bridge.leaves
        self.compiled = compiled
        self.layout = layout
        self.all_variables = all(isinstance(leaf, Variable) for leaf in self.leaves)


class JitWrapped:
    """The callable returned by :func:`jit`."""

    def __init__(
        self,
        fun: tp.Callable[..., tp.Any],
        *,
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
    ) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
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
        self._simple = not self.static_argnums and not self.static_argnames and not (
            self.donate_argnames
        )
        self._cache: dict[tp.Any, _Entry] = {}
        self._compiled: dict[tp.Any, _Compiled] = {}
        self._lock = threading.Lock()

    def _resolve_names(self) -> None:
        """Static/donate argnames also name positional parameters (as in jax.jit)."""
        if self._signature is None:
            return
        params = list(self._signature.parameters)
        for name in self.static_argnames:
            if name in params and params.index(name) not in self.static_argnums:
                self.static_argnums = (*self.static_argnums, params.index(name))
        for name in self.donate_argnames:
            if name in params and params.index(name) not in self.donate_argnums:
                self.donate_argnums = (*self.donate_argnums, params.index(name))

    def __get__(self, obj: tp.Any, objtype: tp.Any = None) -> tp.Any:
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __repr__(self) -> str:
        return f"nnx.jit({getattr(self.fun, '__qualname__', self.fun)!r})"

    # ------------------------------------------------------------------ calls
    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        if kwargs or not self._simple:
            return self._call_general(args, kwargs)
        ids = []
        for a in args:
            if isinstance(a, NODE_TYPES):
                ids.append(id(a))
            elif a.__class__ in _CONTAINERS:
                return self._call_general(args, kwargs)
            else:
                ids.append(None)
        key = tuple(ids)
        entry = self._cache.get(key)
        if entry is None or entry.epoch != _EPOCH[0] or not self._alive(entry, args):
            entry = self._new_fast_entry(args, key)
        leaves = entry.leaves
        values = [leaf._raw_value for leaf in leaves]
        dyn = [args[i] for i in entry.layout[1]]
        try:
            out, updates = entry.compiled.jitted(values, dyn)
        except Exception as error:
            self._diagnose(entry, values, error)
            raise
        if updates.token is not None:
            return self._apply_structure(entry, out, updates)
        if entry.all_variables:
            for i, value in zip(updates.indices, updates.values):
                _SET_RAW(leaves[i], value)
        else:
            for i, value in zip(updates.indices, updates.values):
                leaves[i]._raw_value = value
        return out

    @staticmethod
    def _alive(entry: _Entry, args: tuple[tp.Any, ...]) -> bool:
        for ref, p in zip(entry.refs, entry.layout[0]):
            if ref() is not args[p]:
                return False
        return True

    def _store(self, key: tp.Any, entry: _Entry) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_ENTRIES and key not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = entry

    def _new_fast_entry(self, args: tuple[tp.Any, ...], key: tp.Any) -> _Entry:
        node_positions = tuple(i for i, a in enumerate(args) if isinstance(a, NODE_TYPES))
        dyn_positions = tuple(i for i in range(len(args)) if i not in node_positions)
        nodes = [args[i] for i in node_positions]
        epoch = _EPOCH[0]
        bridge = Bridge(nodes)
        self._check_donation(bridge, node_positions)
        layout = (node_positions, dyn_positions, len(args))
        donate_nodes = bool(set(self.donate_argnums) & set(node_positions))
        compiled = self._compiled_for(bridge, layout, donate_nodes)
        entry = _Entry(epoch, nodes, bridge, compiled, layout)
        self._store(key, entry)
        return entry

    def _compiled_for(self, bridge: Bridge, layout: tp.Any, donate_nodes: bool) -> _Compiled:
        structure_key = (bridge.graphdef, layout, donate_nodes)
        compiled = self._compiled.get(structure_key)
        if compiled is None:
            compiled = self._compile(bridge, layout, donate_nodes)
            with self._lock:
                self._compiled[structure_key] = compiled
        return compiled

    def _compile(self, bridge: Bridge, layout: tp.Any, donate_nodes: bool) -> _Compiled:
        fun = self.fun
        out_shardings = self.out_shardings
        if layout[0] == "tree":
            _, treedef, statics_layout = layout
        else:
            node_positions, dyn_positions, nargs = layout

        holder: list[_Compiled] = []

        def inner(values: list[tp.Any], dyn: list[tp.Any], statics: tp.Any = None) -> tp.Any:
            with bridge.lock:
                roots = bridge.enter(values)
                if layout[0] == "tree":
                    args_tree, kwargs_tree = fill_tree(jax.tree.unflatten(treedef, dyn), roots)
                    args_list = list(args_tree)
                    pos_values, kw_values = statics if statics is not None else ((), ())
                    for pos, value in zip(statics_layout[0], pos_values):
                        args_list.insert(pos, value)
                    kwargs = dict(kwargs_tree)
                    for name, value in zip(statics_layout[1], kw_values):
                        kwargs[name] = value
                    out = fun(*args_list, **kwargs)
                else:
                    call_args: list[tp.Any] = [None] * nargs
                    for p, r in zip(node_positions, roots):
                        call_args[p] = r
                    for p, d in zip(dyn_positions, dyn):
                        call_args[p] = d
                    out = fun(*call_args)
                if out_shardings is not None:
                    out = constrain_tree(out, out_shardings)
                out_tree, new_values, info = bridge.exit(roots, out)
                if info.same_structure:
                    changed = bridge.changed(new_values)
                    return out_tree, _Updates(tuple(changed), list(changed.values()))
                token = len(holder[0].exits)
                holder[0].exits[token] = info
                return out_tree, _Updates((), new_values, token)

        jit_kwargs = dict(self._jit_kwargs)
        if donate_nodes:
            jit_kwargs["donate_argnums"] = (0,)
        if layout[0] == "tree":
            jit_kwargs["static_argnums"] = (2,)
        if self.in_shardings is not None:
            jit_kwargs["in_shardings"] = self._in_shardings(bridge, layout)
        compiled = _Compiled(jax.jit(inner, **jit_kwargs))
        holder.append(compiled)
        return compiled

    def _in_shardings(self, bridge: Bridge, layout: tp.Any) -> tp.Any:
        specs = self.in_shardings
        if layout[0] == "tree":
            raise NotImplementedError(
                "nnx.jit(in_shardings=...) is supported when the arguments are passed "
                "positionally and not inside containers. Fix: pass objects and arrays as "
                "separate positional arguments, or place inputs with jax.device_put."
            )
        node_positions, dyn_positions, nargs = layout
        if not isinstance(specs, (tuple, list)):
            specs = (specs,) * nargs
        node_specs = [specs[p] for p in node_positions]
        values = leaf_shardings(node_specs, bridge.paths, "in_shardings")
        dyn = [specs[p] for p in dyn_positions]
        return (values, dyn)

    def _apply_structure(self, entry: _Entry, out_tree: tp.Any, updates: _Updates) -> tp.Any:
        assert updates.token is not None
        info = entry.compiled.exits[updates.token]
        out = entry.bridge.apply_structure(info, updates.values, out_tree)
        # the caller's objects changed structure: the cached entry is now stale
        self._cache.pop(next((k for k, e in self._cache.items() if e is entry), None), None)
        return out

    # ------------------------------------------------------------------ general
    def _call_general(self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]) -> tp.Any:
        static_pos = tuple(sorted(p if p >= 0 else len(args) + p for p in self.static_argnums
                                  if -len(args) <= p < len(args)))
        statics_args = tuple((p, args[p]) for p in static_pos)
        static_names = tuple(n for n in self.static_argnames if n in kwargs)
        statics_kwargs = tuple(kwargs[n] for n in static_names)
        for where, value in [*((f"argument {p}", v) for p, v in statics_args),
                             *((f"argument {n!r}", v) for n, v in zip(static_names,
                                                                      statics_kwargs))]:
            self._check_static(where, value)
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in static_names}
        tree, nodes = split_tree((dyn_args, dyn_kwargs))
        dyn_leaves, treedef = jax.tree.flatten(tree)
        donated = tuple(i for i, a in enumerate(args) if i in self.donate_argnums)
        layout = ("tree", treedef, (static_pos, static_names))
        key = ("tree", tuple(map(id, nodes)), treedef, static_pos, static_names, donated)
        entry = self._cache.get(key)
        if entry is None or entry.epoch != _EPOCH[0] or not all(
            r() is n for r, n in zip(entry.refs, nodes)
        ):
            epoch = _EPOCH[0]
            bridge = Bridge(nodes)
            node_args = tuple(i for i, a in enumerate(args) if isinstance(a, NODE_TYPES))
            compiled_layout = ("tree", treedef, (static_pos, static_names))
            self._check_donation(bridge, node_args)
            donate_nodes = bool(set(donated) & set(node_args)) or any(
                isinstance(kwargs.get(n), NODE_TYPES) for n in self.donate_argnames)
            compiled = self._compiled_for(bridge, compiled_layout, donate_nodes)
            entry = _Entry(epoch, nodes, bridge, compiled, layout)
            entry.refs = tuple(weakref.ref(n) for n in nodes)
            self._store(key, entry)
        values = [leaf._raw_value for leaf in entry.leaves]
        statics = (tuple(v for _, v in statics_args), statics_kwargs)
        try:
            out, updates = entry.compiled.jitted(values, dyn_leaves, statics)
        except Exception as error:
            self._diagnose(entry, values, error)
            raise
        if updates.token is not None:
            return self._apply_structure(entry, out, updates)
        leaves = entry.leaves
        for i, value in zip(updates.indices, updates.values):
            leaves[i]._raw_value = value
        return out

    # ------------------------------------------------------------------ errors
    def _check_static(self, where: str, value: tp.Any) -> None:
        name = getattr(self.fun, "__qualname__", repr(self.fun))
        if isinstance(value, NODE_TYPES):
            raise TypeError(
                f"nnx.jit({name}): {where} is declared static but received a "
                f"{type(value).__name__} (a graph node with state). Expected a hashable "
                "Python value. Fix: remove it from static_argnums/static_argnames; Modules "
                "and Variables are handled by nnx.jit automatically."
            )
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"nnx.jit({name}): static {where} must be hashable; found "
                f"{type(value).__name__} {value!r:.60}. Fix: pass a tuple instead of a list, "
                "or a frozen dataclass, or make the argument dynamic."
            ) from None

    def _check_donation(self, bridge: Bridge, node_positions: tp.Sequence[int]) -> None:
        if not self.donate_argnums or not (set(self.donate_argnums) & set(node_positions)):
            return
        seen: dict[int, int] = {}
        for i, leaf in enumerate(bridge.leaves):
            value = leaf._raw_value
            if not isinstance(value, jax.Array):
                continue
            j = seen.setdefault(id(value), i)
            if j != i:
                names = self._arg_names()
                raise ValueError(
                    f"nnx.jit: donating the arguments would donate one buffer twice: "
                    f"{bridge.describe_leaf(j, names)} and {bridge.describe_leaf(i, names)} "
                    "hold the same jax.Array (not a shared Variable). Expected each donated "
                    "buffer to be referenced once. Fix: share the Variable itself "
                    "(b.w = a.w) or copy the array (jnp.array(x, copy=True))."
                )

    def _arg_names(self) -> list[str]:
        if self._signature is None:
            return []
        return list(self._signature.parameters)

    def _diagnose(self, entry: _Entry, values: list[tp.Any], error: Exception) -> None:
        """Turn a leaked tracer into an error that names the Variable."""
        for i, value in enumerate(values):
            if isinstance(value, jax.core.Tracer) and _leaked_tracer(value):
                names = [n for i, n in enumerate(self._arg_names())
                         if i not in self.static_argnums]
                leaf = entry.leaves[i]
                kind = type(leaf).__name__ if isinstance(leaf, Variable) else "array"
                raise TraceLeakError(
                    f"nnx.jit: {entry.bridge.describe_leaf(i, names)} ({kind}) holds a JAX "
                    "tracer from a transform that has finished: a traced value was stored "
                    "on an object that was not passed into that transform.\nExpected: a "
                    "concrete array.\nFix: pass the object as an argument of the "
                    "transformed function so its updates are carried out, or return the "
                    "value and assign it outside."
                ) from error


@tp.overload
def jit(fun: F, /, **kwargs: tp.Any) -> F: ...
@tp.overload
def jit(*, in_shardings: tp.Any = ..., out_shardings: tp.Any = ...,
        static_argnums: int | tp.Sequence[int] | None = ...,
        static_argnames: str | tp.Iterable[str] | None = ...,
        donate_argnums: int | tp.Sequence[int] | None = ...,
        donate_argnames: str | tp.Iterable[str] | None = ...,
        keep_unused: bool = ..., device: tp.Any = ..., backend: str | None = ...,
        inline: bool = ..., compiler_options: dict[str, tp.Any] | None = ...,
        graph: bool | None = ..., graph_updates: bool | None = ...
        ) -> tp.Callable[[F], F]: ...
def jit(fun: tp.Any = None, /, *, in_shardings: tp.Any = None, out_shardings: tp.Any = None,
        static_argnums: int | tp.Sequence[int] | None = None,
        static_argnames: str | tp.Iterable[str] | None = None,
        donate_argnums: int | tp.Sequence[int] | None = None,
        donate_argnames: str | tp.Iterable[str] | None = None,
        keep_unused: bool = False, device: tp.Any = None, backend: str | None = None,
        inline: bool = False, compiler_options: dict[str, tp.Any] | None = None,
        graph: bool | None = None, graph_updates: bool | None = None) -> tp.Any:
    """Compile a function that takes Modules (and any other graph nodes) with
    ``jax.jit``; Variable updates and structural changes made inside are carried
    back to the caller's objects, and shared references stay shared.

    Works as ``@nnx.jit``, ``@nnx.jit(static_argnums=...)`` and on methods.
    Arguments are those of ``jax.jit``; ``in_shardings``/``out_shardings`` for a
    graph-node argument may be one sharding or a State of shardings (e.g. from
    ``nnx.get_named_sharding``). ``graph``/``graph_updates`` are accepted for
    compatibility (graph semantics are always on here, at flat-call cost).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.count = nnx.Variable(jnp.array(0))
        >>> @nnx.jit
        ... def step(counter, x):
        ...     counter.count += 1
        ...     return x * 2
        >>> c = Counter(); _ = step(c, 1.0); _ = step(c, 1.0)
        >>> int(c.count.value)
        2
    """
    kwargs = dict(in_shardings=in_shardings, out_shardings=out_shardings,
                  static_argnums=static_argnums, static_argnames=static_argnames,
                  donate_argnums=donate_argnums, donate_argnames=donate_argnames,
                  keep_unused=keep_unused, device=device, backend=backend, inline=inline,
                  compiler_options=compiler_options)
    if fun is None:
        return lambda f: JitWrapped(f, **kwargs)
    return JitWrapped(fun, **kwargs)


def jit_partial(fun: tp.Callable[..., tp.Any], /, *partial_args: tp.Any,
                **jit_kwargs: tp.Any) -> tp.Callable[..., tp.Any]:
    """``nnx.jit(fun)`` with leading arguments bound (typically the model and the
    optimizer). Equivalent to ``functools.partial(nnx.jit(fun), *partial_args)``;
    nnx.jit already caches the traversal, so this is a convenience, not a speed-up.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def step(c):
        ...     c.n += 1
        >>> c = C(); f = nnx.jit_partial(step, c); f(); f()
        >>> int(c.n.value)
        2
    """
    return functools.partial(jit(fun, **jit_kwargs), *partial_args)


def cached_partial(fun: tp.Callable[..., tp.Any], /, *cached_args: tp.Any) -> tp.Callable[..., tp.Any]:
    """Bind graph-node arguments to a transformed function (``nnx.jit`` output).

    Kept for Flax compatibility: there it skips a per-call traversal; here every
    ``nnx.jit`` call already does, so this is ``functools.partial``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> @nnx.jit
        ... def step(c):
        ...     c.n += 1
        >>> c = C(); f = nnx.cached_partial(step, c); f()
        >>> int(c.n.value)
        1
    """
    return functools.partial(fun, *cached_args)
