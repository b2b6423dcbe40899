"""Run a function that takes graph nodes under an arbitrary JAX transform.

``Lifted`` finds the graph nodes in a call's arguments, builds the ``Bridge`` for
them, and offers the pure function ``(values, dynamic_leaves) -> outputs`` that JAX
transforms see.  Transforms differ only in how they call that pure function and
which JAX transform wraps it; reading, writing back and structural updates are
the bridge's job.
"""

from __future__ import annotations

import inspect
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np

from nnx_graph._errors import GraphStructureError
from nnx_graph.transforms._bridge import Bridge, Exit, arg_names, fill_tree, split_tree, tree_names

__all__ = ["Lifted", "bind_positional", "carry_type_error", "describe_aval", "positions_of_nodes"]


class Lifted:
    """The graph nodes of one call plus the rest of its arguments as JAX leaves."""

    def __init__(
        self,
        name: str,
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        fun: tp.Any = None,
        param_names: tp.Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.fun = fun
        self.param_names = param_names
        tree, nodes = split_tree((args, kwargs))
        self.tree = tree
        self.dyn, self.treedef = jax.tree.flatten(tree)
        self.nodes = nodes
        self._names: tuple[list[str], list[str]] | None = None
        self.bridge = Bridge(nodes, where=f"nnx.{name}", root_names=self.root_names)
        self.exits: list[Exit] = []

    # ------------------------------------------------------------- names for errors
    def _all_names(self) -> tuple[list[str], list[str]]:
        if self._names is None:
            names = self.param_names
            if names is None:
                names = arg_names(self.fun) if self.fun is not None else []
            self._names = tree_names(self.tree, names)
        return self._names

    def root_names(self) -> list[str]:
        """A name per graph node found in the arguments (``model``, ``batch['m']``)."""
        return self._all_names()[0]

    def dyn_names(self) -> list[str]:
        """A name per non-graph leaf of the arguments (``x``, ``batch['x']``)."""
        return self._all_names()[1]

    def describe_leaf(self, i: int) -> str:
        return self.bridge.describe_leaf(i, self.root_names())

    # ------------------------------------------------------------- inside
    def values(self) -> list[tp.Any]:
        return self.bridge.values()

    def enter(
        self, values: tp.Sequence[tp.Any], dyn: tp.Sequence[tp.Any]
    ) -> tuple[tuple[tp.Any, ...], tuple[tp.Any, ...], dict[str, tp.Any]]:
        """Inside the transform: fresh objects; returns ``(roots, args, kwargs)``."""
        roots = self.bridge.enter(list(values))
        args, kwargs = fill_tree(jax.tree.unflatten(self.treedef, list(dyn)), roots)
        return roots, tuple(args), dict(kwargs)

    def call(
        self, f: tp.Callable[..., tp.Any], values: tp.Sequence[tp.Any], dyn: tp.Sequence[tp.Any]
    ) -> tuple[tp.Any, tuple[tp.Any, ...]]:
        """Inside the transform: run ``f``; return ``(out, inner_roots)``."""
        roots, args, kwargs = self.enter(values, dyn)
        return f(*args, **kwargs), roots

    def finish(
        self, roots: tuple[tp.Any, ...], out: tp.Any, *, allow_structure: bool
    ) -> tuple[tp.Any, list[tp.Any]]:
        """Inside: flatten after the call. Returns ``(out_tree, new_values)``: the
        output with graph nodes replaced by holes, and every leaf value of
        (inputs, output nodes) in the order of the exit GraphDef."""
        out_tree, new_values, info = self.bridge.exit(roots, out)
        if not info.same_structure and not allow_structure:
            raise GraphStructureError(
                f"nnx.{self.name}: the function changed the structure of its graph-node "
                "arguments (added, removed or replaced attributes, Variables or list "
                "entries) or returned Modules/Variables, which this transform cannot "
                "carry out: its outputs must have a fixed structure.\nExpected: only "
                "Variable values to change.\nFix: create or restructure objects outside "
                f"nnx.{self.name} (or inside nnx.jit), e.g. initialise attributes in "
                "__init__ instead of on first call."
            )
        self.exits.append(info)
        return out_tree, new_values

    # ------------------------------------------------------------- outside
    def apply(self, out_tree: tp.Any, new_values: tp.Sequence[tp.Any]) -> tp.Any:
        """Write the values ``finish`` returned back to the caller's objects; return
        the output."""
        info = self.exits[-1]
        if info.same_structure:
            self.bridge.apply_changes(dict(enumerate(new_values)))
            return out_tree
        return self.bridge.apply_structure(info, new_values, out_tree)


def positions_of_nodes(args: tp.Sequence[tp.Any]) -> list[int]:
    """For each graph node found (in ``split_tree`` order) in ``args``, the index of
    the argument holding it."""
    positions: list[int] = []
    for i, a in enumerate(args):
        _, nodes = split_tree(a)
        positions.extend([i] * len(nodes))
    return positions


def describe_aval(x: tp.Any) -> str:
    """``float32[2,3]``: the shape and dtype a loop carry must keep."""
    return f"{jnp.result_type(x).name}{list(np.shape(x))}"


def carry_type_error(
    where: str,
    what: str,
    names: tp.Sequence[str],
    inputs: tp.Sequence[str],
    outputs: tp.Sequence[str],
) -> TypeError | None:
    """A readable error for a loop carry whose shapes/dtypes (``describe_aval``)
    changed, naming each changed entry; None when none did."""
    mismatched = [
        f"{name}: {a} going in, {b} coming out"
        for name, a, b in zip(names, inputs, outputs)
        if a != b
    ]
    if not mismatched:
        return None
    return TypeError(
        f"{where}: {what} must keep its shapes and dtypes from step to step; "
        + "; ".join(mismatched[:4])
        + ". Fix: return values of the same shape and dtype (e.g. cast with .astype(x.dtype))."
    )


def bind_positional(
    name: str, f: tp.Any, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]
) -> tuple[tp.Any, ...]:
    """Turn keyword arguments into positional ones using ``f``'s signature (for the
    transforms whose axis specs are per position: vmap, pmap, scan)."""
    if not kwargs:
        return args
    try:
        bound = inspect.signature(f).bind(*args, **kwargs)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"nnx.{name}: could not turn keyword arguments {sorted(kwargs)} into positional "
            f"ones ({error}). Expected arguments that the function's signature can bind "
            "positionally, since axis specs are given per position. Fix: pass them "
            "positionally."
        ) from None
    if bound.kwargs:
        raise TypeError(
            f"nnx.{name}: keyword-only arguments {sorted(bound.kwargs)} cannot be mapped "
            "(axis specs are given per position). Fix: pass them positionally or close "
            "over them."
        )
    return tuple(bound.args)
