"""Map user-facing sharding specs (per argument / per output) onto graph leaves."""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax

from nnx_graph._errors import format_path
from nnx_graph._graph import state as graph_state
from nnx_graph._graphdef import LEAF, RefDef, VariableDef, walk
from nnx_graph._state import State, to_flat_state
from nnx_graph._variables import Variable
from nnx_graph.transforms._axes import StateAxes
from nnx_graph.transforms._bridge import is_node

__all__ = [
    "constrain_tree",
    "is_sharding",
    "keep_input_shardings",
    "leaf_shardings",
    "variable_at",
]


def is_sharding(x: object) -> bool:
    return isinstance(x, (jax.sharding.Sharding, jax.sharding.PartitionSpec))


_reshard: tp.Callable[..., tp.Any] = jax.sharding.reshard
_with_sharding_constraint: tp.Callable[..., tp.Any] = jax.lax.with_sharding_constraint


def _constrain(x: tp.Any, sharding: tp.Any) -> tp.Any:
    """Place a traced value: ``reshard`` on meshes with Explicit axes (where
    ``with_sharding_constraint`` is rejected), ``with_sharding_constraint`` otherwise."""
    if isinstance(sharding, jax.sharding.PartitionSpec):
        mesh: tp.Any = jax.sharding.get_abstract_mesh()
    else:
        mesh = getattr(sharding, "mesh", None)
    axis_types = getattr(mesh, "axis_types", ()) or ()
    if any(t == jax.sharding.AxisType.Explicit for t in axis_types):
        return _reshard(x, sharding)
    return _with_sharding_constraint(x, sharding)


def _lookup(spec: tp.Any, path: tuple[tp.Any, ...], where: str, leaf: tp.Any = None) -> tp.Any:
    """Find the sharding for a leaf at ``path`` inside ``spec`` (a sharding, None,
    a State/mapping with shardings at leaf paths, or a ``StateSharding``, which
    needs the ``leaf`` to match its filters)."""
    if spec is None or is_sharding(spec):
        return spec
    if isinstance(spec, StateAxes):
        return spec.axis_for(path, leaf, where, "state")
    if isinstance(spec, Variable):
        return spec.get_value()
    if isinstance(spec, Mapping):
        node: tp.Any = spec
        for key in path:
            if node is None or is_sharding(node):
                return node
            if isinstance(node, Variable):
                return node.get_value()
            if not isinstance(node, Mapping) or key not in node:
                raise ValueError(
                    f"{where}: no sharding given for {format_path(path, 'state')}. Expected "
                    "the sharding State to cover every leaf of the object (as produced by "
                    "nnx.get_named_sharding(nnx.state(model), mesh)). Fix: build it from the "
                    "same object, or pass a single Sharding for all its leaves."
                )
            node = node[key]
        return node.get_value() if isinstance(node, Variable) else node
    raise TypeError(
        f"{where}: expected a jax Sharding, a PartitionSpec, None, or a State of them; "
        f"found {type(spec).__name__}."
    )


def leaf_shardings(
    spec_per_node: tp.Sequence[tp.Any],
    leaf_paths: tp.Sequence[tuple[tp.Any, ...]],
    where: str,
    leaves: tp.Sequence[tp.Any] | None = None,
) -> list[tp.Any]:
    """One sharding per leaf; ``leaf_paths`` are ``(node_index, *path)``; ``leaves``
    (the Variables, in the same order) are needed for ``StateSharding`` specs."""
    return [
        _lookup(spec_per_node[p[0]], tuple(p[1:]), where, leaves[i] if leaves else None)
        for i, p in enumerate(leaf_paths)
    ]


