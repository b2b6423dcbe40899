"""``nnx.custom_vjp``: ``jax.custom_vjp`` for functions of graph nodes."""

from __future__ import annotations

import functools
import inspect
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from nnx_graph._graph import merge, split, update
from nnx_graph._graph import state as graph_state
from nnx_graph._state import State, from_flat_state, to_flat_state
from nnx_graph._variables import Variable
from nnx_graph.transforms._autodiff import DiffState, _has_nodes
from nnx_graph.transforms._bridge import is_node
from nnx_graph.transforms._lift import bind_positional
from nnx_graph.transforms._modes import resolve

__all__ = ["CustomVjp", "custom_vjp"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])


class _NoRule(ValueError, TypeError):
    """``defvjp`` was not called (a ValueError as in Flax; a TypeError as before)."""


class CustomVjp(tp.Generic[F]):
    """What :func:`custom_vjp` returns: call it like the function; set the rule
    with ``defvjp(fwd, bwd, symbolic_zeros=False)``.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> f = nnx.custom_vjp(lambda x: jnp.sin(x), graph_updates=False)
        >>> f.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * 2,))
        >>> float(jax.grad(f)(1.0))
        2.0
    """

    def __init__(
        self, fun: F, nondiff_argnums: tuple[int | DiffState, ...] = (), updates_g: bool = True
    ) -> None:
        functools.update_wrapper(self, fun)
        name = getattr(fun, "__name__", "function")
        if inspect.ismethod(fun) and is_node(fun.__self__):
            owner = type(fun.__self__).__name__
            raise ValueError(
                f"nnx.custom_vjp does not support bound methods: {owner}.{fun.__name__} is "
                f"bound to a {owner}, whose Variables would be closed over. Expected a "
                "function taking the Module as an argument. Fix: use the decorator form "
                f"@nnx.custom_vjp or call nnx.custom_vjp({owner}.{fun.__name__})(instance, "
                "...) with the unbound method."
            )
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        seen: set[int] = set()
        for a in self.nondiff_argnums:
            index = a.argnum if isinstance(a, DiffState) else a
            if index in seen:
                raise ValueError(
                    f"nnx.custom_vjp({name}): argnum {index} is repeated in nondiff_argnums. "
                    "Expected each argument at most once. Fix: list it once (an int or one "
                    "nnx.DiffState)."
                )
            seen.add(index)
        self.nondiff = tuple(a for a in self.nondiff_argnums if isinstance(a, int))
        self.diff_filters = {
            a.argnum: a.filter for a in self.nondiff_argnums if isinstance(a, DiffState)
        }
        if self.diff_filters and not updates_g:
            raise ValueError(
                f"nnx.custom_vjp({name}): `nondiff_argnums` cannot contain `DiffState` objects "
                "when `graph=False` or `graph_updates=False`: there, bwd returns a whole "
                "tangent per argument. Fix: remove the DiffState, or use graph=True and "
                "graph_updates=True (the default)."
            )
        self.updates_g = updates_g
        self.fwd: tp.Callable[..., tp.Any] | None = None
        self.bwd: tp.Callable[..., tp.Any] | None = None
        self.symbolic_zeros: bool | None = None

    def defvjp(
        self,
        fwd: tp.Callable[..., tp.Any],
        bwd: tp.Callable[..., tp.Any],
        symbolic_zeros: bool = False,
    ) -> None:
        """Set the rule. ``fwd`` takes the arguments and returns ``(out, residuals)``;
        ``bwd(*nondiff, residuals, g)`` returns one cotangent per differentiable
        argument. With ``symbolic_zeros=True`` (as in ``jax.custom_vjp``), ``fwd``
        sees each array (also inside Variables) as a ``CustomVJPPrimal`` with
        ``.value`` and ``.perturbed``, ``g`` may hold ``SymbolicZero`` entries, and
        ``bwd`` may return None for a zero cotangent."""
        self.fwd, self.bwd, self.symbolic_zeros = fwd, bwd, symbolic_zeros

    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        name = getattr(self.fun, "__name__", "function")
        if self.fwd is None or self.bwd is None:
            raise _NoRule(
                f"nnx.custom_vjp({name}): defvjp(fwd, bwd) was not called. "
                "Fix: call f.defvjp(f_fwd, f_bwd) before using f."
            )
        args = bind_positional("custom_vjp", self.fun, args, kwargs)
        for i in self.nondiff:
            if self.updates_g and i < len(args) and _has_nodes(args[i]):
                raise TypeError(
                    f"nnx.custom_vjp({name}): Passing integers to nondiff_argnums for graph "
                    f"nodes arguments in custom_vjp is not supported: argument {i} holds "
                    "Modules/Variables and is listed in nondiff_argnums as an int. Expected "
                    f"ints only for non-graph arguments. Fix: use nnx.DiffState({i}, filter) "
                    "to choose which of its Variables are differentiated (nnx.DiffState("
                    f"{i}, nnx.Not(...)) for none), or pass graph_updates=False, where bwd "
                    "receives the object first."
                )
            if i < len(args) and _has_nodes(args[i]) and _holds_tracer(args[i]):
                raise TypeError(
                    f"nnx.custom_vjp({name}): argument {i} is in nondiff_argnums but its "
                    "Variables hold JAX tracers (it is an argument of an enclosing "
                    "transform, e.g. nnx.jit): Tracers cannot be passed as non-differentiable "
                    "arguments to custom_vjp functions. Expected concrete state. Fix: make it "
                    "a differentiable argument (bwd returns its cotangent), or close over it "
                    "outside the enclosing transform."
                )
        fun, fwd, bwd = self.fun, self.fwd, self.bwd
        nondiff = {i: args[i] for i in self.nondiff if i < len(args)}
        dynamic = [i for i in range(len(args)) if i not in nondiff]
        graphdefs: dict[int, tp.Any] = {}
        fixed: dict[int, State] = {}
        pure_args: list[tp.Any] = []
        for i in dynamic:
            a = args[i]
            if is_node(a):
                if i in self.diff_filters:
                    parts: tp.Any = split(a, self.diff_filters[i], ...)
                    graphdefs[i], diff_state, fixed[i] = parts
                else:
                    graphdefs[i], diff_state = split(a)
                    fixed[i] = State({})
                pure_args.append(jax.tree.map(lambda v: v, diff_state))
            else:
                pure_args.append(a)

        def rebuild(pargs: tp.Sequence[tp.Any]) -> list[tp.Any]:
            it = iter(pargs)
            out = []
            for i in range(len(args)):
                if i in nondiff:
                    out.append(nondiff[i])
                    continue
                p = next(it)
                out.append(merge(graphdefs[i], p, fixed[i], copy=True) if i in graphdefs else p)
            return out

        node_args = [i for i in dynamic if i in graphdefs]
        changed: list[tuple[int, tuple[tp.Any, ...]]] = []  # set while tracing

        def run(call: tp.Callable[..., tp.Any], pargs: tp.Sequence[tp.Any]) -> tp.Any:
            """Call on fresh objects; also return the new values of the Variables the
            call changed (extra outputs, so their updates reach the caller)."""
            objs = rebuild(pargs)
            before = {
                (i, tuple(p)): v._raw_value
                for i in node_args
                for p, v in to_flat_state(graph_state(objs[i]))
            }
            result = call(*objs)
            changed.clear()
            values = []
            for i in node_args:
                for p, v in to_flat_state(graph_state(objs[i])):
                    if before.get((i, tuple(p)), _MISSING) is not v._raw_value:
                        changed.append((i, tuple(p)))
                        values.append(_primal_value(v._raw_value))
            return result, values

        @jax.custom_vjp
        def pure(*pargs: tp.Any) -> tp.Any:
            return run(fun, pargs)

        def pure_fwd(*pargs: tp.Any) -> tp.Any:
            (out, res), values = run(fwd, pargs)
            return (out, values), res

        def pure_bwd(res: tp.Any, g: tp.Any) -> tuple[tp.Any, ...]:
            out_g, values_g = g
            by_arg: dict[int, list[tuple[tp.Any, tp.Any]]] = {i: [] for i in node_args}
            for (i, path), ct in zip(changed, values_g):
                by_arg[i].append((path, ct))
            if self.updates_g:
                updates_g = tuple(
                    _zeros_state(p, by_arg[i]) if i in graphdefs else None
                    for i, p in zip(dynamic, pure_args)
                )
                cts = bwd(*nondiff.values(), res, (updates_g, out_g))
            else:
                kwargs = {}
                if _accepts_updates_g(bwd):
                    kwargs["updates_g"] = tuple(
                        _updates_like(
                            graphdefs[i], (pure_args[dynamic.index(i)], fixed[i]), by_arg[i]
                        )
                        if i in by_arg
                        else None
                        for i in range(len(args))
                    )
                cts = bwd(*nondiff.values(), res, out_g, **kwargs)
            if not isinstance(cts, tuple):
                cts = (cts,)
            if len(cts) != len(dynamic):
                raise TypeError(
                    f"nnx.custom_vjp({name}): bwd returned {len(cts)} cotangent(s); expected "
                    f"{len(dynamic)}, one per differentiable argument (nondiff_argnums "
                    "excluded). Fix: return a tuple with one entry per argument."
                )
            return tuple(
                _fill_state(p, ct) if i in graphdefs else ct
                for i, p, ct in zip(dynamic, pure_args, cts)
            )

        pure.defvjp(pure_fwd, pure_bwd, symbolic_zeros=bool(self.symbolic_zeros))
        out, values = pure(*pure_args)
        for i in node_args:
            mine = [(path, v) for (j, path), v in zip(changed, values) if j == i]
            if mine:
                update(args[i], from_flat_state(mine))
        return out


