"""``nnx.jit``: full graph semantics at the cost of a flat ``jax.jit`` call.

Per root objects, the first call traverses the graph once and caches the ordered
Variables and the compiled function for that structure.  Later calls check the
structural epoch (one integer compare), read the Variables' values into a list,
dispatch ``jax.jit`` on it, and write back only the Variables the function changed
(the compiled function returns them in a pytree whose aux data holds their leaf
indices, so which ones changed is part of its output structure, known from the
trace).

Two call layouts share one inner function:

* fast: positional arguments only, no static arguments, graph nodes passed
  directly (not inside tuples/lists/dicts); the cache key is the tuple of node ids.
* tree: everything else (keyword arguments, static arguments, nodes inside
  containers); the arguments are flattened every call.

Static values that can change in place without a structural mutation (a dict or
list stored as a static attribute, a list in Variable metadata) are the one thing
the epoch cannot see; an entry remembers them (usually none) and each call compares
them with their snapshot.

Errors are diagnosed only after an exception (leaked tracers, buffers donated
twice), so a successful call pays nothing for them.
"""

from __future__ import annotations

import functools
import inspect
import threading
import typing as tp
import weakref

import jax
import numpy as np

from nnx_graph import _epoch
from nnx_graph._graphdef import CONTAINER, NODE, STATIC, VAR, GraphDef, Slot
from nnx_graph._hashing import Frozen, hashable
from nnx_graph._variables import Variable
from nnx_graph.transforms._bridge import (
    NODE_TYPES,
    Bridge,
    Exit,
    fill_tree,
    holes_of,
    is_hole,
    is_node,
    split_tree,
    tree_names,
)
from nnx_graph.transforms._shardings import constrain_tree, is_sharding, leaf_shardings