def constrain_tree(out: tp.Any, spec: tp.Any) -> tp.Any:
    """Apply ``with_sharding_constraint`` to ``out`` following ``spec`` (a pytree
    prefix of ``out`` whose entries may be shardings or sharding States for graph
    nodes)."""

    def apply(sub_spec: tp.Any, value: tp.Any) -> tp.Any:
        if sub_spec is None:
            return value
        if is_node(value):
            flat = to_flat_state(graph_state(value))
            for path, var in flat:
                sharding = _lookup(sub_spec, path, "out_shardings", var)
                if sharding is not None:
                    var._raw_value = _constrain(var._raw_value, sharding)
            return value
        if is_sharding(sub_spec):
            return jax.tree.map(lambda x: _constrain(x, sub_spec), value)
        if isinstance(sub_spec, State):
            return jax.tree.map(
                lambda s, x: _constrain(x, s) if s is not None else x, sub_spec, value
            )
        return value

    if spec is None:
        return out
    if is_sharding(spec) or isinstance(spec, State) or is_node(out):
        return apply(spec, out)
    return jax.tree.map(
        apply, spec, out, is_leaf=lambda x: is_sharding(x) or x is None or isinstance(x, State)
    )


# writing a Variable's value through its slot skips Variable.__setattr__ (traced)
_SET_RAW = Variable.__dict__["_raw_value"].__set__


def variable_at(root: tp.Any, path: tp.Sequence[tp.Any]) -> tp.Any:
    """The object at ``path`` below ``root`` now (None when the path is gone)."""
    node = root
    for key in path:
        if isinstance(key, int) or isinstance(node, tp.Mapping):
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return None
        else:
            node = getattr(node, str(key), None)
        if node is None:
            return None
    return node if isinstance(node, Variable) else None


def keep_input_shardings(
    trace: tp.Any, paths: tp.Sequence[tuple[tp.Any, ...]], specs: tp.Sequence[tp.Any]
) -> None:
    """Constrain each Variable the function updated (or replaced) to its
    ``in_shardings`` entry: a graph node's state leaves with the sharding it was
    given, as in Flax."""
    for path, before, spec in zip(paths, trace.values, specs):
        if spec is None:
            continue
        var = variable_at(trace.roots[path[0]], path[1:])
        value = None if var is None else var._raw_value
        if value is not before and isinstance(value, jax.Array):
            _SET_RAW(var, _constrain(value, spec))


def place_leaves(leaves: tp.Sequence[tp.Any], shardings: tp.Sequence[tp.Any]) -> None:
    """Put each leaf's array on its ``in_shardings`` entry, in the caller's object
    (as Flax's jit hands the resharded state back): done once per cache entry, so
    later calls find the arrays already placed."""
    for leaf, sharding in zip(leaves, shardings):
        value = leaf._raw_value
        if (
            sharding is None
            or not isinstance(value, jax.Array)
            or isinstance(value, jax.core.Tracer)
        ):
            continue
        if isinstance(sharding, jax.sharding.Sharding) and value.sharding == sharding:
            continue
        try:
            placed = jax.device_put(value, sharding)
        except (TypeError, ValueError, RuntimeError):
            continue  # e.g. a bare PartitionSpec outside a mesh: jax.jit places it
        leaf._raw_value = placed


def check_sharding_aliasing(
    graphdef: tp.Any,
    spec_per_node: tp.Sequence[tp.Any],
    shardings: tp.Sequence[tp.Any],
    where: str,
) -> None:
    """Raise ValueError when a Variable reached through two arguments gets two
    different ``in_shardings`` (``shardings``: per leaf, from its first path)."""
    first: dict[int, tuple[int, tuple[tp.Any, ...]]] = {}  # Variable node -> leaf, path
    leaf = 0
    for visit in walk(graphdef):
        record = visit.record
        if isinstance(record, VariableDef):
            first[record.node_index] = (leaf, tuple(visit.path[1:]))
            leaf += 1
        elif record.tag == LEAF:
            leaf += 1
        elif isinstance(record, RefDef) and record.node_index in first:
            i, first_path = first[record.node_index]
            path = tuple(visit.path[1:])
            try:
                other = _lookup(spec_per_node[path[0]], path[1:], where)
            except (ValueError, TypeError, AttributeError):
                continue  # a StateSharding needs the Variable: checked on first use
            if other != shardings[i]:
                a, b = (
                    format_path(first_path[1:], f"arg{first_path[0]}"),
                    format_path(path[1:], f"arg{path[0]}"),
                )
                raise ValueError(
                    f"{where}: Inconsistent aliasing detected: {a} and {b} are the same "
                    f"Variable with different shardings ({shardings[i]!r} and {other!r}). "
                    "Expected one sharding per Variable. Fix: give both arguments the same "
                    "sharding for it, or pass the object once."
                )