_MISSING = object()


def _primal_value(x: tp.Any) -> tp.Any:
    """The array inside a ``CustomVJPPrimal`` (fwd with ``symbolic_zeros=True``)."""
    return x.value if isinstance(x, jax.custom_derivatives.CustomVJPPrimal) else x


def _accepts_updates_g(bwd: tp.Callable[..., tp.Any]) -> bool:
    try:
        parameters = inspect.signature(bwd).parameters
    except (TypeError, ValueError):
        return False
    return "updates_g" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _updates_like(
    graphdef: tp.Any, states: tuple[State, State], given: tp.Sequence[tuple[tp.Any, tp.Any]]
) -> tp.Any:
    """Flax's tree-mode ``updates_g`` entry: a copy of the graph node (``graphdef``
    and its ``states``) whose Variables that the function changed hold their
    cotangents and whose other Variables are None."""
    by_path = {tuple(p): v for p, v in given}
    pairs = [
        (path, var.replace(by_path.get(tuple(path))))
        for state in states
        for path, var in to_flat_state(state)
    ]
    copy = merge(graphdef, from_flat_state(pairs))
    for path, _ in pairs:
        if tuple(path) in by_path:
            continue
        parent: tp.Any = copy
        key: tp.Any
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent, (list, dict)) else getattr(parent, key)
        key = path[-1]
        if isinstance(parent, (list, dict)):
            parent[key] = None
        else:
            setattr(parent, str(key), None)
    return copy


