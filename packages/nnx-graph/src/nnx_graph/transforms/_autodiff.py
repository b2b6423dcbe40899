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
import inspect
import typing as tp

import jax
import jax.numpy as jnp

from nnx_graph._filters import to_predicate
from nnx_graph._graph import state as graph_state
from nnx_graph._hijax import reject_differentiated
from nnx_graph._state import from_flat_state, to_flat_state
from nnx_graph._variables import Param, Variable
from nnx_graph.transforms._bridge import fill_tree, is_hole, is_node, split_tree
from nnx_graph.transforms._lift import Lifted, positions_of_nodes
from nnx_graph.transforms._modes import (
    as_module,
    check_prefix,
    module_grads,
    reject_bound_method,
    resolve,
    with_mode,
)

__all__ = ["DiffState", "grad", "jvp", "remat", "value_and_grad", "vjp"]

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
        >>> nnx.DiffState(0, nnx.Param).map_prefix(("w",), nnx.Param(jnp.ones(2)))
        True
    """

    argnum: int
    filter: tp.Any

    def map_prefix(self, path: tuple[tp.Any, ...], variable: tp.Any) -> bool:
        """Whether the Variable at ``path`` (inside argument ``argnum``) is
        differentiated, i.e. matches ``filter``."""
        return bool(to_predicate(self.filter)(path, variable))


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
        allow_int: bool = False,
    ) -> None:
        self.args = args
        self.lifted = lifted = Lifted(name, args, kwargs, fun=f)
        bridge = lifted.bridge
        self.node_pos = positions_of_nodes(args)
        leaf_pos = [self.node_pos[p[0]] if p[0] < len(self.node_pos) else -1 for p in bridge.paths]
        predicates = {argnum: to_predicate(flt) for argnum, flt in filters.items()}
        # graph=False / graph_updates=False: a graph node is a plain pytree, all of
        # its (differentiable) Variables are differentiated, as with jax.grad
        self.tree_mode = tree_mode = bridge.mode is not None

        def chosen(pos: int, path: tuple[tp.Any, ...], leaf: tp.Any) -> bool:
            if pos not in predicates:
                return False
            if (len(path) == 1 and isinstance(leaf, Variable)) or tree_mode:
                # a Variable given directly (or in a State/dict/list), as in Flax:
                # differentiated whatever the filter, unless it cannot be
                return allow_int or _inexact(leaf._raw_value)
            return bool(predicates[pos](path[1:], leaf))

        self.index = [
            i
            for i, (pos, path, leaf) in enumerate(zip(leaf_pos, bridge.paths, bridge.leaves))
            if chosen(pos, path, leaf)
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

    def pure(
        self,
        f: tp.Callable[..., tp.Any],
        split: tp.Callable[[tp.Any], tuple[tp.Any, tp.Any]],
        *,
        allow_structure: bool,
    ) -> tp.Callable[[list[tp.Any], list[tp.Any]], tp.Any]:
        """``Lifted.pure`` over the differentiated inputs only:
        ``(diff_values, plain_values) -> (main, (aux_tree, updates))``."""
        inner = self.lifted.pure(f, allow_structure=allow_structure, split=split)

        def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
            full = list(self.values)
            for i, v in zip(self.index, diff_values):
                full[i] = v
            dyn = list(self.lifted.dyn)
            for a, v in zip(self.plain, plain_values):
                leaves = jax.tree.leaves(v)
                dyn[self.dyn_start[a] : self.dyn_start[a] + len(leaves)] = leaves
            return inner(full, dyn)

        return pure

    def per_argument(self, argnum: int, leaf_values: tp.Sequence[tp.Any]) -> tp.Any:
        """Values for the differentiated leaves of argument ``argnum``, shaped like
        the argument: a State per graph node (Variables of the same types)."""
        bridge = self.lifted.bridge
        roots = [k for k, p in enumerate(self.node_pos) if p == argnum]
        pairs: dict[int, list[tuple[tp.Any, tp.Any]]] = {k: [] for k in roots}
        made: dict[int, tp.Any] = {}  # id of an input Variable -> its gradient Variable
        for i, value, pos in zip(self.index, leaf_values, self.owner):
            if pos == argnum:
                path = bridge.paths[i]
                leaf = bridge.leaves[i]
                if isinstance(leaf, Variable):
                    value = made[id(leaf)] = leaf.replace(value)
                pairs[path[0]].append((path[1:], value))
        if self.tree_mode:
            # tree mode: a Variable given at two places gets its gradient (the same
            # gradient Variable) at both
            for k in roots:
                node = self.lifted.nodes[k]
                if not pairs[k] and id(node) in made:
                    pairs[k].append(((), made[id(node)]))
        # a Variable passed directly (or inside a State/dict) is its own root: its
        # gradient is that Variable, not a State with one empty path
        states = [
            pairs[k][0][1]
            if len(pairs[k]) == 1 and pairs[k][0][0] == ()
            else from_flat_state(pairs[k])
            for k in roots
        ]
        return fill_tree(split_tree(self.args[argnum])[0], states)


def _inexact(value: tp.Any) -> bool:
    """Whether JAX can differentiate ``value`` (a float or complex array/scalar)."""
    try:
        return bool(jnp.issubdtype(jnp.result_type(value), jnp.inexact))
    except (TypeError, ValueError):
        return False


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
    if inspect.ismethod(f) and is_node(f.__self__):
        owner = type(f.__self__).__name__
        raise ValueError(
            f"nnx.{name} does not support bound methods: {owner}.{f.__name__} is bound to "
            f"a {owner}, whose Variables would be closed over instead of differentiated "
            f"(their gradients would be lost). Expected a function taking the Module as an "
            f"argument. Fix: use the decorator form @nnx.{name} on the method, or call "
            f"nnx.{name}({owner}.{f.__name__})(instance, ...) with the unbound method."
        )

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        for argnum in order:
            if argnum >= len(args):
                raise TypeError(
                    f"nnx.{name}: argnums refers to argument {argnum} but the function was "
                    f"called with {len(args)} positional argument(s). Fix: pass it "
                    "positionally or change argnums."
                )
        diff = _Diff(name, f, args, kwargs, filters, allow_int)

        def split(out: tp.Any) -> tuple[tp.Any, tp.Any]:
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
            return value, aux

        pure = diff.pure(f, split, allow_structure=True)
        grad_fn = jax.value_and_grad(
            pure, argnums=(0, 1), has_aux=True, holomorphic=holomorphic, allow_int=allow_int
        )
        try:
            (value, (aux_tree, updates)), (diff_grads, plain_grads) = grad_fn(*diff.primals())
        except Exception:  # explain a hijax Variable's box, if that was the cause
            describe = diff.lifted.bridge.describe_leaf
            reject_differentiated(name, diff.primals()[0], lambda i: describe(diff.index[i]))
            raise
        aux = diff.lifted.write_back(aux_tree, updates)
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
            grad,
            argnums=argnums,
            has_aux=has_aux,
            holomorphic=holomorphic,
            allow_int=allow_int,
            graph=graph,
            graph_updates=graph_updates,
        )
    check_prefix(argnums, "argnums", "grad", resolve("nnx.grad", graph, graph_updates), DiffState)
    grad_fn = _grad_impl(f, argnums, has_aux, holomorphic, allow_int, False, "grad")
    post = module_grads(argnums, has_aux, with_value=False)
    return with_mode(grad_fn, "nnx.grad", graph, graph_updates, post)


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
            graph=graph,
            graph_updates=graph_updates,
        )
    mode = resolve("nnx.value_and_grad", graph, graph_updates)
    check_prefix(argnums, "argnums", "value_and_grad", mode, DiffState)
    grad_fn = _grad_impl(f, argnums, has_aux, holomorphic, allow_int, True, "value_and_grad")
    post = module_grads(argnums, has_aux, with_value=True)
    return with_mode(grad_fn, "nnx.value_and_grad", graph, graph_updates, post)


# --------------------------------------------------------------------- vjp / jvp
def _aux_splitter(has_aux: bool) -> tp.Callable[[tp.Any], tuple[tp.Any, tp.Any]]:
    def split(out: tp.Any) -> tuple[tp.Any, tp.Any]:
        return tp.cast(tuple[tp.Any, tp.Any], out) if has_aux else (out, None)

    return split


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
        return functools.partial(
            vjp, has_aux=has_aux, wrt=wrt, graph=graph, graph_updates=graph_updates
        )
    if not primals:
        return functools.partial(
            vjp, f, has_aux=has_aux, wrt=wrt, graph=graph, graph_updates=graph_updates
        )
    make_diff = with_mode(_Diff, "nnx.vjp", graph, graph_updates)
    diff = make_diff("vjp", f, primals, {}, _all_positions(primals, wrt))
    pure = diff.pure(f, _aux_splitter(has_aux), allow_structure=False)
    out, raw_vjp, (aux_tree, updates) = jax.vjp(pure, *diff.primals(), has_aux=True)
    aux = diff.lifted.write_back(aux_tree, updates)

    def vjp_fn(cotangent: tp.Any) -> tuple[tp.Any, ...]:
        diff_ct, plain_ct = raw_vjp(cotangent)
        grads = [
            plain_ct[diff.plain.index(i)] if i in diff.plain else diff.per_argument(i, diff_ct)
            for i in range(len(primals))
        ]
        if diff.tree_mode:  # Flax's form: a copy of each graph node holding its grads
            grads = [as_module(p, g) for p, g in zip(primals, grads)]
        return tuple(grads)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _tangent_values(diff: _Diff, tangents: tuple[tp.Any, ...]) -> list[tp.Any]:
    """The tangent of every differentiated leaf, looked up by path in what was given
    as the tangent of its graph node (a State, or an object of the same structure);
    zeros when missing."""

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
        return functools.partial(
            jvp, has_aux=has_aux, wrt=wrt, graph=graph, graph_updates=graph_updates
        )
    if primals is None or tangents is None:
        return functools.partial(
            jvp, f, has_aux=has_aux, wrt=wrt, graph=graph, graph_updates=graph_updates
        )
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(
            f"nnx.jvp: got {len(primals)} primals but {len(tangents)} tangents. Expected one "
            "tangent per primal (a State for a Module). Fix: pass matching tuples."
        )
    make_diff = with_mode(_Diff, "nnx.jvp", graph, graph_updates)
    diff = make_diff("jvp", f, primals, {}, _all_positions(primals, wrt))
    pure = diff.pure(f, _aux_splitter(has_aux), allow_structure=False)
    diff_tangents = _tangent_values(diff, tangents)
    plain_tangents = [tangents[i] for i in diff.plain]
    (out, (aux_tree, updates)), (t_out, _) = jax.jvp(
        pure, diff.primals(), (diff_tangents, plain_tangents)
    )
    aux = diff.lifted.write_back(aux_tree, updates)
    return (out, t_out, aux) if has_aux else (out, t_out)


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
    Variable updates made inside reach the caller's objects, and so do structural
    changes (attributes added or deleted); Modules created inside may be returned.

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
            remat,
            prevent_cse=prevent_cse,
            static_argnums=static_argnums,
            policy=policy,
            graph=graph,
            graph_updates=graph_updates,
        )
    reject_bound_method(f, "remat")
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        fixed = {p % len(args): args[p] for p in statics if -len(args) <= p < len(args)}
        dynamic = tuple(a for i, a in enumerate(args) if i not in fixed)

        def call(*dyn_args: tp.Any, **kw: tp.Any) -> tp.Any:
            it = iter(dyn_args)
            return f(*[fixed[i] if i in fixed else next(it) for i in range(len(args))], **kw)

        lifted = Lifted("remat", dynamic, kwargs, fun=f if not fixed else None)
        pure = lifted.pure(call, allow_structure=True)
        out_tree, updates = jax.checkpoint(pure, prevent_cse=prevent_cse, policy=policy)(
            lifted.values(), lifted.dyn
        )
        return lifted.write_back(out_tree, updates)

    return with_mode(wrapper, "nnx.remat", graph, graph_updates)
