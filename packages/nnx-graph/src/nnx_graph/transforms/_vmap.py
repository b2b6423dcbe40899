"""``vmap``, ``pmap`` and ``transform_metadata``."""

from __future__ import annotations

import functools
import typing as tp

import jax

from nnx_graph._errors import GraphStructureError
from nnx_graph._variables import Variable
from nnx_graph.transforms._axes import StateAxes, check_state_axes_used, leaf_axes
from nnx_graph.transforms._bridge import fill_tree, split_tree
from nnx_graph.transforms._lift import Lifted, positions_of_nodes

__all__ = ["pmap", "transform_metadata", "vmap"]

PARTITION_NAME = "partition_name"


def _per_arg(axes: tp.Any, nargs: int, where: str) -> list[tp.Any]:
    if isinstance(axes, (int, StateAxes)) or axes is None:
        return [axes] * nargs
    axes = list(axes)
    if len(axes) != nargs:
        raise ValueError(
            f"{where}: in_axes has {len(axes)} entries but the function got {nargs} positional "
            "arguments. Expected one axis spec per argument. Fix: e.g. in_axes=(None, 0)."
        )
    return axes


def _node_axis(spec: tp.Any) -> bool:
    return spec is None or isinstance(spec, (int, StateAxes))


def _add_axis_metadata(value: tp.Any, axis: int, metadata: tp.Mapping[str, tp.Any]) -> None:
    """Insert the transform's partition name into stacked Variables' sharding names."""
    name = metadata.get(PARTITION_NAME)
    if name is None:
        return
    from nnx_graph._graph import iter_graph

    for _, var in iter_graph(value):
        if isinstance(var, Variable):
            names = var._var_metadata.get("sharding_names") or var._var_metadata.get("sharding")
            if names is not None:
                names = list(names)
                names.insert(axis, name)
                var._var_metadata["sharding_names"] = tuple(names)


def _mapped(jax_transform: tp.Callable[..., tp.Any], name: str, f: tp.Callable[..., tp.Any],
            in_axes: tp.Any, out_axes: tp.Any, transform_kwargs: dict[str, tp.Any],
            metadata: tp.Mapping[str, tp.Any]) -> tp.Callable[..., tp.Any]:
    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        if kwargs:
            raise TypeError(
                f"nnx.{name} maps positional arguments only; found keyword arguments "
                f"{sorted(kwargs)}. Fix: pass them positionally (or close over them)."
            )
        specs = _per_arg(in_axes, len(args), f"nnx.{name}")
        lifted = Lifted(name, args, {})
        bridge = lifted.bridge
        node_pos = positions_of_nodes(args)
        leaf_arg = [node_pos[p[0]] for p in bridge.paths]
        for pos, spec in enumerate(specs):
            if pos in node_pos and not _node_axis(spec):
                raise TypeError(
                    f"nnx.{name}: argument {pos} holds Modules/Variables, so its axis spec must "
                    f"be an int, None or nnx.StateAxes; found {spec!r}."
                )
        check_state_axes_used(specs, leaf_arg, bridge.paths, bridge.leaves, f"nnx.{name}")
        axes = leaf_axes(specs, leaf_arg, bridge.paths, bridge.leaves, f"nnx.{name}")
        # axes for the non-graph leaves: the spec of the argument they come from
        dyn_axes = []
        for pos, arg in enumerate(args):
            tree, nodes = split_tree(arg)
            if nodes:
                for leaf in jax.tree.leaves(tree):
                    dyn_axes.append(None)
            else:
                spec = specs[pos]
                dyn_axes.extend(jax.tree.leaves(
                    jax.tree.map(lambda _, s=spec: s, arg),
                    is_leaf=lambda x: x is None) if not isinstance(spec, (list, tuple, dict))
                    else _broadcast_prefix(spec, arg))
        node_out_axis = out_axes if isinstance(out_axes, int) or out_axes is None else 0
        record: dict[str, tp.Any] = {}

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            out, roots, _ = lifted.call(f, values, dyn)
            out_tree, new_values = lifted.finish(roots, out, allow_structure=True, full=True)
            info = lifted.exits[-1]
            n_in = len(values)
            if not info.same_structure and info.graphdef.num_leaves >= n_in:
                record["new_leaves"] = len(new_values) - n_in
            return out_tree, new_values[:n_in], new_values[n_in:]

        # out_axes for the output tree: the user's spec; holes (nodes) have no leaves
        try:
            out_tree, in_updates, node_leaves = jax_transform(
                pure, in_axes=(axes, dyn_axes),
                out_axes=(_out_tree_axes(out_axes), axes, node_out_axis), **transform_kwargs
            )(lifted.values(), lifted.dyn)
        except ValueError as error:
            text = str(error)
            if "out_axes" in text or "mapped output" in text:
                broadcast = [bridge.describe_leaf(i) for i, a in enumerate(axes) if a is None]
                raise ValueError(
                    f"nnx.{name}: a Variable passed with axis None (broadcast) was updated with "
                    f"a per-example value. Broadcast state: {broadcast[:10]}. Expected "
                    "broadcast state to be updated with the same value for every example. "
                    "Fix: give it an axis (e.g. nnx.StateAxes({nnx.BatchStat: 0, ...: None}))"
                    " or do not update it inside the mapped function."
                ) from error
            raise
        info = lifted.exits[-1]
        if info.same_structure:
            bridge.apply_changes(dict(enumerate(in_updates)))
            return out_tree
        n_in = bridge.graphdef.num_leaves
        if any(info.existing.get(j) is None for j in range(0)):
            raise GraphStructureError(f"nnx.{name}: unexpected structure change")
        out = bridge.apply_structure(info, list(in_updates) + list(node_leaves), out_tree)
        if metadata and node_out_axis is not None:
            _, out_nodes = split_tree(out)
            for node in out_nodes:
                _add_axis_metadata(node, node_out_axis, metadata)
        del n_in
        return out

    return wrapper


