"""``nnx.scan``: ``jax.lax.scan`` over functions of graph nodes.

Each argument is either the carry (``nnx.Carry``), scanned along an axis (an int),
or broadcast (``None``); graph-node arguments may mix these per Variable with
``StateAxes``.  Variables that are not scanned (carry or broadcast) are threaded
through the loop as carry, so updates to them (RNG counts, statistics) come out.
"""

from __future__ import annotations

import functools
import typing as tp

import jax
import jax.numpy as jnp

from nnx_graph._errors import GraphStructureError
from nnx_graph.transforms._axes import Carry, StateAxes, check_state_axes_used, leaf_axes
from nnx_graph.transforms._bridge import split_tree
from nnx_graph.transforms._lift import Lifted, positions_of_nodes

__all__ = ["scan"]


def _move(x: tp.Any, src: int, dst: int) -> tp.Any:
    return x if src == dst else jnp.moveaxis(x, src, dst)


def scan(f: tp.Any = None, *, length: int | None = None, reverse: bool = False,
         unroll: int | bool = 1, _split_transpose: bool = False,
         in_axes: tp.Any = (Carry, 0), out_axes: tp.Any = (Carry, 0),
         transform_metadata: tp.Mapping[str, tp.Any] = {},  # noqa: B006
         graph: tp.Any = None, graph_updates: tp.Any = None) -> tp.Any:
    """Scan a function over the leading (or given) axis of some arguments.

    ``in_axes`` gives per argument ``nnx.Carry``, an int axis to scan over, ``None``
    (broadcast) or a :class:`StateAxes`. ``out_axes`` is ``nnx.Carry`` (the
    function returns only the carry) or a tuple such as ``(nnx.Carry, 0)`` (carry
    and per-step outputs stacked on axis 0). A stack of layers created with
    ``vmap`` applies with ``scan`` (scan over layers).

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Lin(nnx.Module):
        ...     def __init__(self, rngs):
        ...         self.w = nnx.Param(jax.random.normal(rngs.params(), (3, 3)) * 0.1)
        ...     def __call__(self, x):
        ...         return jnp.tanh(x @ self.w)
        >>> @nnx.split_rngs(splits=4)
        ... @nnx.vmap
        ... def create(rngs):
        ...     return Lin(rngs)
        >>> stack = create(nnx.Rngs(0))
        >>> @nnx.scan(in_axes=(0, nnx.Carry), out_axes=nnx.Carry)
        ... def forward(layer, x):
        ...     return layer(x)
        >>> forward(stack, jnp.ones((2, 3))).shape
        (2, 3)
    """
    if f is None:
        return lambda fn: scan(fn, length=length, reverse=reverse, unroll=unroll,
                               in_axes=in_axes, out_axes=out_axes,
                               transform_metadata=transform_metadata)

    @functools.wraps(f)
    def wrapper(*args: tp.Any) -> tp.Any:
        specs = list(in_axes) if isinstance(in_axes, (tuple, list)) else [in_axes] * len(args)
        if len(specs) != len(args):
            raise ValueError(
                f"nnx.scan: in_axes has {len(specs)} entries but the function got {len(args)} "
                "arguments. Expected one spec per argument (nnx.Carry, an int, None or "
                "nnx.StateAxes). Fix: e.g. in_axes=(nnx.Carry, 0)."
            )
        carry_positions = [i for i, s in enumerate(specs) if s is Carry]
        if len(carry_positions) > 1:
            raise ValueError(
                f"nnx.scan: in_axes marks arguments {carry_positions} as nnx.Carry; expected "
                "at most one. Fix: pack the carries into one tuple argument."
            )
        lifted = Lifted("scan", args, {})
        bridge = lifted.bridge
        node_pos = positions_of_nodes(args)
        leaf_arg = [node_pos[p[0]] for p in bridge.paths]
        check_state_axes_used(specs, leaf_arg, bridge.paths, bridge.leaves, "nnx.scan")
        axes = leaf_axes(specs, leaf_arg, bridge.paths, bridge.leaves, "nnx.scan")
        scanned = [i for i, a in enumerate(axes) if isinstance(a, int) and a is not Carry]
        looped = [i for i, a in enumerate(axes) if i not in set(scanned)]
        values = lifted.values()
        # non-graph leaves of each argument
        dyn_spec: list[tp.Any] = []
        for pos, arg in enumerate(args):
            tree, nodes = split_tree(arg)
            n = len(jax.tree.leaves(tree))
            spec = specs[pos]
            dyn_spec.extend([spec if not isinstance(spec, StateAxes) else None] * n)
        dyn = lifted.dyn
        dyn_scanned = [i for i, s in enumerate(dyn_spec) if isinstance(s, int) and s is not Carry]
        dyn_carry = [i for i, s in enumerate(dyn_spec) if s is Carry]
        dyn_const = [i for i, s in enumerate(dyn_spec) if s is None]
        lengths: dict[int, list[str]] = {}
        for i in scanned:
            shape = jnp.shape(values[i])
            if len(shape) <= axes[i]:
                raise ValueError(
                    f"nnx.scan: {bridge.describe_leaf(i)} ({type(bridge.leaves[i]).__name__}) "
                    f"has shape {shape} but is scanned over axis {axes[i]}. Expected a stacked "
                    "value with that axis (e.g. created with nnx.vmap + nnx.split_rngs). Fix: "
                    "broadcast it with None / nnx.StateAxes, or stack it."
                )
            lengths.setdefault(shape[axes[i]], []).append(bridge.describe_leaf(i))
        if len(lengths) > 1:
            detail = "; ".join(f"length {n}: {', '.join(p[:3])}" for n, p in lengths.items())
            raise ValueError(
                f"nnx.scan: scanned Variables have different lengths along their scan axis "
                f"({detail}). Expected one length. Fix: broadcast the odd ones out with "
                "nnx.StateAxes."
            )
        xs_graph = [_move(values[i], axes[i], 0) for i in scanned]
        xs_dyn = [_move(dyn[i], dyn_spec[i], 0) for i in dyn_scanned]
        carry_graph = [values[i] for i in looped]
        carry_dyn = [dyn[i] for i in dyn_carry]
        const_dyn = [dyn[i] for i in dyn_const]
        out_specs = out_axes if isinstance(out_axes, (tuple, list)) else None
        record: dict[str, tp.Any] = {}

        def body(carry: tp.Any, xs: tp.Any) -> tp.Any:
            c_graph, c_dyn = carry
            x_graph, x_dyn = xs
            full = list(values)
            for i, v in zip(looped, c_graph):
                full[i] = v
            for i, v in zip(scanned, x_graph):
                full[i] = v
            dyn_full = list(dyn)
            for i, v in zip(dyn_carry, c_dyn):
                dyn_full[i] = v
            for i, v in zip(dyn_scanned, x_dyn):
                dyn_full[i] = v
            for i, v in zip(dyn_const, const_dyn):
                dyn_full[i] = v
            out, roots, _ = lifted.call(f, full, dyn_full)
            # split the output into carry and stacked parts
            if out_axes is Carry:
                carry_out, ys = out, ()
            elif out_specs is not None:
                if not isinstance(out, (tuple, list)) or len(out) != len(out_specs):
                    raise ValueError(
                        f"nnx.scan: out_axes {out_axes!r} expects the function to return a "
                        f"tuple of {len(out_specs)}; found {type(out).__name__}. Fix: return "
                        "(carry, y) or change out_axes."
                    )
                carry_out = tuple(o for o, s in zip(out, out_specs) if s is Carry)
                carry_out = carry_out[0] if len(carry_out) == 1 else carry_out
                ys = tuple(o for o, s in zip(out, out_specs) if s is not Carry)
            else:
                carry_out, ys = None, out
            carry_tree, carry_nodes = split_tree(carry_out)
            in_carry_nodes = [roots[k] for k, p in enumerate(node_pos)
                              if carry_positions and p == carry_positions[0]]
            if carry_nodes and [id(n) for n in carry_nodes] != [id(n) for n in in_carry_nodes]:
                raise GraphStructureError(
                    "nnx.scan: the carry returned holds different Modules/Variables than the "
                    "carry passed in. Expected the same objects (updated in place). Fix: "
                    "return the carry argument itself."
                )
            _, new_values = lifted.finish(roots, None, allow_structure=False, full=True)
            new_c_dyn = jax.tree.leaves(carry_tree)
            if len(new_c_dyn) != len(c_dyn):
                raise GraphStructureError(
                    f"nnx.scan: the carry has {len(c_dyn)} array leaves going in but "
                    f"{len(new_c_dyn)} coming out. Expected the same structure. Fix: return a "
                    "carry shaped like the one passed in."
                )
            record["carry_tree"] = carry_tree
            ys_tree, ys_nodes = split_tree(ys)
            if ys_nodes:
                raise GraphStructureError(
                    "nnx.scan: per-step outputs may not contain Modules or Variables. Fix: "
                    "create stacked Modules with nnx.vmap, or return arrays."
                )
            return (([new_values[i] for i in looped], new_c_dyn),
                    ([new_values[i] for i in scanned], ys_tree))

        (c_graph, c_dyn), (ys_graph, ys) = jax.lax.scan(
            body, (carry_graph, carry_dyn), (xs_graph, xs_dyn), length=length,
            reverse=reverse, unroll=unroll,
        )
        updates = {}
        for i, v in zip(looped, c_graph):
            updates[i] = v
        for i, v in zip(scanned, ys_graph):
            updates[i] = _move(v, 0, axes[i])
        bridge.apply_changes(updates)
        carry_value = jax.tree.unflatten(jax.tree.structure(record["carry_tree"]), c_dyn)
        if carry_positions:
            _, carry_nodes_in = split_tree(args[carry_positions[0]])
            if carry_nodes_in:
                from nnx_graph.transforms._bridge import fill_tree

                carry_value = fill_tree(record["carry_tree"], carry_nodes_in) if not c_dyn \
                    else carry_value
        if out_axes is Carry:
            return carry_value
        if out_specs is None:
            return ys
        result = []
        y_iter = iter(ys if isinstance(ys, tuple) else (ys,))
        for s in out_specs:
            if s is Carry:
                result.append(carry_value)
            else:
                y = next(y_iter)
                result.append(jax.tree.map(lambda v, s=s: _move(v, 0, s), y)
                              if isinstance(s, int) and s != 0 else y)
        return tuple(result)

    return wrapper
