"""Variables created inside an ``nnx.scan`` step.

A step may add Variables (or array attributes) to its graph-node arguments, most
often through :meth:`Module.sow` (``nnx.capture`` collects them afterwards). Such a
Variable did not exist when the loop started, so it can be neither carried nor
broadcast: it is a per-step output. Its state is stacked like any per-step output,
on the axis its argument's spec gives it (``StateAxes({nnx.Intermediate: 0, ...})``,
an int ``in_axes`` entry; axis 0 when a prefix tree from ``nnx.prefix`` has no entry
for it, as it was made before the Variable existed), and after the loop it is
attached to the caller's objects where the step created it.

Everything else about the structure must stay: every Variable and array attribute
the step received is still there afterwards (it may be updated in place).
"""

from __future__ import annotations

import typing as tp

import jax.numpy as jnp

from nnx_graph._errors import format_path
from nnx_graph._sharding import add_axis
from nnx_graph._variables import Variable
from nnx_graph.transforms._axes import Carry, StateAxes, is_prefix_tree
from nnx_graph.transforms._bridge import Structure, Trace
from nnx_graph.transforms._lift import Lifted

__all__ = ["Grown", "grown_values", "split_step_values"]


class Grown(tp.NamedTuple):
    """The structure after a step that created leaves (static, hashable)."""

    structure: Structure
    new: tuple[int, ...]  # indices (in ``structure.graphdef``) of the created leaves
    axes: tuple[int, ...]  # the axis each created leaf is stacked on


def _structure_error(lifted: Lifted, detail: str) -> Exception:
    return lifted.structure_error(
        "nnx.scan: the function changed the structure of its graph-node arguments "
        f"({detail}), which this transform cannot carry out: its outputs must have a "
        "fixed structure.\nExpected: only Variable values to change, or new Variables "
        "(e.g. Module.sow) stacked on an int axis.\nFix: create or restructure objects "
        "outside nnx.scan (or inside nnx.jit), e.g. initialise attributes in __init__ "
        "instead of on first call; give Variables created per step an int axis "
        "(nnx.StateAxes({nnx.Intermediate: 0, ...: ...}))."
    )


def _new_axis(spec: tp.Any, path: tuple[tp.Any, ...], leaf: tp.Any, root: str) -> tp.Any:
    """The axis of a leaf created at ``path`` inside an argument whose spec is ``spec``."""
    if is_prefix_tree(spec):
        node: tp.Any = spec
        for key in path:
            if not isinstance(node, tp.Mapping) or isinstance(node, StateAxes):
                break
            if key not in node:
                return 0  # made before the leaf existed: a per-step output
            node = node[key]
        spec = node.get_value() if isinstance(node, Variable) else node
    if isinstance(spec, StateAxes):
        return spec.axis_for(path, leaf, "nnx.scan", root)
    return spec


def split_step_values(
    lifted: Lifted,
    specs: tp.Sequence[tp.Any],
    node_pos: tp.Sequence[int],
    trace: Trace,
    metadata: tp.Mapping[str, tp.Any],
) -> tuple[list[tp.Any], list[tp.Any], Grown | None]:
    """Inside the step, after the call: ``(values of the input leaves in input
    order, values of the created leaves, Grown or None)``. Raises for any other
    structural change."""
    result = lifted.bridge.exit(trace, None)
    structure = result.outcome.structure
    if structure is None:
        return result.values, [], None
    if structure.num_out_nodes:
        raise _structure_error(lifted, "it returned Modules/Variables")
    origins = structure.origins
    n_in = len(lifted.bridge.leaves)
    kept = sorted(o for o in origins if o >= 0)
    if kept != list(range(n_in)):
        missing = sorted(set(range(n_in)) - set(kept))
        what = (
            f"{lifted.describe_leaf(missing[0])} was removed or replaced"
            if missing
            else "a Variable is reached twice"
        )
        raise _structure_error(lifted, what)
    position = {o: j for j, o in enumerate(origins) if o >= 0}
    old_paths, new_paths = lifted.bridge.graphdef.leaf_paths, structure.graphdef.leaf_paths
    for i, j in position.items():
        if old_paths[i] != new_paths[j]:
            # a Variable moved (m.a, m.b = m.b, m.a): the loop would have to move it
            # at every step, which the traced step cannot express
            raise _structure_error(
                lifted,
                f"{lifted.describe_leaf(i)} moved to "
                f"{format_path(tuple(new_paths[j][2:]), lifted.root_names()[new_paths[j][1]])}",
            )
    values = [result.values[position[i]] for i in range(n_in)]
    names = lifted.root_names()
    new: list[int] = []
    axes: list[int] = []
    paths = structure.graphdef.leaf_paths
    for j, origin in enumerate(origins):
        if origin >= 0:
            continue
        root, *rest = paths[j][1:]
        path = tuple(rest)
        root_name = names[root] if root < len(names) else f"arg{root}"
        leaf = result.leaves[j]
        axis = _new_axis(specs[node_pos[root]], path, leaf, root_name)
        if not isinstance(axis, int) or isinstance(axis, bool):
            shown = "nnx.Carry" if axis is Carry else repr(axis)
            raise _structure_error(
                lifted,
                f"{format_path(path, root_name)} ({type(leaf).__name__}) was created by the "
                f"step with axis {shown}; a Variable that did not exist before the loop can "
                "only be stacked as a per-step output",
            )
        new.append(j)
        axes.append(axis)
    if metadata:
        # the created Variables get the scan axis in their sharding metadata, which
        # is part of the structure: flatten again
        for j, axis in zip(new, axes):
            if isinstance(result.leaves[j], Variable):
                add_axis([result.leaves[j]], axis, metadata)
        result = lifted.bridge.exit(trace, None)
        assert result.outcome.structure is not None
        structure = result.outcome.structure
    created = [result.values[j] for j in new]
    return values, created, Grown(structure, tuple(new), tuple(axes))


def grown_values(
    grown: Grown, values: tp.Sequence[tp.Any], stacked: tp.Sequence[tp.Any]
) -> list[tp.Any]:
    """Outside, after the loop: every leaf value of ``grown.structure.graphdef``
    from the input leaves' final values and the created leaves' stacked values
    (stacked on axis 0, moved to their axis)."""
    full: list[tp.Any] = [None] * len(grown.structure.origins)
    for j, origin in enumerate(grown.structure.origins):
        if origin >= 0:
            full[j] = values[origin]
    for j, axis, value in zip(grown.new, grown.axes, stacked):
        full[j] = value if axis == 0 or value is None else jnp.moveaxis(value, 0, axis)
    return full