def _holds_tracer(x: tp.Any) -> bool:
    """Whether a graph node (or a tree holding some) has a Variable holding a tracer."""
    nodes = [x] if is_node(x) else [n for n in jax.tree.leaves(x, is_leaf=is_node) if is_node(n)]
    for node in nodes:
        variables = (
            [node]
            if isinstance(node, Variable)
            else [v for _, v in to_flat_state(graph_state(node))]
        )
        for var in variables:
            raw = var._raw_value if isinstance(var, Variable) else var
            if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(raw)):
                return True
    return False


def _zeros_state(template: State, given: tp.Sequence[tuple[tp.Any, tp.Any]] = ()) -> State:
    """Zeros shaped like ``template``, with the cotangents ``given`` by path (the
    Variables the function changed) filled in."""
    by_path = dict(given)
    pairs = []
    for path, var in to_flat_state(template):
        raw = var._raw_value if isinstance(var, Variable) else var
        value = by_path.get(tuple(path))
        if value is None or isinstance(value, SymbolicZero):
            value = jnp.zeros_like(_primal_value(raw))
        pairs.append((path, var.replace(value) if isinstance(var, Variable) else value))
    return from_flat_state(pairs)


def _fill_state(template: State, ct: tp.Any) -> State:
    """A cotangent State shaped like ``template`` from what ``bwd`` returned (a
    State/mapping or a graph node holding gradients; zeros where it has nothing)."""
    if is_node(ct):
        ct = graph_state(ct)
    given = dict(to_flat_state(ct)) if isinstance(ct, tp.Mapping) else {}
    pairs = []
    for path, var in to_flat_state(template):
        value = given.get(path)
        if isinstance(value, Variable):
            value = value.get_value()
        raw = var._raw_value if isinstance(var, Variable) else var
        if not jnp.issubdtype(jnp.result_type(raw), jnp.inexact):
            value = np.zeros(jnp.shape(raw), jax.dtypes.float0)  # no cotangent for ints/keys
        elif value is None:
            value = jnp.zeros(jnp.shape(raw), jnp.result_type(raw))
        pairs.append((path, var.replace(value) if isinstance(var, Variable) else value))
    return from_flat_state(pairs)


