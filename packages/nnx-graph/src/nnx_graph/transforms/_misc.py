"""``eval_shape``, ``checkify``, ``make_jaxpr`` and ``shard_map`` over graph nodes."""

from __future__ import annotations

import functools
import typing as tp

import jax
from jax.sharding import PartitionSpec

from nnx_graph._graphdef import build
from nnx_graph._pytree import List
from nnx_graph._sharding_place import as_abstract
from nnx_graph.transforms._axes import StateAxes, leaf_axes
from nnx_graph.transforms._bridge import Outcome, Updates, fill_tree
from nnx_graph.transforms._checkify import USER_CHECKS, resolve_errors
from nnx_graph.transforms._lift import Lifted, check_aliasing, root_specs, spread_specs
from nnx_graph.transforms._modes import reject_bound_method, resolve

__all__ = ["StateSharding", "checkify", "eval_shape", "make_jaxpr", "shard_map"]


def eval_shape(
    f: tp.Callable[..., tp.Any],
    *args: tp.Any,
    graph: bool | None = None,
    graph_updates: bool | None = None,
    **kwargs: tp.Any,
) -> tp.Any:
    """Trace ``f`` without computing anything and return the shapes of its output.
    Modules created inside come back with ``jax.ShapeDtypeStruct`` values: the
    usual way to build an abstract model for checkpoint restore or sharding.
    The caller's objects are not changed (graph nodes in the output are abstract
    copies, even when they are arguments). Under ``jax.set_mesh``, Variables with a
    sharding annotation (``with_partitioning``) get ``ShapeDtypeStruct`` values
    carrying their ``NamedSharding``.

    With ``graph=False`` or ``graph_updates=False`` (Flax's checks for those modes)
    a Variable reached twice in the arguments, or an argument's Variable returned,
    raises ``ValueError``; with ``graph=False`` so does a Variable reached twice in
    the output.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Lin(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.w = nnx.Param(jax.random.normal(rngs.params(), (1000, 1000)))
        >>> abstract = nnx.eval_shape(lambda: Lin(nnx.Rngs(0)))
        >>> type(abstract.w.value).__name__, abstract.w.value.shape
        ('ShapeDtypeStruct', (1000, 1000))
    """
    reject_bound_method(f, "eval_shape")
    mode = resolve("nnx.eval_shape", graph, graph_updates)
    lifted = Lifted("eval_shape", args, kwargs, fun=f, mode=mode, shared_inputs=mode is None)
    pure = lifted.pure(f, allow_structure=True)
    out_tree, updates = jax.eval_shape(pure, lifted.values(), lifted.dyn)
    structure = updates.outcome.structure
    if structure is None or structure.num_out_nodes == 0:
        return out_tree
    root, _ = build(structure.graphdef, list(updates.values))
    out_nodes = root[1]
    if not jax.sharding.get_abstract_mesh().empty:
        # under jax.set_mesh: annotated Variables come back with their NamedSharding
        # mapped as one graph (an nnx.List of them): shared references stay shared
        out_nodes = tuple(as_abstract(List(out_nodes)))
    return fill_tree(out_tree, out_nodes)