__all__ = ["JitWrapped", "cached_partial", "jit", "jit_partial"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])
_EPOCH = _epoch.EPOCH
# Arguments of these classes are single leaves: the fast layout passes them as they
# are. Anything else (tuples, dicts, States, dataclasses...) may hold Variables or
# Modules and goes through the tree layout, which finds them.
_LEAF_CLASSES = frozenset(
    {
        type(jax.numpy.zeros(())),
        np.ndarray,
        int,
        float,
        bool,
        complex,
        type(None),
        str,
    }
)
_LEAF_TYPES = (jax.core.Tracer, np.generic, jax.Array)
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
    gets it back for free (no dict keys to sort, no side channel).  ``token`` is
    set instead when the structure changed (it finds the ``Exit`` recorded by the
    trace) and ``values`` then holds every leaf."""

    __slots__ = ("indices", "values", "token")

    def __init__(
        self, indices: tuple[int, ...], values: tp.Sequence[tp.Any], token: int | None = None
    ) -> None:
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


class _Layout(tp.NamedTuple):
    """How one call's arguments reach the inner function (hashable: part of the
    compiled-function key)."""

    tree: bool
    # fast layout: argument positions of graph nodes / other arguments / donated
    # other arguments; tree layout: donated_dyn holds indices of donated dyn leaves
    node_positions: tuple[int, ...]
    dyn_positions: tuple[int, ...]
    donated_dyn: tuple[int, ...]
    nargs: int
    treedef: tp.Any  # tree layout: the (dynamic args, kwargs) tree with node holes
    static_positions: tuple[int, ...]
    static_names: tuple[str, ...]
    donated_roots: tuple[int, ...]  # graph nodes (in found order) whose leaves are donated

    @property
    def donates(self) -> bool:
        return bool(self.donated_roots or self.donated_dyn)


class _Compiled:
    """A ``jax.jit``-compiled inner function for one structure and argument layout,
    plus the structural outcomes its traces recorded."""

    __slots__ = ("jitted", "exits", "kept_index", "donated_index")

    def __init__(
        self,
        jitted: tp.Callable[..., tp.Any],
        kept_index: tuple[int, ...],
        donated_index: tuple[int, ...],
    ) -> None:
        self.jitted = jitted
        self.exits: dict[int, Exit] = {}
        self.kept_index = kept_index
        self.donated_index = donated_index


class _Entry:
    """What one traversal of the call's graph nodes yields, valid until the
    structural epoch moves."""

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
        "dyn_positions",
        "all_variables",
        "mutable_statics",
    )

    def __init__(
        self,
        epoch: int,
        key: tp.Any,
        refs: tuple[weakref.ref[tp.Any], ...],
        bridge: Bridge,
        compiled: _Compiled,
        layout: _Layout,
    ) -> None:
        self.epoch = epoch
        self.key = key
        # weak: the cache must not keep the caller's objects alive (a dead root
        # evicts its entry, releasing the Variables below)
        self.refs = refs
        self.bridge = bridge
        self.all_leaves = bridge.leaves
        if compiled.donated_index:
            self.leaves = [bridge.leaves[i] for i in compiled.kept_index]
            self.donated_leaves: list[tp.Any] | None = [
                bridge.leaves[i] for i in compiled.donated_index
            ]
        else:
            self.leaves = bridge.leaves
            self.donated_leaves = None if not layout.donated_dyn else []
        self.compiled = compiled
        self.layout = layout
        self.dyn_positions = layout.dyn_positions
        self.all_variables = all(isinstance(leaf, Variable) for leaf in self.all_leaves)
        self.mutable_statics = _mutable_statics(bridge.graphdef)


class _WeakSlot(Slot):
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


def _evict(owner: weakref.ref[JitWrapped], key: tp.Any, dead: weakref.ref[tp.Any]) -> None:
    """Weak-reference callback: a root object died, drop its cache entry."""
    jitted = owner()
    if jitted is None:
        return
    entry = jitted._cache.get(key)
    if entry is not None and any(ref is dead for ref in entry.refs):
        jitted._cache.pop(key, None)


def _mutable_statics(graphdef: GraphDef) -> tuple[Frozen, ...]:
    """Static values that can change in place without any structural mutation
    (lists, dicts, sets, or tuples holding them, stored as static attributes or
    Variable metadata): the epoch cannot see ``model.config["rate"] = 0.5``, so
    calls compare these against their snapshot. Usually there are none."""
    found: list[Frozen] = []

    def visit(record: tuple[tp.Any, ...]) -> None:
        tag = record[0]
        if tag == STATIC:
            frozen = record[1]
            if frozen._key is not frozen.value:  # needed a hashable view: mutable
                found.append(frozen)
        elif tag == NODE:
            for _, child in record[4]:
                visit(child)
        elif tag == CONTAINER:
            for child in record[3]:
                visit(child)
        elif tag == VAR:
            for value in record[3].value.values():
                if hashable(value) is not value:
                    found.append(Frozen(value))

    visit(graphdef._record)
    return tuple(found)


def _statics_changed(statics: tp.Sequence[Frozen]) -> bool:
    return any(hashable(frozen.value) != frozen._key for frozen in statics)


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
        self._simple = not self.static_argnums and not self.static_argnames
        self._cache: dict[tp.Any, _Entry] = {}
        self._compiled: dict[tp.Any, _Compiled] = {}
        self._lock = threading.Lock()

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

    # ------------------------------------------------------------------ calls
    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        if kwargs or not self._simple:
            return self._call_general(args, kwargs)
        ids: list[int | None] = []
        for a in args:
            if isinstance(a, NODE_TYPES):
                ids.append(id(a))
            elif a.__class__ in _LEAF_CLASSES or isinstance(a, _LEAF_TYPES):
                ids.append(None)
            else:
                return self._call_general(args, kwargs)
        key = tuple(ids)
        entry = self._cache.get(key)
        if (
            entry is None
            or entry.epoch != _EPOCH[0]
            or not self._alive(entry, args)
            or (entry.mutable_statics and _statics_changed(entry.mutable_statics))
        ):
            entry = self._new_entry(args, {}, key, None)
        values = [leaf._raw_value for leaf in entry.leaves]
        dyn = [args[i] for i in entry.dyn_positions]
        try:
            if entry.donated_leaves is None:
                out, updates = entry.compiled.jitted(values, dyn)
            else:
                out, updates = entry.compiled.jitted(
                    values,
                    dyn,
                    [leaf._raw_value for leaf in entry.donated_leaves],
                    [args[i] for i in entry.layout.donated_dyn],
                )
        except Exception as error:
            self._diagnose(
                entry,
                error,
                [args[i] for i in entry.dyn_positions],
                [args[i] for i in entry.layout.donated_dyn],
            )
            raise
        if updates.token is not None:
            nodes = [args[i] for i in entry.layout.node_positions]
            return self._apply_structure(entry, nodes, out, updates)
        leaves = entry.all_leaves
        if entry.all_variables:
            for i, value in zip(updates.indices, updates.values):
                _SET_RAW(leaves[i], value)
        else:
            for i, value in zip(updates.indices, updates.values):
                leaves[i]._raw_value = value
        return out

    @staticmethod
    def _alive(entry: _Entry, args: tuple[tp.Any, ...]) -> bool:
        # a plain loop: cheaper than all(<generator>) on the per-call path
        for ref, p in zip(entry.refs, entry.layout.node_positions):  # noqa: SIM110
            if ref() is not args[p]:
                return False
        return True

    def _call_general(self, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]) -> tp.Any:
        nargs = len(args)
        static_pos = tuple(
            sorted({p if p >= 0 else nargs + p for p in self.static_argnums if -nargs <= p < nargs})
        )
        static_names = tuple(n for n in self.static_argnames if n in kwargs)
        for p in static_pos:
            self._check_static(f"argument {self._describe_position(p)}", args[p])
        for n in static_names:
            self._check_static(f"argument {n!r}", kwargs[n])
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in static_names}
        tree, nodes = split_tree((dyn_args, dyn_kwargs))
        dyn_leaves, treedef = jax.tree.flatten(tree)
        key = ("tree", tuple(map(id, nodes)), treedef, static_pos, static_names)
        entry = self._cache.get(key)
        if (
            entry is None
            or entry.epoch != _EPOCH[0]
            or not all(r() is n for r, n in zip(entry.refs, nodes))
            or (entry.mutable_statics and _statics_changed(entry.mutable_statics))
        ):
            entry = self._new_entry(args, kwargs, key, (tree, nodes, static_pos, static_names))
        values = [leaf._raw_value for leaf in entry.leaves]
        donated_leaves = entry.donated_leaves or ()
        donated_values = [leaf._raw_value for leaf in donated_leaves]
        donated_dyn_index = entry.layout.donated_dyn
        if donated_dyn_index:
            donated_set = set(donated_dyn_index)
            donated_dyn = [dyn_leaves[i] for i in donated_dyn_index]
            dyn_leaves = [v for i, v in enumerate(dyn_leaves) if i not in donated_set]
        else:
            donated_dyn = []
        statics = (tuple(args[p] for p in static_pos), tuple(kwargs[n] for n in static_names))
        try:
            out, updates = entry.compiled.jitted(
                values, dyn_leaves, donated_values, donated_dyn, statics
            )
        except Exception as error:
            self._diagnose(entry, error, dyn_leaves, donated_dyn)
            raise
        if updates.token is not None:
            return self._apply_structure(entry, nodes, out, updates)
        leaves = entry.all_leaves
        for i, value in zip(updates.indices, updates.values):
            leaves[i]._raw_value = value
        return out

    # ------------------------------------------------------------------ cache
    def _new_entry(
        self,
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        key: tp.Any,
        general: tuple[tp.Any, list[tp.Any], tuple[int, ...], tuple[str, ...]] | None,
    ) -> _Entry:
        epoch = _EPOCH[0]
        if general is None:
            node_positions = tuple(i for i, a in enumerate(args) if isinstance(a, NODE_TYPES))
            donated = set(self.donate_argnums)
            others = [i for i in range(len(args)) if i not in node_positions]
            layout = _Layout(
                tree=False,
                node_positions=node_positions,
                dyn_positions=tuple(i for i in others if i not in donated),
                donated_dyn=tuple(i for i in others if i in donated),
                nargs=len(args),
                treedef=None,
                static_positions=(),
                static_names=(),
                donated_roots=tuple(k for k, p in enumerate(node_positions) if p in donated),
            )
            nodes = [args[i] for i in node_positions]
        else:
            tree, nodes, static_pos, static_names = general
            layout = self._tree_layout(tree, static_pos, static_names, len(args))
        bridge = Bridge(
            nodes, where=f"nnx.jit({self._name})", root_names=lambda: self._root_names(layout)
        )
        compiled = self._compiled_for(bridge, layout)
        if layout.donates:
            self._check_donated_leaves(bridge, layout, compiled)
        evict = functools.partial(_evict, weakref.ref(self), key)
        refs = tuple(weakref.ref(n, evict) for n in nodes)
        leaves = [_WeakSlot(leaf) if isinstance(leaf, Slot) else leaf for leaf in bridge.leaves]
        entry = _Entry(epoch, key, refs, Bridge.detached(bridge.graphdef, leaves), compiled, layout)
        if any(isinstance(leaf._raw_value, jax.core.Tracer) for leaf in bridge.leaves):
            return entry  # objects built inside another trace: do not cache them
        with self._lock:
            if len(self._cache) >= _MAX_ENTRIES and key not in self._cache:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = entry
        return entry

    def _tree_layout(
        self, tree: tp.Any, static_pos: tuple[int, ...], static_names: tuple[str, ...], nargs: int
    ) -> _Layout:
        dyn_positions = [i for i in range(nargs) if i not in static_pos]
        donated_args = {q for q, p in enumerate(dyn_positions) if p in self.donate_argnums}

        def donated(path: tp.Any) -> bool:
            which, where = path[0], path[1]
            if which.idx == 0:  # positional: (args, kwargs)[0][q]
                return where.idx in donated_args
            return where.key in self.donate_argnames

        leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
        with_holes, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_hole)
        holes = [path for path, leaf in with_holes if is_hole(leaf)]
        return _Layout(
            tree=True,
            node_positions=(),
            dyn_positions=(),
            donated_dyn=tuple(i for i, (path, _) in enumerate(leaves) if donated(path)),
            nargs=nargs,
            treedef=treedef,
            static_positions=static_pos,
            static_names=static_names,
            donated_roots=tuple(k for k, path in enumerate(holes) if donated(path)),
        )

    def _compiled_for(self, bridge: Bridge, layout: _Layout) -> _Compiled:
        structure_key = (bridge.graphdef, layout)
        compiled = self._compiled.get(structure_key)
        if compiled is None:
            # the compiled function outlives this call's objects: it gets a bridge
            # that only knows the structure
            compiled = self._compile(Bridge.detached(bridge.graphdef), layout)
            with self._lock:
                self._compiled[structure_key] = compiled
        return compiled

    def _compile(self, bridge: Bridge, layout: _Layout) -> _Compiled:
        fun = self.fun
        out_shardings = self.out_shardings
        donated_roots = set(layout.donated_roots)
        paths = bridge.paths
        donated_index = tuple(i for i, p in enumerate(paths) if p[0] in donated_roots)
        kept_index = tuple(i for i, p in enumerate(paths) if p[0] not in donated_roots)
        num_leaves = len(paths)
        holder: list[_Compiled] = []

        def merge(kept: tp.Sequence[tp.Any], donated: tp.Sequence[tp.Any]) -> list[tp.Any]:
            if not donated_index:
                return list(kept)
            full: list[tp.Any] = [None] * num_leaves
            for i, v in zip(kept_index, kept):
                full[i] = v
            for i, v in zip(donated_index, donated):
                full[i] = v
            return full

        def call(
            roots: tuple[tp.Any, ...], dyn: list[tp.Any], donated_dyn: list[tp.Any], statics: tp.Any
        ) -> tp.Any:
            if layout.tree:
                leaves: list[tp.Any] = [None] * (len(dyn) + len(donated_dyn))
                donated_set = set(layout.donated_dyn)
                rest = iter(dyn)
                for i, v in zip(layout.donated_dyn, donated_dyn):
                    leaves[i] = v
                for i in range(len(leaves)):
                    if i not in donated_set:
                        leaves[i] = next(rest)
                args_tree, kwargs_tree = fill_tree(
                    jax.tree.unflatten(layout.treedef, leaves), roots
                )
                args_list = list(args_tree)
                pos_values, kw_values = statics
                for pos, value in zip(layout.static_positions, pos_values):
                    args_list.insert(pos, value)
                kwargs = dict(kwargs_tree)
                kwargs.update(zip(layout.static_names, kw_values))
                return fun(*args_list, **kwargs)
            call_args: list[tp.Any] = [None] * layout.nargs
            for p, r in zip(layout.node_positions, roots):
                call_args[p] = r
            for p, d in zip(layout.dyn_positions, dyn):
                call_args[p] = d
            for p, d in zip(layout.donated_dyn, donated_dyn):
                call_args[p] = d
            return fun(*call_args)

        def inner(
            values: list[tp.Any],
            dyn: list[tp.Any],
            donated_values: tp.Any = (),
            donated_dyn: tp.Any = (),
            statics: tp.Any = None,
        ) -> tp.Any:
            with bridge.lock:
                roots = bridge.enter(merge(values, donated_values))
                out = call(roots, list(dyn), list(donated_dyn), statics)
                if out_shardings is not None:
                    out = constrain_tree(out, out_shardings)
                out_tree, new_values, info = bridge.exit(roots, out)
                if info.same_structure:
                    changed = bridge.changed(new_values)
                    # donated buffers must come back out so XLA can reuse them
                    for i in donated_index:
                        changed[i] = new_values[i]
                    return out_tree, _Updates(tuple(changed), list(changed.values()))
                token = len(holder[0].exits)
                holder[0].exits[token] = info
                return out_tree, _Updates((), new_values, token)

        jit_kwargs = dict(self._jit_kwargs)
        if layout.donates:
            jit_kwargs["donate_argnums"] = (2, 3)
        if layout.tree:
            jit_kwargs["static_argnums"] = (4,)
        if self.in_shardings is not None:
            jit_kwargs["in_shardings"] = self._in_shardings(
                bridge, layout, kept_index, donated_index
            )
        compiled = _Compiled(jax.jit(inner, **jit_kwargs), kept_index, donated_index)
        holder.append(compiled)
        return compiled

    def _in_shardings(
        self,
        bridge: Bridge,
        layout: _Layout,
        kept_index: tuple[int, ...],
        donated_index: tuple[int, ...],
    ) -> tp.Any:
        """``in_shardings`` for the inner function: one entry per positional argument
        of the wrapped function (static ones excluded, as in ``jax.jit``)."""
        specs = self.in_shardings
        ndyn = layout.nargs - len(layout.static_positions)
        if not isinstance(specs, (tuple, list)):
            specs = (specs,) * ndyn
        if len(specs) != ndyn:
            raise ValueError(
                f"nnx.jit({self._name}): in_shardings has {len(specs)} entries but the "
                f"function was called with {ndyn} non-static positional argument(s). Expected "
                "one entry per positional argument (static ones excluded, as in jax.jit). "
                "Fix: give one sharding (or None) per argument."
            )
        where = f"nnx.jit({self._name}) in_shardings"
        if not layout.tree:
            node_specs = [specs[p] for p in layout.node_positions]
            values = leaf_shardings(node_specs, bridge.paths, where)
            dyn = [specs[p] for p in layout.dyn_positions]
            donated_dyn = [specs[p] for p in layout.donated_dyn]
        else:
            args_tree, _ = jax.tree.unflatten(layout.treedef, [None] * layout.treedef.num_leaves)
            node_specs, leaf_specs = [], []
            for q, arg in enumerate(args_tree):
                spec = specs[q]
                num_holes = len(holes_of(arg))
                num_leaves = len(jax.tree.leaves(arg))
                if (num_leaves or (num_holes and not is_hole(arg))) and not (
                    spec is None or is_sharding(spec)
                ):
                    raise TypeError(
                        f"{where}: with keyword or static arguments, or Modules inside "
                        "containers, an argument's sharding must be one Sharding (or None) "
                        f"for all its leaves; found {type(spec).__name__} for argument "
                        f"{self._describe_position(q)}. Fix: pass the Module as its own "
                        "positional argument to give it a State of shardings."
                    )
                node_specs.extend([spec] * num_holes)
                leaf_specs.extend([spec] * num_leaves)
            # keyword arguments: unspecified
            num_leaves = layout.treedef.num_leaves
            num_roots = len(holes_of(jax.tree.unflatten(layout.treedef, [None] * num_leaves)))
            node_specs.extend([None] * (num_roots - len(node_specs)))
            leaf_specs.extend([None] * (num_leaves - len(leaf_specs)))
            values = leaf_shardings(node_specs, bridge.paths, where)
            donated_set = set(layout.donated_dyn)
            dyn = [s for i, s in enumerate(leaf_specs) if i not in donated_set]
            donated_dyn = [leaf_specs[i] for i in layout.donated_dyn]
        kept = [values[i] for i in kept_index]
        donated = [values[i] for i in donated_index]
        if layout.tree or layout.donates:
            return (kept, dyn, donated, donated_dyn)
        return (kept, dyn)

    def _apply_structure(
        self, entry: _Entry, nodes: list[tp.Any], out_tree: tp.Any, updates: _Updates
    ) -> tp.Any:
        assert updates.token is not None
        info = entry.compiled.exits[updates.token]
        # the entry holds no nodes (see _Entry.refs): flatten the caller's again
        out = Bridge(nodes).apply_structure(info, updates.values, out_tree)
        # the caller's objects changed structure: the cached entry is now stale
        with self._lock:
            if self._cache.get(entry.key) is entry:
                del self._cache[entry.key]
        return out

    # ------------------------------------------------------------------ errors
    def _describe_position(self, p: int) -> str:
        params = self._params()
        return f"{p} ({params[p]!r})" if p < len(params) else str(p)

    def _root_names(self, layout: _Layout) -> list[str]:
        params = self._params()
        if not layout.tree:
            return [params[p] if p < len(params) else f"args[{p}]" for p in layout.node_positions]
        tree = jax.tree.unflatten(layout.treedef, [None] * layout.treedef.num_leaves)
        dyn_params = [n for i, n in enumerate(params) if i not in layout.static_positions]
        return tree_names(tree, dyn_params)[0]

    def _check_static(self, where: str, value: tp.Any) -> None:
        found = (
            value
            if isinstance(value, NODE_TYPES)
            else next((x for x in jax.tree.leaves(value, is_leaf=is_node) if is_node(x)), None)
        )
        if found is not None:
            inside = "" if found is value else f"{type(value).__name__} holding a "
            raise TypeError(
                f"nnx.jit({self._name}): {where} is declared static but received a "
                f"{inside}{type(found).__name__} (a graph node with state). Expected a "
                "hashable Python value. Fix: remove it from static_argnums/static_argnames; "
                "Modules and Variables are handled by nnx.jit automatically."
            )
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"nnx.jit({self._name}): static {where} must be hashable; found "
                f"{type(value).__name__} {value!r:.60}. Fix: pass a tuple instead of a list, "
                "or a frozen dataclass, or make the argument dynamic."
            ) from None

    def _check_donated_leaves(
        self,
        bridge: Bridge,
        layout: _Layout,
        compiled: _Compiled,
        dyn: tp.Sequence[tp.Any] = (),
        donated_dyn: tp.Sequence[tp.Any] = (),
    ) -> None:
        """Raise when a donated buffer is also held elsewhere in the call (XLA would
        refuse it, or the other holder would be left with a deleted array)."""
        names = self._root_names(layout)
        donated = set(compiled.donated_index)
        seen: dict[int, tuple[str, bool]] = {}  # buffer id -> (first holder, donated?)

        def visit(value: tp.Any, name: tp.Callable[[], str], is_donated: bool) -> None:
            if not isinstance(value, jax.Array):
                return
            first = seen.get(id(value))
            if first is None:
                seen[id(value)] = (name(), is_donated)
            elif first[1] or is_donated:
                raise ValueError(
                    f"nnx.jit({self._name}): donating the arguments would donate a buffer "
                    f"that is still referenced elsewhere: {first[0]} and {name()} hold the "
                    "same jax.Array (they are not one shared Variable). Expected each "
                    "donated buffer to be referenced once. Fix: share the Variable itself "
                    "(b.w = a.w), copy the array (jnp.array(x, copy=True)), or do not "
                    "donate it."
                )

        for i, leaf in enumerate(bridge.leaves):
            visit(leaf._raw_value, functools.partial(bridge.describe_leaf, i, names), i in donated)
        for k, value in enumerate(jax.tree.leaves(list(dyn))):
            visit(value, f"array argument leaf {k}".format, False)
        for k, value in enumerate(jax.tree.leaves(list(donated_dyn))):
            visit(value, f"donated array argument leaf {k}".format, True)

    def _diagnose(
        self,
        entry: _Entry,
        error: Exception,
        dyn: tp.Sequence[tp.Any],
        donated_dyn: tp.Sequence[tp.Any],
    ) -> None:
        """After a failed call: turn a leaked tracer or a doubly-donated buffer into an
        error that names the Variable; otherwise let the original error through."""
        layout = entry.layout
        try:
            entry.bridge.check_leaks(f"nnx.jit({self._name})", lambda: self._root_names(layout))
            if layout.donates:
                self._check_donated_leaves(entry.bridge, layout, entry.compiled, dyn, donated_dyn)
        except (ValueError, RuntimeError) as diagnosis:
            raise diagnosis from error


@tp.overload
def jit(
    fun: F,
    /,
    *,
    in_shardings: tp.Any = ...,
    out_shardings: tp.Any = ...,
    static_argnums: int | tp.Sequence[int] | None = ...,
    static_argnames: str | tp.Iterable[str] | None = ...,
    donate_argnums: int | tp.Sequence[int] | None = ...,
    donate_argnames: str | tp.Iterable[str] | None = ...,
    keep_unused: bool = ...,
    device: tp.Any = ...,
    backend: str | None = ...,
    inline: bool = ...,
    compiler_options: dict[str, tp.Any] | None = ...,
    graph: bool | None = ...,
    graph_updates: bool | None = ...,
) -> F: ...
@tp.overload
def jit(
    *,
    in_shardings: tp.Any = ...,
    out_shardings: tp.Any = ...,
    static_argnums: int | tp.Sequence[int] | None = ...,
    static_argnames: str | tp.Iterable[str] | None = ...,
    donate_argnums: int | tp.Sequence[int] | None = ...,
    donate_argnames: str | tp.Iterable[str] | None = ...,
    keep_unused: bool = ...,
    device: tp.Any = ...,
    backend: str | None = ...,
    inline: bool = ...,
    compiler_options: dict[str, tp.Any] | None = ...,
    graph: bool | None = ...,
    graph_updates: bool | None = ...,
) -> tp.Callable[[F], F]: ...
def jit(
    fun: tp.Any = None,
    /,
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
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """Compile a function that takes Modules (and any other graph nodes) with
    ``jax.jit``; Variable updates and structural changes made inside are carried
    back to the caller's objects, and shared references stay shared.

    Works as ``@nnx.jit``, ``@nnx.jit(static_argnums=...)`` and on methods.
    Arguments are those of ``jax.jit``; ``in_shardings``/``out_shardings`` for a
    graph-node argument may be one sharding or a State of shardings (e.g. from
    ``nnx.get_named_sharding``). Donating a graph-node argument donates its
    Variables' buffers. ``graph``/``graph_updates`` are accepted for
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
    kwargs = dict(
        in_shardings=in_shardings,
        out_shardings=out_shardings,
        static_argnums=static_argnums,
        static_argnames=static_argnames,
        donate_argnums=donate_argnums,
        donate_argnames=donate_argnames,
        keep_unused=keep_unused,
        device=device,
        backend=backend,
        inline=inline,
        compiler_options=compiler_options,
    )
    if fun is None:
        return lambda f: JitWrapped(f, **kwargs)
    return JitWrapped(fun, **kwargs)


def jit_partial(
    fun: tp.Callable[..., tp.Any], /, *partial_args: tp.Any, **jit_kwargs: tp.Any
) -> tp.Callable[..., tp.Any]:
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


def cached_partial(
    fun: tp.Callable[..., tp.Any],
    /,
    *cached_args: tp.Any,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Callable[..., tp.Any]:
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
