"""``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``custom_vjp`` and ``remat``."""

from __future__ import annotations

import dataclasses
import functools
import typing as tp

import jax
import jax.numpy as jnp

from nnx_graph._filters import to_predicate
from nnx_graph._state import State, from_flat_state
from nnx_graph._variables import Param, Variable
from nnx_graph.transforms._bridge import is_node
from nnx_graph.transforms._lift import Lifted, positions_of_nodes

__all__ = ["DiffState", "custom_vjp", "grad", "jvp", "remat", "value_and_grad", "vjp"]

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


def _diff_spec(argnums: tp.Any) -> tuple[list[tuple[int, tp.Any]], bool]:
    single = isinstance(argnums, (int, DiffState))
    items = [argnums] if single else list(argnums)
    spec = []
    for a in items:
        if isinstance(a, DiffState):
            spec.append((a.argnum, a.filter))
        elif isinstance(a, int):
            spec.append((a, Param))
        else:
            raise TypeError(
                f"argnums entries must be ints or nnx.DiffState, found {type(a).__name__}. "
                "Fix: argnums=0, argnums=(0, 1) or argnums=nnx.DiffState(0, nnx.Param)."
            )
    return spec, single


def _grad_impl(f: tp.Callable[..., tp.Any], argnums: tp.Any, has_aux: bool, holomorphic: bool,
               allow_int: bool, return_value: bool, name: str) -> tp.Callable[..., tp.Any]:
    spec, single = _diff_spec(argnums)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        for argnum, _ in spec:
            if argnum >= len(args):
                raise TypeError(
                    f"nnx.{name}: argnums refers to argument {argnum} but the function was "
                    f"called with {len(args)} positional argument(s). Fix: pass it "
                    "positionally or change argnums."
                )
        lifted = Lifted(name, args, kwargs)
        bridge = lifted.bridge
        node_positions = positions_of_nodes(args)
        leaf_pos = [node_positions[p[0]] if p[0] < len(node_positions) else -1
                    for p in bridge.paths]
        predicates = {argnum: to_predicate(flt) for argnum, flt in spec}
        diff_idx: list[int] = []
        owner: list[int] = []
        for i, (pos, path, leaf) in enumerate(zip(leaf_pos, bridge.paths, bridge.leaves)):
            predicate = predicates.get(pos)
            if predicate is not None and predicate(path[1:], leaf):
                diff_idx.append(i)
                owner.append(pos)
        # plain (non-graph) arguments that are differentiated
        plain_args = [argnum for argnum, _ in spec if not _has_nodes(args[argnum])]
        values = lifted.values()
        diff_set = set(diff_idx)
        base_values = list(values)

        def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
            full = list(base_values)
            for i, v in zip(diff_idx, diff_values):
                full[i] = v
            call_args = list(args)
            for argnum, v in zip(plain_args, plain_values):
                call_args[argnum] = v
            inner = Lifted(name, tuple(call_args), kwargs) if plain_args else lifted
            if plain_args:
                # graph nodes are unchanged by the substitution; reuse the bridge
                inner.bridge = bridge
                inner.exits = lifted.exits
                inner.changed_indices = lifted.changed_indices
            out, roots, _ = inner.call(f, full, inner.dyn)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(
                        f"nnx.{name}(has_aux=True): the function must return (value, aux); "
                        f"found {type(out).__name__}. Fix: return a pair or drop has_aux."
                    )
                value, aux = out
            else:
                value, aux = out, None
            if not (hasattr(value, "shape") and getattr(value, "shape", None) == ()):
                if not return_value or True:
                    _check_scalar(value, name)
            aux_tree, updates = lifted.finish(roots, aux, allow_structure=True, full=True)
            # don't report the differentiated leaves as updates (they are JVP-traced)
            keep = {i: u for i, u in enumerate(updates) if i not in diff_set
                    and (i >= len(base_values) or u is not full[i])} \
                if lifted.exits[-1].same_structure else updates
            return value, (aux_tree, keep)

        grad_fn = jax.value_and_grad(pure, argnums=(0, 1), has_aux=True,
                                     holomorphic=holomorphic, allow_int=allow_int)
        diff_values = [values[i] for i in diff_idx]
        plain_values = [args[a] for a in plain_args]
        (value, (aux_tree, updates)), (diff_grads, plain_grads) = grad_fn(diff_values,
                                                                          plain_values)
        aux = lifted.apply(aux_tree, updates)
        grads_by_arg: dict[int, tp.Any] = {}
        for argnum, _ in spec:
            if argnum in plain_args:
                grads_by_arg[argnum] = plain_grads[plain_args.index(argnum)]
            else:
                pairs = []
                for i, g, pos in zip(diff_idx, diff_grads, owner):
                    if pos != argnum:
                        continue
                    leaf = bridge.leaves[i]
                    path = bridge.paths[i][1:] if is_node(args[argnum]) else bridge.paths[i]
                    pairs.append((path, leaf.replace(g) if isinstance(leaf, Variable) else g))
                grads_by_arg[argnum] = from_flat_state(pairs)
        grads = grads_by_arg[spec[0][0]] if single else tuple(grads_by_arg[a] for a, _ in spec)
        if return_value:
            return ((value, aux), grads) if has_aux else (value, grads)
        return (grads, aux) if has_aux else grads

    return wrapper


