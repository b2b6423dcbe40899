"""Graph nodes in the per-step outputs of ``nnx.scan``.

A per-step output may hold

* Modules/Variables created inside the step: they are split, their state is
  stacked by ``jax.lax.scan`` like any output, and they come out as new objects
  whose Variables have the extra axis (at the output's axis, per Variable with a
  :class:`StateAxes`);
* objects passed in as scanned arguments, returned on the same axis they came in
  on: the caller's object comes out (its state updated like any argument's).

Objects carried or broadcast (axis ``nnx.Carry``/``None``) cannot also be
stacked, so returning them per step raises, as in Flax ("Inconsistent aliasing").
"""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp

from nnx_graph._errors import format_path
from nnx_graph._graph import merge, split
from nnx_graph._graph_iter import iter_graph
from nnx_graph._sharding import add_axis
from nnx_graph._state import State, from_flat_state, to_flat_state
from nnx_graph._variables import Variable
from nnx_graph.transforms._axes import StateAxes, is_prefix_tree, lookup_prefix
from nnx_graph.transforms._bridge import Trace, fill_tree, holes_of, is_node
from nnx_graph.transforms._lift import Lifted

__all__ = ["YsNodes", "is_spec_leaf", "lift_ys_nodes", "node_specs"]

WHERE = "nnx.scan"


def is_spec_leaf(x: object) -> bool:
    """An output spec that applies to a whole output (sub)tree: an int, None,
    ``nnx.Carry``, a StateAxes, or a State of axes (``nnx.prefix``)."""
    return x is None or isinstance(x, (int, type, StateAxes, State))


def node_specs(spec: tp.Any, tree: tp.Any, num_nodes: int) -> list[tp.Any]:
    """The out spec of each graph node (by hole index) of an output ``tree`` whose
    spec is ``spec`` (a prefix of it)."""
    if is_spec_leaf(spec):
        return [spec] * num_nodes
    specs: list[tp.Any] = [0] * num_nodes

    def assign(s: tp.Any, sub: tp.Any) -> None:
        for k in holes_of(sub):
            specs[k] = s

    jax.tree.map(assign, spec, tree, is_leaf=is_spec_leaf)
    return specs


def axis_of(spec: tp.Any, path: tuple[tp.Any, ...], leaf: tp.Any, root: str) -> tp.Any:
    """The axis of the Variable at ``path`` inside an output with spec ``spec``."""
    if is_prefix_tree(spec):
        spec = lookup_prefix(spec, path, WHERE, root)
    if isinstance(spec, StateAxes):
        return spec.axis_for(path, leaf, WHERE, root)
    return spec


class YsNodes:
    """Static description of the graph nodes of the per-step outputs (compared by
    identity: one per trace of the step)."""

    __slots__ = ("axes", "graphdef", "refs")

    def __init__(
        self,
        refs: tuple[tuple[str, tp.Any], ...],
        graphdef: tp.Any,
        axes: tuple[tuple[tuple[tp.Any, ...], int], ...],
    ) -> None:
        self.refs = refs  # per node: ("in", (root, *path)) or ("new", j)
        self.graphdef = graphdef  # of the tuple of new nodes (None when none)
        self.axes = axes  # (state path, out axis) per leaf of the new nodes

    def rebuild(
        self,
        ys_tree: tp.Any,
        stacked: State | None,
        callers: tp.Sequence[tp.Any],
        metadata: tp.Mapping[str, tp.Any],
    ) -> tp.Any:
        """Outside, after the scan: the per-step outputs with their graph nodes."""
        new_nodes: tuple[tp.Any, ...] = ()
        if self.graphdef is not None and stacked is not None:
            moved = dict(self.axes)
            pairs = []
            for path, var in to_flat_state(stacked):
                axis = moved.get(tuple(path), 0)
                if axis != 0 and isinstance(var, Variable):
                    var = var.replace(jnp.moveaxis(var.get_value(), 0, axis))
                pairs.append((path, var))
            new_nodes = merge(self.graphdef, from_flat_state(pairs))
            if metadata:
                by_path = _by_path(new_nodes)
                for path, axis in self.axes:
                    var = by_path.get(tuple(path))
                    if isinstance(var, Variable):
                        add_axis([var], axis, metadata)
        nodes = []
        for kind, where in self.refs:
            if kind == "new":
                nodes.append(new_nodes[where])
            else:
                root, *path = where
                nodes.append(_by_path(callers[root])[tuple(path)] if path else callers[root])
        return fill_tree(ys_tree, nodes)


