"""``vmap``, ``pmap`` and ``transform_metadata``.

Every Variable of a graph-node argument gets an axis from the argument's spec (an
int, ``None`` for broadcast, or a :class:`StateAxes` choosing per kind of state).
Updated Variables go out on the axis they came in on.  Modules created inside and
returned come out stacked on ``out_axes``; Variables added to an argument inside
take that argument's axis.  Which leaves are new is only known once the function
has been traced, so a call that adds leaves whose axis is not 0 is traced a second
time with the right output axes.
"""

from __future__ import annotations

import functools
import typing as tp
from collections.abc import Mapping

import jax
import numpy as np

from nnx_graph._errors import format_path
from nnx_graph._graph import iter_graph
from nnx_graph._sharding import PARTITION_NAME, add_axis, remove_axis
from nnx_graph._state import State
from nnx_graph._variable_meta import current_trace
from nnx_graph._variables import Variable
from nnx_graph.transforms._axes import (
    StateAxes,
    check_state_axes_used,
    is_prefix_tree,
    leaf_axes,
    lookup_prefix,
)
from nnx_graph.transforms._bridge import (
    Outcome,
    Static,
    Structure,
    Updates,
    holes_of,
    split_tree,
)
from nnx_graph.transforms._lift import (
    Lifted,
    bind_positional,
    check_aliasing,
    positions_of_nodes,
    root_specs,
    spread_specs,
)
from nnx_graph.transforms._modes import check_prefix, reject_bound_method, resolve, with_mode

__all__ = ["pmap", "transform_metadata", "vmap"]


def _per_arg(axes: tp.Any, nargs: int, where: str) -> list[tp.Any]:
    if isinstance(axes, (int, StateAxes)) or axes is None:
        return [axes] * nargs
    items: list[tp.Any] = list(axes)
    if len(items) != nargs:
        raise ValueError(
            f"{where}: in_axes has {len(items)} entries but the function got {nargs} positional "
            "arguments. Expected one axis spec per argument. Fix: e.g. in_axes=(None, 0)."
        )
    return items


def _is_axis_leaf(x: object) -> bool:
    """One spec for a whole output subtree: an int, None, a StateAxes, or a State of
    axes over one graph node (``nnx.prefix``)."""
    return x is None or isinstance(x, (int, StateAxes, State))


def _is_whole(x: object) -> bool:
    return x is None or isinstance(x, int)


class _Traced(tp.NamedTuple):
    """What the trace of a mapped call learned (static; returned as aux data)."""

    changed: tuple[int, ...]  # input leaves whose value changed
    new_axes: tuple[tp.Any, ...]  # out axis of every leaf added inside
    new_names: tuple[str, ...]  # their names, for errors
    structure: Structure | None  # the new structure, if it changed


def _node_out_specs(out_axes: tp.Any, out_tree: tp.Any, num_out_nodes: int) -> list[tp.Any]:
    """The out-axis spec of every graph node in the output (by hole index)."""
    if _is_axis_leaf(out_axes):
        return [out_axes] * num_out_nodes
    specs: list[tp.Any] = [0] * num_out_nodes

    def assign(spec: tp.Any, sub: tp.Any) -> None:
        for k in holes_of(sub):
            specs[k] = spec

    jax.tree.map(assign, out_axes, out_tree, is_leaf=_is_axis_leaf)
    return specs


def _tree_out_axes(out_axes: tp.Any) -> tp.Any:
    """``out_axes`` for the non-graph part of the output (StateAxes entries only
    concern graph nodes, which have no leaves there)."""
    return jax.tree.map(
        lambda s: None if isinstance(s, (StateAxes, State)) else s,
        out_axes,
        is_leaf=_is_axis_leaf,
    )