def _check_scalar(value: tp.Any, name: str) -> None:
    shape = getattr(value, "shape", None)
    if shape is not None and shape != ():
        raise TypeError(
            f"nnx.{name}: the differentiated function must return a scalar; found an array "
            f"of shape {tuple(shape)}. Fix: reduce it (e.g. .mean()) or use nnx.vjp."
        )


def _has_nodes(x: tp.Any) -> bool:
    if is_node(x):
        return True
    return any(is_node(leaf) for leaf in jax.tree.leaves(x, is_leaf=is_node))


def grad(f: tp.Any = None, *, argnums: tp.Any = 0, has_aux: bool = False,
         holomorphic: bool = False, allow_int: bool = False,
         reduce_axes: tp.Sequence[tp.Any] = (), graph: tp.Any = None,
         graph_updates: tp.Any = None) -> tp.Any:
    """Gradient of a scalar function w.r.t. graph-node arguments (their ``Param``
    Variables by default; choose with :class:`DiffState`) and/or array arguments.

    For a Module argument the gradient is a :class:`State` of Variables with the
    same paths and types, holding gradients. Other Variable updates made inside
    (BatchNorm statistics, RNG counts) reach the caller's objects.

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
        return lambda fn: grad(fn, argnums=argnums, has_aux=has_aux, holomorphic=holomorphic,
                               allow_int=allow_int)
    return _grad_impl(f, argnums, has_aux, holomorphic, allow_int, False, "grad")


def value_and_grad(f: tp.Any = None, *, argnums: tp.Any = 0, has_aux: bool = False,
                   holomorphic: bool = False, allow_int: bool = False,
                   reduce_axes: tp.Sequence[tp.Any] = (), graph: tp.Any = None,
                   graph_updates: tp.Any = None) -> tp.Any:
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
        return lambda fn: value_and_grad(fn, argnums=argnums, has_aux=has_aux,
                                         holomorphic=holomorphic, allow_int=allow_int)
    return _grad_impl(f, argnums, has_aux, holomorphic, allow_int, True, "value_and_grad")


# --------------------------------------------------------------------- vjp / jvp
def _params_of(lifted: Lifted, args: tuple[tp.Any, ...], wrt: tp.Any) -> list[int]:
    predicate = to_predicate(wrt)
    return [i for i, (path, leaf) in enumerate(zip(lifted.bridge.paths, lifted.bridge.leaves))
            if predicate(path[1:], leaf)]


def _state_for(lifted: Lifted, args: tuple[tp.Any, ...], idx: list[int], vals: list[tp.Any],
               ) -> list[tp.Any]:
    """Per argument: a State (graph-node arg) of ``vals`` at ``idx``; None otherwise."""
    node_pos = positions_of_nodes(args)
    out: list[tp.Any] = [None] * len(args)
    groups: dict[int, list[tuple[tp.Any, tp.Any]]] = {}
    for i, v in zip(idx, vals):
        path = lifted.bridge.paths[i]
        pos = node_pos[path[0]]
        leaf = lifted.bridge.leaves[i]
        groups.setdefault(pos, []).append(
            (path[1:], leaf.replace(v) if isinstance(leaf, Variable) else v))
    for pos, pairs in groups.items():
        out[pos] = from_flat_state(pairs)
    return out


def vjp(f: tp.Callable[..., tp.Any], *primals: tp.Any, has_aux: bool = False,
        wrt: tp.Any = Param) -> tp.Any:
    """``jax.vjp`` for functions of graph nodes: differentiates w.r.t. array
    arguments and the ``wrt`` Variables (default ``Param``) of graph-node arguments.
    ``vjp_fn(cotangent)`` returns one entry per primal: a State for graph nodes.

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
    lifted = Lifted("vjp", primals, {})
    idx = _params_of(lifted, primals, wrt)
    values = lifted.values()
    plain = [i for i, p in enumerate(primals) if not _has_nodes(p)]

    def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
        full = list(values)
        for i, v in zip(idx, diff_values):
            full[i] = v
        call_args = list(primals)
        for i, v in zip(plain, plain_values):
            call_args[i] = v
        roots = lifted.bridge.enter(full)
        from nnx_graph.transforms._bridge import fill_tree

        call_args = [fill_tree(a, roots) if i not in plain else a
                     for i, a in enumerate(_with_holes(primals, call_args))]
        out = f(*call_args)
        main, aux = (out if has_aux else (out, None))
        aux_tree, _ = lifted.finish(roots, aux, allow_structure=False, full=True)
        return main, aux_tree

    result = jax.vjp(pure, [values[i] for i in idx], [primals[i] for i in plain], has_aux=True)
    out, raw_vjp, aux = result

    def vjp_fn(cotangent: tp.Any) -> tuple[tp.Any, ...]:
        diff_ct, plain_ct = raw_vjp(cotangent)
        per_arg = _state_for(lifted, primals, idx, diff_ct)
        for i, ct in zip(plain, plain_ct):
            per_arg[i] = ct
        return tuple(per_arg)

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _with_holes(primals: tuple[tp.Any, ...], call_args: list[tp.Any]) -> list[tp.Any]:
    from nnx_graph.transforms._bridge import _NodeHole

    out = []
    k = 0
    for original, new in zip(primals, call_args):
        from nnx_graph.transforms._bridge import split_tree

        tree, nodes = split_tree(original)
        if nodes:
            tree = jax.tree.map(lambda h, k=k: _NodeHole(h.k + k) if isinstance(h, _NodeHole)
                                else h, tree, is_leaf=lambda x: isinstance(x, _NodeHole))
            k += len(nodes)
            out.append(tree)
        else:
            out.append(new)
    return out


