"""``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``custom_vjp`` and ``remat``.

The differentiated inputs are the Variables of graph-node arguments chosen by a
filter (``Param`` by default, :class:`DiffState` to choose) plus plain array
arguments; every other Variable update made inside reaches the caller's objects
as an auxiliary output.  Gradients w.r.t. a graph-node argument come back as a
:class:`State` of Variables shaped like the argument's (differentiated) state.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np

from nnx_graph._filters import to_predicate
from nnx_graph._state import State, from_flat_state, to_flat_state
from nnx_graph._variables import Param, Variable
from nnx_graph.transforms._bridge import fill_tree, is_hole, is_node, split_tree
from nnx_graph.transforms._lift import Lifted, positions_of_nodes

__all__ = ["CustomVjp", "DiffState", "custom_vjp", "grad", "jvp", "remat", "value_and_grad", "vjp"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])


@dataclasses.dataclass(frozen=True)
class DiffState:
    """Differentiate argument ``argnum`` w.r.t. the Variables matching ``filter``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2)); self.s = nnx.BatchStat(jnp.ones(2))
        >>> g = nnx.grad(lambda m: (m.w * m.s).sum(), argnums=nnx.DiffState(0, nnx.BatchStat))(M())
        >>> list(g)
        ['s']
    """

    argnum: int
    filter: tp.Any


def _has_nodes(x: tp.Any) -> bool:
    if is_node(x):
        return True
    return any(is_node(leaf) for leaf in jax.tree.leaves(x, is_leaf=is_node))


class _Diff:
    """The differentiable inputs of one call: chosen Variables of graph-node
    arguments (``index``) and whole plain arguments (``plain``)."""

    def __init__(
        self,
        name: str,
        f: tp.Callable[..., tp.Any],
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        filters: tp.Mapping[int, tp.Any],
    ) -> None:
        self.args = args
        self.lifted = lifted = Lifted(name, args, kwargs, fun=f)
        bridge = lifted.bridge
        self.node_pos = positions_of_nodes(args)
        leaf_pos = [self.node_pos[p[0]] if p[0] < len(self.node_pos) else -1 for p in bridge.paths]
        predicates = {argnum: to_predicate(flt) for argnum, flt in filters.items()}
        self.index = [
            i
            for i, (pos, path, leaf) in enumerate(zip(leaf_pos, bridge.paths, bridge.leaves))
            if pos in predicates and predicates[pos](path[1:], leaf)
        ]
        self.owner = [leaf_pos[i] for i in self.index]
        self.plain = [a for a in filters if not _has_nodes(args[a])]
        # where each positional argument's non-graph leaves sit among lifted.dyn
        self.dyn_start: list[int] = []
        start = 0
        for a in args:
            self.dyn_start.append(start)
            start += len(jax.tree.leaves(split_tree(a)[0]))
        self.values = lifted.values()

    def primals(self) -> tuple[list[tp.Any], list[tp.Any]]:
        return [self.values[i] for i in self.index], [self.args[a] for a in self.plain]

    def enter(
        self, diff_values: tp.Sequence[tp.Any], plain_values: tp.Sequence[tp.Any]
    ) -> tuple[list[tp.Any], tuple[tp.Any, ...], tuple[tp.Any, ...], dict[str, tp.Any]]:
        """Inside: fresh objects with the differentiated values substituted; returns
        ``(full_values, roots, args, kwargs)``."""
        full = list(self.values)
        for i, v in zip(self.index, diff_values):
            full[i] = v
        dyn = list(self.lifted.dyn)
        for a, v in zip(self.plain, plain_values):
            leaves = jax.tree.leaves(v)
            dyn[self.dyn_start[a] : self.dyn_start[a] + len(leaves)] = leaves
        roots, args, kwargs = self.lifted.enter(full, dyn)
        return full, roots, args, kwargs

    def finish(
        self, roots: tuple[tp.Any, ...], full: list[tp.Any], aux: tp.Any, allow_structure: bool
    ) -> tuple[tp.Any, tp.Any]:
        """Inside: ``(aux_tree, updates)`` where updates holds the changed leaves
        (or every leaf after a structural change)."""
        aux_tree, new_values = self.lifted.finish(roots, aux, allow_structure=allow_structure)
        if not self.lifted.exits[-1].same_structure:
            return aux_tree, new_values
        return aux_tree, {i: v for i, v in enumerate(new_values) if v is not full[i]}

    def apply(self, aux_tree: tp.Any, updates: tp.Any) -> tp.Any:
        """Outside: write updates back; return the auxiliary output."""
        lifted = self.lifted
        if lifted.exits[-1].same_structure:
            lifted.bridge.apply_changes(updates)
            return aux_tree
        return lifted.apply(aux_tree, updates)

    def per_argument(self, argnum: int, leaf_values: tp.Sequence[tp.Any]) -> tp.Any:
        """Values for the differentiated leaves of argument ``argnum``, shaped like
        the argument: a State per graph node (Variables of the same types)."""
        bridge = self.lifted.bridge
        roots = [k for k, p in enumerate(self.node_pos) if p == argnum]
        pairs: dict[int, list[tuple[tp.Any, tp.Any]]] = {k: [] for k in roots}
        for i, value, pos in zip(self.index, leaf_values, self.owner):
            if pos == argnum:
                path = bridge.paths[i]
                leaf = bridge.leaves[i]
                pairs[path[0]].append(
                    (path[1:], leaf.replace(value) if isinstance(leaf, Variable) else value)
                )
        states = [from_flat_state(pairs[k]) for k in roots]
        return fill_tree(split_tree(self.args[argnum])[0], states)


def _diff_spec(argnums: tp.Any, name: str) -> tuple[dict[int, tp.Any], list[int], bool]:
    single = isinstance(argnums, (int, DiffState))
    items = [argnums] if single else list(argnums)
    filters: dict[int, tp.Any] = {}
    order: list[int] = []
    for a in items:
        if isinstance(a, DiffState):
            argnum, the_filter = a.argnum, a.filter
        elif isinstance(a, int):
            argnum, the_filter = a, Param
        else:
            raise TypeError(
                f"nnx.{name}: argnums entries must be ints or nnx.DiffState, found "
                f"{type(a).__name__}. Fix: argnums=0, argnums=(0, 1) or "
                "argnums=nnx.DiffState(0, nnx.Param)."
            )
        if argnum in filters:
            raise ValueError(f"nnx.{name}: argnums names argument {argnum} twice.")
        filters[argnum] = the_filter
        order.append(argnum)
    return filters, order, single


def _check_scalar(value: tp.Any, name: str) -> None:
    shape = getattr(value, "shape", None)
    if shape is not None and tuple(shape) != ():
        raise TypeError(
            f"nnx.{name}: the differentiated function must return a scalar; found an array "
            f"of shape {tuple(shape)}. Fix: reduce it (e.g. .mean()), or use nnx.vjp for "
            "non-scalar outputs."
        )


def _grad_impl(
    f: tp.Callable[..., tp.Any],
    argnums: tp.Any,
    has_aux: bool,
    holomorphic: bool,
    allow_int: bool,
    return_value: bool,
    name: str,
) -> tp.Callable[..., tp.Any]:
    filters, order, single = _diff_spec(argnums, name)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        for argnum in order:
            if argnum >= len(args):
                raise TypeError(
                    f"nnx.{name}: argnums refers to argument {argnum} but the function was "
                    f"called with {len(args)} positional argument(s). Fix: pass it "
                    "positionally or change argnums."
                )
        diff = _Diff(name, f, args, kwargs, filters)

        def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
            full, roots, call_args, call_kwargs = diff.enter(diff_values, plain_values)
            out = f(*call_args, **call_kwargs)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(
                        f"nnx.{name}(has_aux=True): the function must return (value, aux); "
                        f"found {type(out).__name__}. Fix: return a pair or drop has_aux."
                    )
                value, aux = out
            else:
                value, aux = out, None
            _check_scalar(value, name)
            return value, diff.finish(roots, full, aux, allow_structure=True)

        grad_fn = jax.value_and_grad(
            pure, argnums=(0, 1), has_aux=True, holomorphic=holomorphic, allow_int=allow_int
        )
        (value, (aux_tree, updates)), (diff_grads, plain_grads) = grad_fn(*diff.primals())
        aux = diff.apply(aux_tree, updates)
        grads_by_arg = {
            argnum: (
                plain_grads[diff.plain.index(argnum)]
                if argnum in diff.plain
                else diff.per_argument(argnum, diff_grads)
            )
            for argnum in order
        }
        grads = grads_by_arg[order[0]] if single else tuple(grads_by_arg[a] for a in order)
        if return_value:
            return ((value, aux), grads) if has_aux else (value, grads)
        return (grads, aux) if has_aux else grads

    return wrapper


def grad(
    f: tp.Any = None,
    *,
    argnums: tp.Any = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
    reduce_axes: tp.Sequence[tp.Any] = (),
    graph: tp.Any = None,
    graph_updates: tp.Any = None,
) -> tp.Any:
    """Gradient of a scalar function w.r.t. graph-node arguments (their ``Param``
    Variables by default; choose with :class:`DiffState`) and/or array arguments.

    For a Module argument the gradient is a :class:`State` of Variables with the
    same paths and types, holding gradients (for a tuple of Modules, a tuple of
    States). Other Variable updates made inside (BatchNorm statistics, RNG counts)
    reach the caller's objects.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.array([1.0, 2.0]))
        >>> grads = nnx.grad(lambda m: (m.w.value ** 2).sum())(M())
        >>> grads["w"].value.tolist()
        [2.0, 4.0]
    """
    if f is None:
        return functools.partial(
            grad, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic, allow_int=allow_int
        )
    return _grad_impl(f, argnums, has_aux, holomorphic, allow_int, False, "grad")


def value_and_grad(
    f: tp.Any = None,
    *,
    argnums: tp.Any = 0,
    has_aux: bool = False,
    holomorphic: bool = False,
    allow_int: bool = False,
    reduce_axes: tp.Sequence[tp.Any] = (),
    graph: tp.Any = None,
    graph_updates: tp.Any = None,
) -> tp.Any:
    """Like :func:`grad` but returns ``(value, grads)`` (``((value, aux), grads)``
    with ``has_aux=True``).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.array(3.0))
        >>> loss, grads = nnx.value_and_grad(lambda m: m.w.value ** 2)(M())
        >>> float(loss), float(grads["w"].value)
        (9.0, 6.0)
    """
    if f is None:
        return functools.partial(
            value_and_grad,
            argnums=argnums,
            has_aux=has_aux,
            holomorphic=holomorphic,
            allow_int=allow_int,
        )
    return _grad_impl(f, argnums, has_aux, holomorphic, allow_int, True, "value_and_grad")


# --------------------------------------------------------------------- vjp / jvp
def _all_positions(primals: tuple[tp.Any, ...], wrt: tp.Any) -> dict[int, tp.Any]:
    return dict.fromkeys(range(len(primals)), wrt)


def vjp(
    f: tp.Any = None,
    *primals: tp.Any,
    has_aux: bool = False,
    wrt: tp.Any = Param,
    reduce_axes: tp.Sequence[tp.Any] = (),
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.vjp`` for functions of graph nodes: differentiates w.r.t. array
    arguments and the ``wrt`` Variables (default ``Param``) of graph-node arguments.
    ``vjp_fn(cotangent)`` returns one entry per primal: a State for graph nodes.
    Other Variable updates made inside reach the caller's objects.
    ``nnx.vjp(f)`` and ``nnx.vjp(has_aux=...)`` return ``f`` ready to be called
    with the primals.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.array(2.0))
        >>> out, vjp_fn = nnx.vjp(lambda m, x: m.w.value * x, M(), jnp.array(3.0))
        >>> g_model, g_x = vjp_fn(jnp.array(1.0))
        >>> float(g_model["w"].value), float(g_x)
        (3.0, 2.0)
    """
    if f is None:
        return functools.partial(vjp, has_aux=has_aux, wrt=wrt)
    if not primals:
        return functools.partial(vjp, f, has_aux=has_aux, wrt=wrt)
    diff = _Diff("vjp", f, primals, {}, _all_positions(primals, wrt))

    def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
        full, roots, args, _ = diff.enter(diff_values, plain_values)
        out = f(*args)
        main, aux = out if has_aux else (out, None)
        return main, diff.finish(roots, full, aux, allow_structure=False)

    out, raw_vjp, (aux_tree, updates) = jax.vjp(pure, *diff.primals(), has_aux=True)
    aux = diff.apply(aux_tree, updates)

    def vjp_fn(cotangent: tp.Any) -> tuple[tp.Any, ...]:
        diff_ct, plain_ct = raw_vjp(cotangent)
        return tuple(
            plain_ct[diff.plain.index(i)] if i in diff.plain else diff.per_argument(i, diff_ct)
            for i in range(len(primals))
        )

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _tangent_values(diff: _Diff, tangents: tuple[tp.Any, ...]) -> list[tp.Any]:
    """The tangent of every differentiated leaf, looked up by path in what was given
    as the tangent of its graph node (a State, or an object of the same structure);
    zeros when missing."""
    from nnx_graph._graph import state as graph_state

    bridge = diff.lifted.bridge
    per_root: dict[int, dict[tuple[tp.Any, ...], tp.Any]] = {}
    for pos in sorted(set(diff.owner)):
        given: list[tp.Any] = []  # the tangent at each graph node of the argument

        def collect(hole: tp.Any, t: tp.Any, given: list[tp.Any] = given) -> None:
            if is_hole(hole):
                given.append(t)

        jax.tree.map(
            collect,
            split_tree(diff.args[pos])[0],
            tangents[pos],
            is_leaf=lambda x: is_hole(x) or x is None,
        )
        roots = [k for k, p in enumerate(diff.node_pos) if p == pos]
        for k, t in zip(roots, given):
            if is_node(t) and not isinstance(t, Variable):
                t = graph_state(t)
            per_root[k] = dict(to_flat_state(t)) if isinstance(t, tp.Mapping) else {(): t}
    out = []
    for i in diff.index:
        path = bridge.paths[i]
        t = per_root.get(path[0], {}).get(tuple(path[1:]))
        if isinstance(t, Variable):
            t = t.get_value()
        out.append(jnp.zeros_like(diff.values[i]) if t is None else t)
    return out


