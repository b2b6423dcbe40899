"""``eval_shape``, ``checkify``, ``make_jaxpr`` and ``shard_map`` over graph nodes."""

from __future__ import annotations

import functools
import typing as tp

import jax

from nnx_graph.transforms._axes import StateAxes
from nnx_graph.transforms._lift import Lifted, positions_of_nodes

__all__ = ["StateSharding", "checkify", "eval_shape", "make_jaxpr", "shard_map"]


def eval_shape(f: tp.Callable[..., tp.Any], *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
    """Trace ``f`` without computing anything and return the shapes of its output.
    Modules created inside come back with ``jax.ShapeDtypeStruct`` values: the
    usual way to build an abstract model for checkpoint restore or sharding.
    The caller's objects are not changed.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Lin(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.w = nnx.Param(jax.random.normal(rngs.params(), (1000, 1000)))
        >>> abstract = nnx.eval_shape(lambda: Lin(nnx.Rngs(0)))
        >>> type(abstract.w.value).__name__, abstract.w.value.shape
        ('ShapeDtypeStruct', (1000, 1000))
    """
    lifted = Lifted("eval_shape", args, kwargs)

    def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
        out, roots, _ = lifted.call(f, values, dyn)
        return lifted.finish(roots, out, allow_structure=True, full=True)

    out_tree, updates = jax.eval_shape(pure, lifted.values(), lifted.dyn)
    info = lifted.exits[-1]
    if info.same_structure:
        return out_tree
    # Build output nodes only: inputs keep their concrete values.
    from nnx_graph._graphdef import build
    from nnx_graph.transforms._bridge import fill_tree

    existing = {j: lifted.bridge.nodes[i] for j, i in info.existing.items()}
    keep = {j: obj for j, obj in existing.items()}
    n_in = lifted.bridge.graphdef.num_leaves
    leaves = list(updates)
    current = lifted.values()
    leaves[:n_in] = current[: min(n_in, len(leaves))] if info.graphdef.num_leaves >= n_in \
        else leaves[:n_in]
    root, _ = build(info.graphdef, leaves, existing=keep if info.graphdef.num_leaves == len(
        leaves) and _same_inputs(lifted, info) else {})
    return fill_tree(out_tree, root[1])


def _same_inputs(lifted: Lifted, info: tp.Any) -> bool:
    return bool(info.existing) and lifted.bridge.graphdef.num_leaves <= info.graphdef.num_leaves


def checkify(f: tp.Callable[..., tp.Any], errors: tp.Any = None) -> tp.Callable[..., tp.Any]:
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
    from jax.experimental import checkify as ck

    chosen = ck.user_checks if errors is None else errors

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        lifted = Lifted("checkify", args, kwargs)

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            out, roots, _ = lifted.call(f, values, dyn)
            return lifted.finish(roots, out, allow_structure=False, full=True)

        err, (out_tree, updates) = ck.checkify(pure, errors=chosen)(lifted.values(), lifted.dyn)
        return err, lifted.apply(out_tree, updates)

    return wrapper


def make_jaxpr(f: tp.Callable[..., tp.Any], **jaxpr_kwargs: tp.Any) -> tp.Callable[..., tp.Any]:
    """``jax.make_jaxpr`` for functions of graph nodes (Variables become inputs and
    updated Variables outputs). The caller's objects are not changed.

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

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        lifted = Lifted("make_jaxpr", args, kwargs)

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            out, roots, _ = lifted.call(f, values, dyn)
            return lifted.finish(roots, out, allow_structure=True, full=True)

        return jax.make_jaxpr(pure, **jaxpr_kwargs)(lifted.values(), lifted.dyn)

    return wrapper


class StateSharding(StateAxes):
    """Per-kind-of-state partition specs for a graph-node argument of
    :func:`shard_map`: ``StateSharding({nnx.Param: P(None, 'model'), ...: P()})``.

    Example::

        >>> import nnx_graph as nnx
        >>> from jax.sharding import PartitionSpec as P
        >>> len(nnx.StateSharding({nnx.Param: P("model"), ...: P()}).axes)
        2
    """


def shard_map(f: tp.Any = None, *, mesh: tp.Any, in_specs: tp.Any, out_specs: tp.Any,
              axis_names: tp.Any = frozenset(), check_vma: bool = True,
              graph: tp.Any = None, graph_updates: tp.Any = None) -> tp.Any:
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
        return lambda fn: shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                                    axis_names=axis_names, check_vma=check_vma)

    @functools.wraps(f)
    def wrapper(*args: tp.Any) -> tp.Any:
        from jax.sharding import PartitionSpec

        specs = list(in_specs) if isinstance(in_specs, (tuple, list)) else [in_specs] * len(args)
        if len(specs) != len(args):
            raise ValueError(
                f"nnx.shard_map: in_specs has {len(specs)} entries for {len(args)} arguments. "
                "Fix: give one spec per argument."
            )
        lifted = Lifted("shard_map", args, {})
        bridge = lifted.bridge
        node_pos = positions_of_nodes(args)
        leaf_specs = []
        for path, leaf in zip(bridge.paths, bridge.leaves):
            spec = specs[node_pos[path[0]]]
            if isinstance(spec, StateAxes):
                spec = spec.axis_for(path[1:], leaf, "nnx.shard_map")
            leaf_specs.append(spec)
        dyn_specs: list[tp.Any] = []
        from nnx_graph.transforms._bridge import split_tree

        for pos, arg in enumerate(args):
            tree, nodes = split_tree(arg)
            n = len(jax.tree.leaves(tree))
            spec = specs[pos]
            dyn_specs.extend([spec if isinstance(spec, PartitionSpec) else PartitionSpec()] * n)

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            out, roots, _ = lifted.call(f, values, dyn)
            return lifted.finish(roots, out, allow_structure=False, full=True)

        kwargs: dict[str, tp.Any] = {"mesh": mesh, "in_specs": (leaf_specs, dyn_specs),
                                     "out_specs": (out_specs, leaf_specs),
                                     "check_vma": check_vma}
        if axis_names:
            kwargs["axis_names"] = set(axis_names)
        out_tree, updates = jax.shard_map(pure, **kwargs)(lifted.values(), lifted.dyn)
        return lifted.apply(out_tree, updates)

    return wrapper