def _axis_of(
    spec: tp.Any, path: tuple[tp.Any, ...], leaf: tp.Any, where: str, root: str = "model"
) -> tp.Any:
    if is_prefix_tree(spec):
        spec = lookup_prefix(spec, path, where, root)
    if isinstance(spec, StateAxes):
        return spec.axis_for(path, leaf, where, root)
    return spec


class _Call:
    """One call of a mapped function: the lifted arguments, the axis of every leaf,
    and what the trace learned."""

    def __init__(
        self,
        name: str,
        f: tp.Callable[..., tp.Any],
        args: tuple[tp.Any, ...],
        in_axes: tp.Any,
        out_axes: tp.Any,
        metadata: Mapping[str, tp.Any],
    ) -> None:
        where = f"nnx.{name}"
        self.name, self.f, self.args = name, f, args
        self.out_axes, self.metadata = out_axes, metadata
        self.specs = _per_arg(in_axes, len(args), where)
        # first: it refuses specs that do not fit the arguments
        self.dyn_axes = spread_specs(args, self.specs, _is_whole, where, "axis spec")
        self.lifted = lifted = Lifted(name, args, {}, fun=f)
        bridge = lifted.bridge
        self.node_pos = positions_of_nodes(args)
        leaf_arg = [self.node_pos[p[0]] for p in bridge.paths]
        check_state_axes_used(
            self.specs, leaf_arg, bridge.paths, bridge.leaves, where, lifted.root_names
        )
        # per graph node: a container argument may have a prefix of its structure
        self.root_specs = root_specs(args, self.specs, _is_whole)
        roots = [p[0] for p in bridge.paths]
        self.axes = leaf_axes(
            self.root_specs, roots, bridge.paths, bridge.leaves, where, lifted.root_names
        )
        check_aliasing(lifted, self.root_specs, range(len(self.root_specs)), self.axes, where)
        self.values = lifted.values()

    # ------------------------------------------------------------- inside
    def pure(self, values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
        """``(values, dyn) -> (out_tree, input leaves, new leaves, Static(_Traced))``."""
        lifted, bridge = self.lifted, self.lifted.bridge
        trace, args, _ = lifted.enter(values, dyn)
        if self.metadata:
            for var, axis in zip(bridge.inner_variables(trace), self.axes):
                if var is not None and isinstance(axis, int):
                    remove_axis([var], axis, self.metadata)
        out = self.f(*args)
        if self.metadata:
            self._add_axes(trace.roots, out)
        result = lifted.exit(trace, out, allow_structure=True)
        n_in = len(values)
        structure = result.outcome.structure
        if structure is None:
            changed = result.outcome.changed or ()
            return result.out_tree, result.values, [], Static(_Traced(changed, (), (), None))
        in_slots = list(values)
        new: list[tp.Any] = []
        new_axes, new_names = [], []
        node_specs = _node_out_specs(self.out_axes, result.out_tree, structure.num_out_nodes)
        self._check_returned(trace, out, node_specs)
        for j, (value, origin) in enumerate(zip(result.values, structure.origins)):
            if origin >= 0:
                in_slots[origin] = value
                continue
            new.append(value)
            path = structure.graphdef.leaf_paths[j]
            new_axes.append(self._new_leaf_axis(path, result.leaves[j], node_specs))
            new_names.append(self._describe_new(path))
        changed = tuple(i for i in range(n_in) if in_slots[i] is not values[i])
        traced = _Traced(changed, tuple(new_axes), tuple(new_names), structure)
        return result.out_tree, in_slots, new, Static(traced)

    def _check_returned(self, trace: tp.Any, out: tp.Any, node_specs: tp.Sequence[tp.Any]) -> None:
        """Every argument Variable reachable from the output must come out on the axis
        it came in on; objects captured from outside the function cannot be returned."""
        leaf_of = {
            id(v): i
            for i, v in enumerate(self.lifted.bridge.inner_variables(trace))
            if v is not None
        }
        now = current_trace()
        for j, node in enumerate(split_tree(out)[1]):
            if isinstance(node, Variable):
                owned: list[tuple[tuple[tp.Any, ...], Variable[tp.Any]]] = [((), node)]
            else:
                owned = [(tuple(p), v) for p, v in iter_graph(node) if isinstance(v, Variable)]
            for sub, var in owned:
                i = leaf_of.get(id(var))
                out_name = format_path(sub, f"output[{j}]")
                if i is None:
                    created = getattr(var, "_nnx_trace", now)
                    if created is not None and created is not now:
                        raise ValueError(
                            f"nnx.{self.name}: the output {out_name} is a {type(var).__name__} "
                            "created outside the function and not passed in (captured): Cannot "
                            "extract graph node from different trace level (Cannot return "
                            "captured Variable). Expected returned "
                            "objects to be arguments or created inside. Fix: pass it as an "
                            "argument (axis None to broadcast) or return a copy made inside."
                        )
                    continue
                out_axis = _axis_of(node_specs[j], sub, var, f"nnx.{self.name}", f"output[{j}]")
                if out_axis != self.axes[i]:
                    raise ValueError(
                        f"nnx.{self.name}: Inconsistent aliasing detected: "
                        f"{self.lifted.describe_leaf(i)} is returned as {out_name} with out "
                        f"axis {out_axis!r} but was passed with in axis {self.axes[i]!r}, so "
                        "it would need two axes at once. Expected the same spec going in and "
                        "out. Fix: make out_axes for it match in_axes, or return a new object "
                        "(or its values) instead."
                    )

    def _new_leaf_axis(
        self, path: tuple[tp.Any, ...], leaf: tp.Any, node_specs: tp.Sequence[tp.Any]
    ) -> tp.Any:
        which, k, *rest = path
        spec = self.root_specs[k] if which == 0 else node_specs[k]
        root = self.lifted.root_names()[k] if which == 0 else f"output[{k}]"
        return _axis_of(spec, tuple(rest), leaf, f"nnx.{self.name}", root)

    def _describe_new(self, path: tuple[tp.Any, ...]) -> str:
        which, k, *rest = path
        root = self.lifted.root_names()[k] if which == 0 else f"output[{k}]"
        return format_path(tuple(rest), root)

    def _add_axes(self, roots: tuple[tp.Any, ...], out: tp.Any) -> None:
        """Give every Variable reachable from the arguments and the output the
        partition axis back (inputs had it removed on entry)."""

        out_tree, out_nodes = split_tree(out)
        node_specs = _node_out_specs(self.out_axes, out_tree, len(out_nodes))
        for path, var in iter_graph((roots, tuple(out_nodes))):
            if not isinstance(var, Variable) or len(path) < 2:
                continue
            which, k, *rest = path
            spec = self.root_specs[k] if which == 0 else node_specs[k]
            axis = _axis_of(spec, tuple(rest), var, f"nnx.{self.name}")
            if isinstance(axis, int):
                add_axis([var], axis, self.metadata)

    # ------------------------------------------------------------- outside
    def run(self, transform: tp.Callable[..., tp.Any], kwargs: dict[str, tp.Any]) -> tp.Any:
        tree_axes = _tree_out_axes(self.out_axes)

        def call(new_axes: tp.Any) -> tp.Any:
            mapped = transform(
                self.pure,
                in_axes=(self.axes, self.dyn_axes),
                out_axes=(tree_axes, self.axes, new_axes, None),
                **kwargs,
            )
            try:
                return mapped(self.values, self.lifted.dyn)
            except ValueError as error:
                diagnosis = self._diagnose(error, kwargs)
                if diagnosis is None:
                    raise
                raise diagnosis from error

        out_tree, in_slots, new, static = call(0)
        traced: _Traced = static.value
        if any(a != 0 for a in traced.new_axes):
            # new leaves whose out axis is not 0: trace again now that we know them
            out_tree, in_slots, new, static = call(list(traced.new_axes))
            traced = static.value
        return self.lifted.write_back(out_tree, _updates(traced, in_slots, new))

    def _diagnose(self, error: ValueError, kwargs: dict[str, tp.Any]) -> ValueError | None:
        if "out_axes" in str(error):
            # broadcast state updated per example, unless nothing broadcast changed:
            # then it is about the function's own output and out_axes
            return self._broadcast_error(kwargs)
        return self._size_error(kwargs.get("axis_size"))

    def _broadcast_error(self, kwargs: dict[str, tp.Any]) -> ValueError | None:
        traced = self._trace_abstractly(kwargs)
        if traced is None:
            return None
        names = [self.lifted.describe_leaf(i) for i in traced.changed if self.axes[i] is None]
        names += [n for n, a in zip(traced.new_names, traced.new_axes) if a is None]
        if not names:
            return None
        listed = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        first = [self.bridge_keys(i) for i in traced.changed if self.axes[i] is None][:1]
        return ValueError(
            f"nnx.{self.name}: at vmap out_axes{''.join(first)}, got axis spec None but output "
            "was batched on axis 0: state passed with axis None (broadcast) was set to a "
            f"value that differs per example: {listed}. Expected broadcast "
            "state to get the same value for every example. Fix: give it an axis, e.g. "
            "in_axes=nnx.StateAxes({nnx.BatchStat: 0, ...: None}), or do not update it "
            "inside the mapped function."
        )

    def bridge_keys(self, i: int) -> str:
        """Leaf ``i``'s path as JAX prints it: ``['layer']['w']``."""
        return "".join(f"[{k!r}]" for k in self.lifted.bridge.paths[i][1:])

    def _trace_abstractly(self, kwargs: dict[str, tp.Any]) -> _Traced | None:
        """After a failed call: trace again, abstractly and with every output on
        axis 0, to learn what the function changed (for the error message)."""
        mapped = jax.vmap(
            self.pure,
            in_axes=(self.axes, self.dyn_axes),
            out_axes=0,
            axis_name=kwargs.get("axis_name"),
            axis_size=kwargs.get("axis_size"),
        )
        try:
            static = jax.eval_shape(mapped, self.values, self.lifted.dyn)[3]
        except Exception:  # the diagnosis is best-effort: the original error stands
            return None
        return tp.cast(_Traced, static.value)

    def _size_error(self, axis_size: int | None) -> ValueError | None:
        """Name the mapped inputs whose sizes disagree (or that lack the axis)."""
        mapped: list[tuple[str, int, tuple[int, ...]]] = []
        for i, axis in enumerate(self.axes):
            if isinstance(axis, int):
                mapped.append((self.lifted.describe_leaf(i), axis, np.shape(self.values[i])))
        dyn_names = self.lifted.dyn_names()
        for i, axis in enumerate(self.dyn_axes):
            if isinstance(axis, int):
                mapped.append((dyn_names[i], axis, np.shape(self.lifted.dyn[i])))
        by_size: dict[int, list[str]] = {} if axis_size is None else {axis_size: ["axis_size"]}
        for name, axis, shape in mapped:
            if not -len(shape) <= axis < len(shape):
                return ValueError(
                    f"nnx.{self.name}: {name} is mapped over axis {axis} but has shape {shape}. "
                    "Expected an array with that axis. Fix: pass it with axis None "
                    "(in_axes / nnx.StateAxes), or add the axis."
                )
            by_size.setdefault(shape[axis], []).append(f"{name} (axis {axis})")
        if len(by_size) <= 1:
            return None
        detail = "; ".join(
            f"size {size}: "
            + ", ".join(names[:4])
            + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            for size, names in by_size.items()
        )
        return ValueError(
            f"nnx.{self.name}: the mapped inputs have different sizes along their mapped axes "
            f"({detail}). Expected one size for every mapped array and Variable. Fix: make "
            "the sizes agree, or broadcast the odd ones with axis None (nnx.StateAxes for "
            "Module state)."
        )


def _updates(traced: _Traced, in_slots: tp.Sequence[tp.Any], new: tp.Sequence[tp.Any]) -> Updates:
    """What to write back after a mapped call."""
    structure = traced.structure
    if structure is None:
        return Updates(Outcome(traced.changed, None), [in_slots[i] for i in traced.changed])
    new_iter = iter(new)
    leaves = [in_slots[o] if o >= 0 else next(new_iter) for o in structure.origins]
    return Updates(Outcome(None, structure), leaves)


def _mapped(
    transform: tp.Callable[..., tp.Any],
    name: str,
    f: tp.Callable[..., tp.Any],
    in_axes: tp.Any,
    out_axes: tp.Any,
    transform_kwargs: dict[str, tp.Any],
    metadata: Mapping[str, tp.Any],
) -> tp.Callable[..., tp.Any]:
    metadata = dict(metadata)
    if metadata and PARTITION_NAME not in metadata:
        metadata = {}

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        args = bind_positional(name, f, args, kwargs)
        return _Call(name, f, args, in_axes, out_axes, metadata).run(transform, transform_kwargs)

    return wrapper


def _check_prefixes(
    name: str, in_axes: tp.Any, out_axes: tp.Any, graph: tp.Any, graph_updates: tp.Any
) -> None:
    mode = resolve(f"nnx.{name}", graph, graph_updates)
    check_prefix(in_axes, "in_axes", name, mode, StateAxes)
    check_prefix(out_axes, "out_axes", name, mode, StateAxes)


def vmap(
    f: tp.Any = None,
    *,
    in_axes: tp.Any = 0,
    out_axes: tp.Any = 0,
    axis_name: tp.Any = None,
    axis_size: int | None = None,
    spmd_axis_name: tp.Any = None,
    transform_metadata: Mapping[str, tp.Any] = {},
    graph: tp.Any = None,
    graph_updates: tp.Any = None,
) -> tp.Any:
    """Vectorise a function over graph-node and array arguments (``jax.vmap``).

    For a Module argument, ``in_axes`` is an int (every Variable mapped on that
    axis), ``None`` (broadcast) or :class:`StateAxes`. Updated Variables keep
    their axis. Modules created inside and returned come out stacked on
    ``out_axes``: with :func:`split_rngs` this builds a stack of layers.
    ``transform_metadata={nnx.PARTITION_NAME: "layers"}`` removes that entry from
    the mapped Variables' sharding names inside and adds it back on the way out.

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
        return functools.partial(
            vmap,
            in_axes=in_axes,
            out_axes=out_axes,
            axis_name=axis_name,
            axis_size=axis_size,
            spmd_axis_name=spmd_axis_name,
            transform_metadata=transform_metadata,
            graph=graph,
            graph_updates=graph_updates,
        )
    reject_bound_method(f, "vmap")
    _check_prefixes("vmap", in_axes, out_axes, graph, graph_updates)
    kwargs: dict[str, tp.Any] = {"axis_name": axis_name, "axis_size": axis_size}
    if spmd_axis_name is not None:
        kwargs["spmd_axis_name"] = spmd_axis_name
    mapped = _mapped(jax.vmap, "vmap", f, in_axes, out_axes, kwargs, transform_metadata)
    return with_mode(mapped, "nnx.vmap", graph, graph_updates)


def pmap(
    f: tp.Any = None,
    *,
    axis_name: tp.Any = None,
    in_axes: tp.Any = 0,
    out_axes: tp.Any = 0,
    static_broadcasted_argnums: int | tp.Iterable[int] = (),
    devices: tp.Any = None,
    backend: tp.Any = None,
    axis_size: int | None = None,
    donate_argnums: int | tp.Iterable[int] = (),
    transform_metadata: Mapping[str, tp.Any] = {},
    graph: tp.Any = None,
    graph_updates: tp.Any = None,
) -> tp.Any:
    """``jax.pmap`` for functions of graph nodes, with the same axis rules as
    :func:`vmap`. ``static_broadcasted_argnums`` arguments reach the function as
    Python values; ``donate_argnums`` is accepted for compatibility (state is
    written back to the caller's Variables, so nothing is donated).

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> f = nnx.pmap(lambda x: x * 2)
        >>> f(jnp.ones((jax.local_device_count(), 2))).shape[1]
        2
    """
    if f is None:
        return functools.partial(
            pmap,
            axis_name=axis_name,
            in_axes=in_axes,
            out_axes=out_axes,
            static_broadcasted_argnums=static_broadcasted_argnums,
            devices=devices,
            backend=backend,
            axis_size=axis_size,
            donate_argnums=donate_argnums,
            transform_metadata=transform_metadata,
            graph=graph,
            graph_updates=graph_updates,
        )
    reject_bound_method(f, "pmap")
    _check_prefixes("pmap", in_axes, out_axes, graph, graph_updates)
    kwargs: dict[str, tp.Any] = {"axis_name": axis_name, "devices": devices, "backend": backend}
    if axis_size is not None:
        kwargs["axis_size"] = axis_size
    static = (
        (static_broadcasted_argnums,)
        if isinstance(static_broadcasted_argnums, int)
        else tuple(static_broadcasted_argnums)
    )
    if not static:
        mapped = _mapped(jax.pmap, "pmap", f, in_axes, out_axes, kwargs, transform_metadata)
        return with_mode(mapped, "nnx.pmap", graph, graph_updates)

    @functools.wraps(f)
    def with_statics(*args: tp.Any, **kw: tp.Any) -> tp.Any:
        args = bind_positional("pmap", f, args, kw)
        fixed = {p: args[p] for p in static}
        rest = tuple(a for p, a in enumerate(args) if p not in fixed)
        specs = _per_arg(in_axes, len(args), "nnx.pmap")
        rest_axes = tuple(s for p, s in enumerate(specs) if p not in fixed)

        def inner(*dynamic: tp.Any) -> tp.Any:
            it = iter(dynamic)
            return f(*[fixed[p] if p in fixed else next(it) for p in range(len(args))])

        return _mapped(jax.pmap, "pmap", inner, rest_axes, out_axes, kwargs, transform_metadata)(
            *rest
        )

    return with_mode(with_statics, "nnx.pmap", graph, graph_updates)


def transform_metadata(
    f: tp.Any = None,
    *,
    in_axes: tp.Any = 0,
    out_axes: tp.Any = 0,
    partition: str | None = None,
    graph: bool | None = None,
) -> tp.Any:
    """For hand-written transforms that add an axis: inside ``f`` the ``partition``
    entry is removed from the sharding names of the graph-node arguments'
    Variables (at ``in_axes``); afterwards it is added back to them and added to
    the Variables of graph nodes in the output (at ``out_axes``). With
    ``partition=None`` the axis is removed and added as a ``None`` entry. Variable updates
    and structural changes made by ``f`` reach the caller's objects.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> @nnx.transform_metadata(out_axes=0, partition="layers")
        ... def stack():
        ...     return nnx.Param(jnp.ones((2, 3)), sharding_names=("model",))
        >>> stack().sharding_names
        ('layers', 'model')
    """
    if f is None:
        return functools.partial(
            transform_metadata, in_axes=in_axes, out_axes=out_axes, partition=partition, graph=graph
        )
    metadata = {PARTITION_NAME: partition}  # None: the axis is removed/added as None

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        args = bind_positional("transform_metadata", f, args, kwargs)
        call = _Call("transform_metadata", f, args, in_axes, out_axes, metadata)
        out_tree, in_slots, new, static = call.pure(call.values, list(call.lifted.dyn))
        return call.lifted.write_back(out_tree, _updates(static.value, in_slots, new))

    return wrapper