def _by_path(root: tp.Any) -> dict[tuple[tp.Any, ...], tp.Any]:
    return {tuple(p): node for p, node in iter_graph(root)}


def lift_ys_nodes(
    lifted: Lifted,
    trace: Trace,
    axes: tp.Sequence[tp.Any],
    ys_tree: tp.Any,
    ys_nodes: tp.Sequence[tp.Any],
    ys_spec: tp.Any,
) -> tuple[YsNodes, State | None]:
    """Inside the step: describe the graph nodes of the per-step outputs and
    return the state of the new ones (to be stacked by the scan)."""
    specs = node_specs(ys_spec, ys_tree, len(ys_nodes))
    leaf_of = {
        id(v): i for i, v in enumerate(lifted.bridge.inner_variables(trace)) if v is not None
    }
    inside: dict[int, tuple[tp.Any, ...]] = {}
    for path, node in iter_graph(tuple(trace.roots)):
        if is_node(node):
            inside.setdefault(id(node), tuple(path))
    refs: list[tuple[str, tp.Any]] = []
    new_nodes: list[tp.Any] = []
    new_specs: list[tp.Any] = []
    for j, (node, spec) in enumerate(zip(ys_nodes, specs)):
        out_name = f"output[{j}]"
        if id(node) in inside:
            own = [(p, v) for p, v in iter_graph(node) if isinstance(v, Variable)]
            if isinstance(node, Variable):
                own = [((), node)]
            for sub, var in own:
                i = leaf_of.get(id(var))
                if i is None:
                    continue
                out_axis = axis_of(spec, tuple(sub), var, out_name)
                if axes[i] != out_axis:
                    out_path = format_path(tuple(sub), out_name)
                    _aliasing(lifted.describe_leaf(i), axes[i], out_path, out_axis)
            refs.append(("in", inside[id(node)]))
            continue
        for sub, value in iter_graph(node):
            if is_node(value) and id(value) in inside:
                i = leaf_of.get(id(value))
                name = lifted.describe_leaf(i) if i is not None else "an argument's object"
                raise ValueError(
                    f"{WHERE}: Inconsistent aliasing detected: the per-step output "
                    f"{format_path(tuple(sub), out_name)} is {name}, held by a new object "
                    "created in the step. Expected new objects to hold only state created "
                    "in the step. Fix: return the argument's object separately, or copy "
                    "its values into new Variables."
                )
        refs.append(("new", len(new_nodes)))
        new_nodes.append(node)
        new_specs.append(spec)
    if not new_nodes:
        return YsNodes(tuple(refs), None, ()), None
    graphdef, state = split(tuple(new_nodes))
    leaf_axes: list[tuple[tuple[tp.Any, ...], int]] = []
    for path, var in to_flat_state(state):
        k, *rest = path
        axis = axis_of(new_specs[int(k)], tuple(rest), var, f"output[{k}]")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(
                f"{WHERE}: Cannot broadcast output state: the per-step output "
                f"{format_path(tuple(rest), f'output[{k}]')} ({type(var).__name__}) created "
                f"in the step has out axis {axis!r}. Expected an int axis to stack it on. "
                "Fix: give it an int axis in out_axes (or its StateAxes), or return it "
                "through the carry."
            )
        leaf_axes.append((tuple(path), axis))
    return YsNodes(tuple(refs), graphdef, tuple(leaf_axes)), state


def _aliasing(in_name: str, in_axis: tp.Any, out_name: str, out_axis: tp.Any) -> tp.NoReturn:
    raise ValueError(
        f"{WHERE}: Inconsistent aliasing detected: {in_name} is returned as the per-step "
        f"output {out_name} with out axis {out_axis!r} but was passed with in axis "
        f"{in_axis!r}, so it would need two axes at once. Expected an object returned per "
        "step to be scanned on the same axis going in and out. Fix: return it through "
        "the carry, make its out axis match, or return its values (e.g. m.w[...])."
    )