def _broadcast_prefix(spec: tp.Any, arg: tp.Any) -> list[tp.Any]:
    """Expand a pytree-prefix axis spec to one axis per leaf of ``arg``."""
    out: list[tp.Any] = []

    def expand(s: tp.Any, a: tp.Any) -> None:
        out.extend([s] * len(jax.tree.leaves(a)))

    jax.tree.map(expand, spec, arg, is_leaf=lambda x: x is None or isinstance(x, int))
    return out


def _out_tree_axes(out_axes: tp.Any) -> tp.Any:
    return out_axes


def vmap(f: tp.Any = None, *, in_axes: tp.Any = 0, out_axes: tp.Any = 0,
         axis_name: tp.Any = None, axis_size: int | None = None,
         spmd_axis_name: tp.Any = None, transform_metadata: tp.Mapping[str, tp.Any] = {},  # noqa: B006
         graph: tp.Any = None, graph_updates: tp.Any = None) -> tp.Any:
    """Vectorise a function over graph-node and array arguments (``jax.vmap``).

    For a Module argument, ``in_axes`` is an int (every Variable mapped on that
    axis), ``None`` (broadcast) or :class:`StateAxes`. Updated Variables keep
    their axis. Modules created inside and returned come out stacked on
    ``out_axes``: with :func:`split_rngs` this builds a stack of layers.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Lin(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.w = nnx.Param(jax.random.normal(rngs.params(), (3,)))
        >>> @nnx.split_rngs(splits=4)
        ... @nnx.vmap(in_axes=0, out_axes=0)
        ... def create(rngs):
        ...     return Lin(rngs)
        >>> create(nnx.Rngs(0)).w.shape
        (4, 3)
    """
    if f is None:
        return lambda fn: vmap(fn, in_axes=in_axes, out_axes=out_axes, axis_name=axis_name,
                               axis_size=axis_size, spmd_axis_name=spmd_axis_name,
                               transform_metadata=transform_metadata)
    kwargs: dict[str, tp.Any] = {"axis_name": axis_name, "axis_size": axis_size}
    if spmd_axis_name is not None:
        kwargs["spmd_axis_name"] = spmd_axis_name
    return _mapped(jax.vmap, "vmap", f, in_axes, out_axes, kwargs, transform_metadata)


def pmap(f: tp.Any = None, *, axis_name: tp.Any = None, in_axes: tp.Any = 0, out_axes: tp.Any = 0,
         static_broadcasted_argnums: tp.Any = (), devices: tp.Any = None, backend: tp.Any = None,
         axis_size: int | None = None, donate_argnums: tp.Any = (),
         transform_metadata: tp.Mapping[str, tp.Any] = {},  # noqa: B006
         graph: tp.Any = None, graph_updates: tp.Any = None) -> tp.Any:
    """``jax.pmap`` for functions of graph nodes, with the same axis rules as
    :func:`vmap`.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> f = nnx.pmap(lambda x: x * 2)
        >>> f(jnp.ones((jax.local_device_count(), 2))).shape[1]
        2
    """
    if f is None:
        return lambda fn: pmap(fn, axis_name=axis_name, in_axes=in_axes, out_axes=out_axes,
                               devices=devices, backend=backend, axis_size=axis_size,
                               transform_metadata=transform_metadata)
    kwargs: dict[str, tp.Any] = {"axis_name": axis_name, "devices": devices, "backend": backend}
    if axis_size is not None:
        kwargs["axis_size"] = axis_size
    return _mapped(jax.pmap, "pmap", f, in_axes, out_axes, kwargs, transform_metadata)


def transform_metadata(*, in_axes: tp.Any = 0, out_axes: tp.Any = 0,
                       partition: str | None = None) -> tp.Callable[[tp.Any], tp.Any]:
    """Decorator for hand-written transforms: on return, insert ``partition`` into
    the ``sharding_names`` of Variables in graph-node outputs at ``out_axes``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> @nnx.transform_metadata(out_axes=0, partition="layers")
        ... def stack():
        ...     return nnx.Param(jnp.ones((2, 3)), sharding_names=("model",))
        >>> stack().sharding_names
        ('layers', 'model')
    """

    def decorator(fn: tp.Callable[..., tp.Any]) -> tp.Callable[..., tp.Any]:
        @functools.wraps(fn)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            out = fn(*args, **kwargs)
            if partition is not None and isinstance(out_axes, int):
                _, nodes = split_tree(out)
                for node in nodes:
                    _add_axis_metadata(node, out_axes, {PARTITION_NAME: partition})
            return out

        return wrapper

    return decorator


del fill_tree