def custom_vjp(
    fun: tp.Any = None,
    *,
    nondiff_argnums: tuple[int | DiffState, ...] = (),
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.custom_vjp`` for functions of graph nodes.

    Graph-node arguments reach ``fun``/``fwd`` as objects. ``bwd(*nondiff, res, g)``
    returns one cotangent per differentiable argument: for a graph-node argument
    a State (or an object holding gradients; missing entries are zero). As in
    Flax's graph mode, ``g`` is ``(input_updates_g, out_g)`` where
    ``input_updates_g`` holds a State per graph-node argument shaped like its
    differentiated state (a template to fill): the cotangents of the Variables
    ``fun``/``fwd`` changed, zeros elsewhere. With ``graph_updates=False`` or
    ``graph=False``, ``g`` is ``out_g``, and a ``bwd`` declaring an ``updates_g``
    keyword gets per argument a copy of the graph node holding those cotangents in
    the changed Variables and None in the others (None for non-graph arguments).
    Variable updates made by ``fun``/``fwd`` reach the caller's objects.
    ``nondiff_argnums`` takes ints (non-graph arguments, and with
    ``graph_updates=False`` also Modules; passed to ``bwd`` first) and
    :class:`DiffState` (only the matching Variables of that argument are
    differentiated).

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.array(2.0))
        >>> @nnx.custom_vjp
        ... def f(m, x):
        ...     return m.w.value * x
        >>> def f_fwd(m, x):
        ...     return f(m, x), (m.w.value, x)
        >>> def f_bwd(res, g):
        ...     _, out_g = g
        ...     w, x = res
        ...     return nnx.State({"w": 10 * out_g * x}), out_g * w
        >>> f.defvjp(f_fwd, f_bwd)
        >>> g = nnx.grad(lambda m: f(m, jnp.array(1.0)))(M())
        >>> float(g["w"].value)
        10.0
    """
    # the default mode (graph=True, graph_updates=True, or the current defaults of
    # nnx.set_graph_mode / nnx.set_graph_updates) hands bwd the updates' cotangents
    updates_g = resolve("nnx.custom_vjp", graph, graph_updates) is None
    if fun is None:
        return lambda f: CustomVjp(f, tuple(nondiff_argnums), updates_g)
    return CustomVjp(fun, tuple(nondiff_argnums), updates_g)