def jvp(
    f: tp.Any = None,
    primals: tuple[tp.Any, ...] | None = None,
    tangents: tuple[tp.Any, ...] | None = None,
    *,
    has_aux: bool = False,
    wrt: tp.Any = Param,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.jvp`` for functions of graph nodes. A graph-node primal's tangent is a
    State over its ``wrt`` Variables (or an object of the same structure holding
    tangents; missing entries are zero). Other Variable updates made inside reach
    the caller's objects.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.array(2.0))
        >>> m = M()
        >>> out, t = nnx.jvp(lambda m: m.w.value ** 2, (m,), (nnx.State({"w": jnp.array(1.0)}),))
        >>> float(out), float(t)
        (4.0, 4.0)
    """
    if f is None:
        return functools.partial(jvp, has_aux=has_aux, wrt=wrt)
    if primals is None or tangents is None:
        return functools.partial(jvp, f, has_aux=has_aux, wrt=wrt)
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(
            f"nnx.jvp: got {len(primals)} primals but {len(tangents)} tangents. Expected one "
            "tangent per primal (a State for a Module). Fix: pass matching tuples."
        )
    diff = _Diff("jvp", f, primals, {}, _all_positions(primals, wrt))

    def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
        full, roots, args, _ = diff.enter(diff_values, plain_values)
        out = f(*args)
        main, aux = out if has_aux else (out, None)
        return main, diff.finish(roots, full, aux, allow_structure=False)

    diff_tangents = _tangent_values(diff, tangents)
    plain_tangents = [tangents[i] for i in diff.plain]
    (out, (aux_tree, updates)), (t_out, _) = jax.jvp(
        pure, diff.primals(), (diff_tangents, plain_tangents)
    )
    aux = diff.apply(aux_tree, updates)
    return (out, t_out, aux) if has_aux else (out, t_out)


# --------------------------------------------------------------------- custom_vjp
class CustomVjp(tp.Generic[F]):
    """What :func:`custom_vjp` returns: call it like the function; set the rule
    with ``defvjp(fwd, bwd)``."""

    def __init__(
        self, fun: F, nondiff_argnums: tuple[int | DiffState, ...] = (), updates_g: bool = True
    ) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff = tuple(a for a in nondiff_argnums if isinstance(a, int))
        self.diff_filters = {
            a.argnum: a.filter for a in nondiff_argnums if isinstance(a, DiffState)
        }
        self.updates_g = updates_g
        self.fwd: tp.Callable[..., tp.Any] | None = None
        self.bwd: tp.Callable[..., tp.Any] | None = None

    def defvjp(self, fwd: tp.Callable[..., tp.Any], bwd: tp.Callable[..., tp.Any]) -> None:
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: tp.Any) -> tp.Any:
        from nnx_graph._graph import merge, split

        name = getattr(self.fun, "__name__", "function")
        if self.fwd is None or self.bwd is None:
            raise TypeError(
                f"nnx.custom_vjp({name}): defvjp(fwd, bwd) was not called. "
                "Fix: call f.defvjp(f_fwd, f_bwd) before using f."
            )
        for i in self.nondiff:
            if i < len(args) and _has_nodes(args[i]):
                raise TypeError(
                    f"nnx.custom_vjp({name}): argument {i} holds Modules/Variables and is "
                    "listed in nondiff_argnums as an int. Expected ints only for non-graph "
                    f"arguments. Fix: use nnx.DiffState({i}, filter) to choose which of its "
                    "Variables are differentiated."
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
                    graphdefs[i], diff_state, fixed[i] = split(a, self.diff_filters[i], ...)
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

        @jax.custom_vjp
        def pure(*pargs: tp.Any) -> tp.Any:
            return fun(*rebuild(pargs))

        def pure_fwd(*pargs: tp.Any) -> tp.Any:
            return fwd(*rebuild(pargs))

        def pure_bwd(res: tp.Any, g: tp.Any) -> tuple[tp.Any, ...]:
            if self.updates_g:
                zeros = tuple(
                    _zeros_state(p) if i in graphdefs else None for i, p in zip(dynamic, pure_args)
                )
                g = (zeros, g)
            cts = bwd(*nondiff.values(), res, g)
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

        pure.defvjp(pure_fwd, pure_bwd)
        return pure(*pure_args)


def _zeros_state(template: State) -> State:
    return tp.cast(State, jax.tree.map(jnp.zeros_like, template))


def _fill_state(template: State, ct: tp.Any) -> State:
    """A cotangent State shaped like ``template`` from what ``bwd`` returned (a
    State/mapping or a graph node holding gradients; zeros where it has nothing)."""
    if is_node(ct):
        from nnx_graph._graph import state as graph_state

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
    ``input_updates_g`` holds a zero State per graph-node argument (a template to
    fill); with ``graph_updates=False`` or ``graph=False``, ``g`` is ``out_g``.
    ``nondiff_argnums`` takes ints (non-graph arguments, passed to ``bwd`` first)
    and :class:`DiffState` (only the matching Variables of that argument are
    differentiated). Variable updates inside ``fun`` are not carried out.

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
    updates_g = graph is not False and graph_updates is not False
    if fun is None:
        return lambda f: CustomVjp(f, tuple(nondiff_argnums), updates_g)
    return CustomVjp(fun, tuple(nondiff_argnums), updates_g)


# --------------------------------------------------------------------- remat
def remat(
    f: tp.Any = None,
    *,
    prevent_cse: bool = True,
    static_argnums: int | tuple[int, ...] = (),
    policy: tp.Callable[..., bool] | None = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.checkpoint`` (rematerialisation) for functions of graph nodes: the
    forward activations are recomputed in the backward pass instead of stored.
    Variable updates made inside reach the caller's objects.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.array(2.0))
        >>> loss = nnx.remat(lambda m, x: m.w.value * x)
        >>> float(nnx.grad(lambda m: loss(m, 3.0))(M())["w"].value)
        3.0
    """
    if f is None:
        return functools.partial(
            remat, prevent_cse=prevent_cse, static_argnums=static_argnums, policy=policy
        )
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        fixed = {p % len(args): args[p] for p in statics if -len(args) <= p < len(args)}
        dynamic = tuple(a for i, a in enumerate(args) if i not in fixed)

        def call(*dyn_args: tp.Any, **kw: tp.Any) -> tp.Any:
            it = iter(dyn_args)
            return f(*[fixed[i] if i in fixed else next(it) for i in range(len(args))], **kw)

        lifted = Lifted("remat", dynamic, kwargs, fun=f if not fixed else None)

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            out, roots = lifted.call(call, values, dyn)
            return lifted.finish(roots, out, allow_structure=False)

        out_tree, new_values = jax.checkpoint(pure, prevent_cse=prevent_cse, policy=policy)(
            lifted.values(), lifted.dyn
        )
        return lifted.apply(out_tree, new_values)

    return wrapper