def checkify(
    f: tp.Callable[..., tp.Any],
    errors: frozenset[type[Exception]] = USER_CHECKS,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Callable[..., tp.Any]:
    """``jax.experimental.checkify.checkify`` for functions of graph nodes: returns
    ``(error, output)``; Variable updates are carried out.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from jax.experimental import checkify as ck
        >>> def f(x):
        ...     ck.check(x > 0, "x must be positive")
        ...     return x
        >>> err, _ = nnx.checkify(f)(jnp.array(-1.0))
        >>> err.get().startswith("x must be positive")
        True
    """
    from jax.experimental import checkify as ck  # ~90 ms to import: only when used

    chosen = resolve_errors(errors)
    reject_bound_method(f, "checkify")
    mode = resolve("nnx.checkify", graph, graph_updates)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        lifted = Lifted("checkify", args, kwargs, fun=f, mode=mode)
        pure = lifted.pure(f)
        err, (out_tree, updates) = ck.checkify(pure, errors=chosen)(lifted.values(), lifted.dyn)
        return err, lifted.write_back(out_tree, updates)

    return wrapper


def make_jaxpr(
    f: tp.Callable[..., tp.Any] | None = None,
    *,
    graph: bool | None = None,
    graph_updates: bool | None = None,
    static_argnums: int | tp.Sequence[int] = (),
) -> tp.Callable[..., tp.Any]:
    """``jax.make_jaxpr`` for functions of graph nodes (Variables become inputs and
    updated Variables outputs). The caller's objects are not changed. Arguments at
    ``static_argnums`` stay Python values (they must be hashable). Without ``f`` it
    returns a decorator. ``graph``/``graph_updates``: as in :func:`eval_shape`.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def inc(c):
        ...     c.n += 1
        >>> "add" in str(nnx.make_jaxpr(inc)(C()))
        True
    """
    if f is None:
        return functools.partial(
            make_jaxpr, graph=graph, graph_updates=graph_updates, static_argnums=static_argnums
        )
    reject_bound_method(f, "make_jaxpr")
    fun = f
    mode = resolve("nnx.make_jaxpr", graph, graph_updates)
    statics = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(fun)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        n = len(args)
        fixed = {p % n: args[p % n] for p in statics if -n <= p < n}
        dynamic = tuple(a for i, a in enumerate(args) if i not in fixed)

        def call(*dyn_args: tp.Any, **kw: tp.Any) -> tp.Any:
            it = iter(dyn_args)
            full = [fixed[i] if i in fixed else next(it) for i in range(n)]
            return fun(*full, **kw)

        lifted = Lifted(
            "make_jaxpr",
            dynamic,
            kwargs,
            fun=fun if not fixed else None,
            mode=mode,
            shared_inputs=mode is None,
        )
        pure = lifted.pure(call, allow_structure=True)
        return jax.make_jaxpr(pure)(lifted.values(), lifted.dyn)

    return wrapper


class StateSharding(StateAxes):
    """Per-kind-of-state partition specs for a graph-node argument of
    :func:`shard_map`: ``StateSharding({nnx.Param: P(None, 'model'), ...: P()})``.
    ``filters`` and ``shardings`` are the two sequences (the first filter matching
    a Variable wins); a State of specs (e.g. from ``nnx.prefix``) gives one filter
    per path.

    Example::

        >>> import nnx_graph as nnx
        >>> from jax.sharding import PartitionSpec as P
        >>> s = nnx.StateSharding({nnx.Param: P("model"), ...: P()})
        >>> s.shardings == (P("model"), P()), s.filters[0] is nnx.Param
        (True, True)
    """

    def __init__(
        self, filter_sharding: tp.Mapping[tp.Any, tp.Any] | tp.Iterable[tuple[tp.Any, tp.Any]], /
    ) -> None:
        super().__init__(filter_sharding)

    @property
    def shardings(self) -> tuple[tp.Any, ...]:
        """The sharding (partition spec) of each filter, in the order of ``filters``."""
        return self.axes

    def __repr__(self) -> str:
        return f"StateSharding({dict(zip(self.filters, self.shardings))})"


def _is_spec(x: object) -> bool:
    return x is None or isinstance(x, (PartitionSpec, StateAxes))


def shard_map(
    f: tp.Any = None,
    *,
    mesh: tp.Any,
    in_specs: tp.Any,
    out_specs: tp.Any,
    axis_names: tp.Any = frozenset(),
    check_vma: bool = True,
    graph: tp.Any = None,
    graph_updates: tp.Any = None,
) -> tp.Any:
    """``jax.shard_map`` for functions of graph nodes. For a graph-node argument the
    in-spec is one ``PartitionSpec`` for all its Variables or a
    :class:`StateSharding`; updated Variables keep their spec.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> from jax.sharding import PartitionSpec as P
        >>> mesh = jax.make_mesh((1,), ("x",), axis_types=(jax.sharding.AxisType.Auto,))
        >>> f = nnx.shard_map(lambda x: x * 2, mesh=mesh, in_specs=P("x"), out_specs=P("x"))
        >>> jax.jit(f)(jnp.ones(4)).tolist()
        [2.0, 2.0, 2.0, 2.0]
    """
    if f is None:
        return functools.partial(
            shard_map,
            mesh=mesh,
            in_specs=in_specs,
            out_specs=out_specs,
            axis_names=axis_names,
            check_vma=check_vma,
            graph=graph,
            graph_updates=graph_updates,
        )
    reject_bound_method(f, "shard_map")
    mode = resolve("nnx.shard_map", graph, graph_updates)

    @functools.wraps(f)
    def wrapper(*args: tp.Any) -> tp.Any:
        specs = list(in_specs) if isinstance(in_specs, (tuple, list)) else [in_specs] * len(args)
        if len(specs) != len(args):
            raise ValueError(
                f"nnx.shard_map: in_specs has {len(specs)} entries for {len(args)} arguments. "
                "Fix: give one spec per argument."
            )
        make_spec: tp.Any = PartitionSpec
        replicated = make_spec()
        whole = [replicated if s is None else s for s in specs]
        dyn_specs = spread_specs(args, whole, _is_spec, "nnx.shard_map", "in_spec")
        lifted = Lifted("shard_map", args, {}, fun=f, mode=mode)
        bridge = lifted.bridge
        per_root = root_specs(args, specs, _is_spec)
        leaf_specs = leaf_axes(
            per_root,
            [p[0] for p in bridge.paths],
            bridge.paths,
            bridge.leaves,
            "nnx.shard_map",
            lifted.root_names,
        )
        check_aliasing(lifted, per_root, range(len(per_root)), leaf_specs, "nnx.shard_map")
        pure = lifted.pure(f, changed_only=False)

        kwargs: dict[str, tp.Any] = {
            "mesh": mesh,
            "in_specs": (leaf_specs, dyn_specs),
            "out_specs": (out_specs, Updates(Outcome(None, None), leaf_specs)),
            "check_vma": check_vma,
        }
        if axis_names:
            kwargs["axis_names"] = set(axis_names)
        out_tree, updates = jax.shard_map(pure, **kwargs)(lifted.values(), lifted.dyn)
        return lifted.write_back(out_tree, updates)

    return wrapper
