"""FLOP counts for :func:`nnx_viz.tabulate`, from XLA's cost analysis of one call.

A Module call is compiled on abstract inputs (its own state and the recorded input
shapes), nothing runs, and the count is what ``Compiled.cost_analysis()`` reports.
The forward-and-backward count differentiates the call with respect to every
floating-point input and state leaf and pulls the outputs back through it.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax
import jax.numpy as jnp

import nnx_graph

__all__ = ["abstract", "call_flops"]


def abstract(tree: tp.Any) -> tp.Any:
    """Arrays (and tracers) replaced by ``jax.ShapeDtypeStruct``; other leaves kept."""

    def to_struct(leaf: tp.Any) -> tp.Any:
        if isinstance(leaf, jax.Array | jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)  # type: ignore[no-untyped-call]
        return leaf

    return jax.tree.map(to_struct, tree)


def _is_float(leaf: tp.Any) -> bool:
    return isinstance(leaf, jax.Array | jax.ShapeDtypeStruct) and jnp.issubdtype(
        leaf.dtype, jnp.inexact
    )


def _flops_of(compiled: tp.Any) -> int | None:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # pragma: no cover - backends without a cost model
        return None
    if isinstance(cost, list | tuple):  # older JAX: one dict per computation
        cost = cost[0] if cost else None
    if not isinstance(cost, Mapping) or "flops" not in cost:
        return None
    return max(0, round(float(cost["flops"])))


def call_flops(
    module: tp.Any,
    method: str,
    args: tuple[tp.Any, ...],
    kwargs: Mapping[str, tp.Any],
    *,
    backward: bool,
) -> int | None:
    """FLOPs of ``getattr(module, method)(*args, **kwargs)`` (``backward``: of its
    forward-and-backward pass). ``args``/``kwargs`` hold ``ShapeDtypeStruct``s for
    arrays and Python values for the rest; ``module`` is not modified."""
    graphdef, state = nnx_graph.split(module)
    state_leaves, state_def = jax.tree.flatten(abstract(state))
    call_leaves, call_def = jax.tree.flatten((args, kwargs))
    leaves = [*state_leaves, *call_leaves]
    split_at = len(state_leaves)
    traced = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.ShapeDtypeStruct)]
    if backward:
        diff = [i for i in traced if _is_float(leaves[i])]
        rest = [i for i in traced if i not in set(diff)]
    else:
        diff, rest = [], traced

    def forward(diff_values: list[tp.Any], rest_values: list[tp.Any]) -> tp.Any:
        filled = list(leaves)
        for i, value in zip(diff, diff_values):
            filled[i] = value
        for i, value in zip(rest, rest_values):
            filled[i] = value
        copy = nnx_graph.merge(graphdef, jax.tree.unflatten(state_def, filled[:split_at]))
        call_args, call_kwargs = jax.tree.unflatten(call_def, filled[split_at:])
        return getattr(copy, method)(*call_args, **call_kwargs)

    def forward_and_backward(diff_values: list[tp.Any], rest_values: list[tp.Any]) -> tp.Any:
        def float_outputs(values: list[tp.Any]) -> list[tp.Any]:
            return [o for o in jax.tree.leaves(forward(values, rest_values)) if _is_float(o)]

        # The outputs themselves are the cotangent: the forward pass stays in the
        # count (a constant cotangent would let XLA drop it), as Flax counts it.
        outputs, pullback = jax.vjp(float_outputs, diff_values)
        return pullback(outputs)

    fn = forward_and_backward if backward else forward
    try:
        lowered = jax.jit(fn).lower([leaves[i] for i in diff], [leaves[i] for i in rest])
        return _flops_of(lowered.compile())
    except Exception as error:
        error.add_note(
            f"nnx_viz.tabulate: computing the FLOPs of {type(module).__name__}.{method} "
            "compiles that call on its own. Fix: pass compute_flops=False / "
            "compute_vjp_flops=False to skip the FLOP columns."
        )
        raise


def call_counting_flops(
    call: tp.Callable[[tp.Any, tuple[tp.Any, ...], dict[str, tp.Any]], tp.Any],
    module: tp.Any,
    args: tuple[tp.Any, ...],
    kwargs: dict[str, tp.Any],
    on_copy: tp.Callable[[tp.Any], None],
) -> tuple[tp.Any, int | None]:
    """``call(module, args, kwargs)`` run as one jitted function whose lowering also
    gives XLA's FLOP count: the body runs once (lowering traces it; the call then
    reuses that trace), so nested recorded calls are seen once too. Inside, the
    call runs on a copy of ``module`` (``on_copy`` sees it first); the copy's state
    afterwards is written back into ``module``. Returns ``(output, flops)``."""
    graphdef, state = nnx_graph.split(module)
    leaves, treedef = jax.tree.flatten((args, kwargs))
    traced = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array)]

    def run(state: tp.Any, values: list[tp.Any]) -> tp.Any:
        copy = nnx_graph.merge(graphdef, state)
        on_copy(copy)
        filled = list(leaves)
        for i, value in zip(traced, values):
            filled[i] = value
        call_args, call_kwargs = jax.tree.unflatten(treedef, filled)
        out = call(copy, call_args, call_kwargs)
        return out, nnx_graph.state(copy)

    jitted = jax.jit(run)
    values = [leaves[i] for i in traced]
    flops = _flops_of(jitted.lower(state, values).compile())
    out, new_state = jitted(state, values)  # the trace is cached: the body does not rerun
    nnx_graph.update(module, new_state)
    return out, flops