def jvp(f: tp.Callable[..., tp.Any], primals: tuple[tp.Any, ...], tangents: tuple[tp.Any, ...],
        *, has_aux: bool = False, wrt: tp.Any = Param) -> tp.Any:
    """``jax.jvp`` for functions of graph nodes. A graph-node primal's tangent is a
    State over its ``wrt`` Variables (missing entries are zero).

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
    lifted = Lifted("jvp", primals, {})
    idx = _params_of(lifted, primals, wrt)
    values = lifted.values()
    plain = [i for i, p in enumerate(primals) if not _has_nodes(p)]
    node_pos = positions_of_nodes(primals)
    diff_tangents = []
    for i in idx:
        path = lifted.bridge.paths[i]
        tangent_state = tangents[node_pos[path[0]]]
        t: tp.Any = tangent_state
        for key in path[1:]:
            t = t.get(key) if isinstance(t, tp.Mapping) else None
            if t is None:
                break
        if isinstance(t, Variable):
            t = t.get_value()
        diff_tangents.append(jnp.zeros_like(values[i]) if t is None else t)

    def pure(diff_values: list[tp.Any], plain_values: list[tp.Any]) -> tp.Any:
        full = list(values)
        for i, v in zip(idx, diff_values):
            full[i] = v
        roots = lifted.bridge.enter(full)
        from nnx_graph.transforms._bridge import fill_tree

        call_args = list(primals)
        for i, v in zip(plain, plain_values):
            call_args[i] = v
        call_args = [fill_tree(a, roots) if i not in plain else a
                     for i, a in enumerate(_with_holes(primals, call_args))]
        out = f(*call_args)
        main, aux = (out if has_aux else (out, None))
        aux_tree, _ = lifted.finish(roots, aux, allow_structure=False, full=True)
        return main, aux_tree

    (out, aux), (t_out, _) = jax.jvp(
        pure, ([values[i] for i in idx], [primals[i] for i in plain]),
        (diff_tangents, [tangents[i] for i in plain]),
    )
    return (out, t_out, aux) if has_aux else (out, t_out)


# --------------------------------------------------------------------- custom_vjp
class custom_vjp(tp.Generic[F]):  # noqa: N801 - mirrors jax.custom_vjp
    """``jax.custom_vjp`` for functions of graph nodes.

    Graph-node arguments reach ``fun``/``fwd`` as objects; ``bwd(residuals, g)``
    returns one cotangent per argument, a State (of the node's Variables, missing
    entries treated as zero) for graph-node arguments. Variable updates inside the
    function are not carried out (as with ``jax.custom_vjp``, keep it pure).

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
        ...     w, x = res
        ...     return nnx.State({"w": 10 * g * x}), g * w
        >>> f.defvjp(f_fwd, f_bwd)
        >>> g = nnx.grad(lambda m: f(m, jnp.array(1.0)))(M())
        >>> float(g["w"].value)
        10.0
    """

    def __init__(self, fun: F, nondiff_argnums: tuple[int, ...] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = nondiff_argnums
        self.fwd: tp.Callable[..., tp.Any] | None = None
        self.bwd: tp.Callable[..., tp.Any] | None = None

    def defvjp(self, fwd: tp.Callable[..., tp.Any], bwd: tp.Callable[..., tp.Any]) -> None:
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args: tp.Any) -> tp.Any:
        if self.fwd is None or self.bwd is None:
            raise TypeError(
                f"nnx.custom_vjp({self.fun.__name__}): defvjp(fwd, bwd) was not called. "
                "Fix: call f.defvjp(f_fwd, f_bwd) before using f."
            )
        from nnx_graph._graph import merge, split

        node_flags = [is_node(a) for a in args]
        graphdefs = {}
        pure_args = []
        for i, a in enumerate(args):
            if node_flags[i]:
                gdef, st = split(a)
                graphdefs[i] = gdef
                pure_args.append(jax.tree.map(lambda v: v, st))
            else:
                pure_args.append(a)
        fun, fwd, bwd = self.fun, self.fwd, self.bwd

        def rebuild(pargs: tp.Sequence[tp.Any]) -> list[tp.Any]:
            return [merge(graphdefs[i], p, copy=True) if i in graphdefs else p
                    for i, p in enumerate(pargs)]

        @jax.custom_vjp
        def pure(*pargs: tp.Any) -> tp.Any:
            return fun(*rebuild(pargs))

        def pure_fwd(*pargs: tp.Any) -> tp.Any:
            return fwd(*rebuild(pargs))

        def pure_bwd(res: tp.Any, g: tp.Any) -> tuple[tp.Any, ...]:
            cts = bwd(res, g)
            if not isinstance(cts, tuple):
                cts = (cts,)
            out = []
            for i, (p, ct) in enumerate(zip(pure_args, cts)):
                if i in graphdefs:
                    out.append(_fill_state(p, ct))
                else:
                    out.append(ct)
            return tuple(out)

        pure.defvjp(pure_fwd, pure_bwd)
        return pure(*pure_args)


def _fill_state(template: State, ct: tp.Any) -> State:
    """A cotangent State shaped like ``template`` (zeros where ``ct`` has nothing)."""
    from nnx_graph._state import to_flat_state

    given = dict(to_flat_state(ct)) if isinstance(ct, tp.Mapping) else {}
    pairs = []
    for path, var in to_flat_state(template):
        value = given.get(path)
        if isinstance(value, Variable):
            value = value.get_value()
        raw = var._raw_value if isinstance(var, Variable) else var
        value = jnp.zeros(jnp.shape(raw), raw.dtype) if value is None else value
        pairs.append((path, var.replace(value) if isinstance(var, Variable) else value))
    return from_flat_state(pairs)


# --------------------------------------------------------------------- remat
def remat(f: tp.Any = None, *, prevent_cse: bool = True, static_argnums: int | tuple[int, ...] = (),
          policy: tp.Callable[..., bool] | None = None) -> tp.Any:
    """``jax.checkpoint`` (rematerialisation) for functions of graph nodes.

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
        return lambda fn: remat(fn, prevent_cse=prevent_cse, static_argnums=static_argnums,
                                policy=policy)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        lifted = Lifted("remat", args, kwargs)

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            out, roots, _ = lifted.call(f, values, dyn)
            return lifted.finish(roots, out, allow_structure=False, full=True)

        out_tree, updates = jax.checkpoint(pure, prevent_cse=prevent_cse, policy=policy)(
            lifted.values(), lifted.dyn)
        return lifted.apply(out_tree, updates)

    return wrapper
