"""Run a function that takes graph nodes under an arbitrary JAX transform.

``Lifted`` finds the graph nodes in a call's arguments, builds the ``Bridge`` for
them, and offers the pure function ``(values, dynamic_leaves) -> (out, updates)``
that JAX transforms see (``Lifted.pure``, written once for every transform).
Transforms differ only in how they call that pure function and which JAX
transform wraps it; reading, writing back and structural updates are the
bridge's job.
"""

from __future__ import annotations

import inspect
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._graphdef import flatten_graph
from nnx_graph.transforms._axes import StateAxes, is_prefix_tree, lookup_prefix
from nnx_graph.transforms._bridge import (
    Bridge,
    Exit,
    Trace,
    Updates,
    arg_names,
    fill_tree,
    holes_of,
    is_node,
    split_tree,
    tree_names,
)
from nnx_graph.transforms._modes import Mode, take_pending

__all__ = [
    "Lifted",
    "bind_positional",
    "carry_type_error",
    "check_aliasing",
    "describe_aval",
    "positions_of_nodes",
    "root_specs",
    "spread_specs",
]


class Lifted:
    """The graph nodes of one call plus the rest of its arguments as JAX leaves.

    A ``Lifted`` is made per call and is never changed by a trace: ``enter``
    returns the call's :class:`Trace`, ``exit`` returns its :class:`Exit`, and the
    transform's output carries the :class:`Updates` to :meth:`write_back`.
    """

    def __init__(
        self,
        name: str,
        args: tuple[tp.Any, ...],
        kwargs: dict[str, tp.Any],
        fun: tp.Any = None,
        param_names: tp.Sequence[str] | None = None,
        mode: Mode | None = None,
        shared_inputs: bool = True,
    ) -> None:
        self.name = name
        self.fun = fun
        self.param_names = param_names
        tree, nodes = split_tree((args, kwargs))
        self.tree = tree
        self.dyn, self.treedef = jax.tree.flatten(tree)
        self.nodes = nodes
        self._names: tuple[list[str], list[str]] | None = None
        # graph=False / graph_updates=False (given, or set by ``with_mode``): _modes.py
        self.bridge = Bridge(
            nodes,
            where=f"nnx.{name}",
            root_names=self.root_names,
            mode=take_pending() if mode is None else mode,
            shared_inputs=shared_inputs,
        )
        # what exit raises for a structural change (cond/switch: also a TypeError)
        self.structure_error: type[Exception] = GraphStructureError

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
    ) -> tuple[Trace, tuple[tp.Any, ...], dict[str, tp.Any]]:
        """Inside the transform: fresh objects; returns ``(trace, args, kwargs)``."""
        trace = self.bridge.enter(values)
        args, kwargs = fill_tree(jax.tree.unflatten(self.treedef, list(dyn)), trace.roots)
        return trace, tuple(args), dict(kwargs)

    def exit(self, trace: Trace, out: tp.Any, *, allow_structure: bool) -> Exit:
        """Inside: flatten after the call; refuse a structural change (or graph
        nodes in the output) unless ``allow_structure``."""
        result = self.bridge.exit(trace, out)
        if not result.same_structure and not allow_structure:
            raise self.structure_error(
                f"nnx.{self.name}: the function changed the structure of its graph-node "
                "arguments (added, removed or replaced attributes, Variables or list "
                "entries) or returned Modules/Variables, which this transform cannot "
                "carry out: its outputs must have a fixed structure.\nExpected: only "
                "Variable values to change.\nFix: create or restructure objects outside "
                f"nnx.{self.name} (or inside nnx.jit), e.g. initialise attributes in "
                "__init__ instead of on first call."
            )
        return result

    def pure(
        self,
        f: tp.Callable[..., tp.Any],
        *,
        allow_structure: bool = False,
        changed_only: bool = True,
        split: tp.Callable[[tp.Any], tuple[tp.Any, tp.Any]] | None = None,
    ) -> tp.Callable[[list[tp.Any], list[tp.Any]], tp.Any]:
        """The function JAX transforms see: ``(values, dyn) -> (out_tree, updates)``.

        ``changed_only=False`` returns every leaf (branches of ``cond`` must agree on
        their output structure). ``split(out) -> (main, rest)`` separates a part of
        the output that must stay a plain JAX value (the differentiated output of
        ``grad``/``vjp``/``jvp``): then it returns ``(main, (rest_tree, updates))``."""

        def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
            trace, args, kwargs = self.enter(values, dyn)
            out = f(*args, **kwargs)
            main = None
            if split is not None:
                main, out = split(out)
            result = self.exit(trace, out, allow_structure=allow_structure)
            packed = (result.out_tree, result.updates(changed_only=changed_only))
            return packed if split is None else (main, packed)

        return pure

    # ------------------------------------------------------------- outside
    def write_back(self, out_tree: tp.Any, updates: Updates) -> tp.Any:
        """Write what a transform returned back to the caller's objects; returns the
        output."""
        return self.bridge.write_back(updates, out_tree)


def check_aliasing(
    lifted: Lifted,
    specs: tp.Sequence[tp.Any],
    node_pos: tp.Sequence[int],
    axes: tp.Sequence[tp.Any],
    where: str,
) -> None:
    """Raise ValueError when one Variable is reached through two arguments whose
    specs give it different axes (``axes`` holds what its first path resolved to)."""
    positions = sorted(set(node_pos))
    if len(positions) < 2 or all(specs[p] == specs[positions[0]] for p in positions):
        return
    bridge = lifted.bridge
    index = {id(leaf): i for i, leaf in enumerate(bridge.leaves)}
    names = lifted.root_names()
    for k, root in enumerate(lifted.nodes):
        spec = specs[node_pos[k]]
        flat = flatten_graph(root, check_leaks=False, observe=False)
        for path, leaf in zip(flat.graphdef.leaf_paths, flat.leaves):
            i = index.get(id(leaf))
            if i is None or bridge.paths[i][0] == k:
                continue
            axis = spec
            if is_prefix_tree(axis):
                axis = lookup_prefix(axis, tuple(path), where, names[k])
            if isinstance(axis, StateAxes):
                axis = axis.axis_for(tuple(path), leaf, where, names[k])
            if axis != axes[i]:
                first, second = lifted.describe_leaf(i), format_path(tuple(path), names[k])
                raise ValueError(
                    f"{where}: Inconsistent aliasing detected: {first} and {second} are the "
                    f"same {type(leaf).__name__}, reached through two arguments with different "
                    f"axes ({first}: {axes[i]!r}, {second}: {axis!r}). Expected one spec per "
                    "Variable. Fix: "
                    "give both arguments the same spec for it (nnx.StateAxes / nnx.prefix), "
                    "or pass the object once."
                )


def spread_specs(
    args: tp.Sequence[tp.Any],
    specs: tp.Sequence[tp.Any],
    is_whole: tp.Callable[[tp.Any], bool],
    where: str,
    what: str,
) -> list[tp.Any]:
    """One spec per non-graph leaf of ``args``, from one spec per argument.

    A spec for which ``is_whole`` holds applies to every leaf of its argument;
    otherwise it is a pytree prefix of the argument (not allowed when the argument
    holds graph nodes). A :class:`StateAxes` spec, or a prefix tree over a graph
    node's state (``nnx.prefix``), only covers graph nodes, so its argument may hold
    no other leaves."""
    out: list[tp.Any] = []
    for pos, (arg, spec) in enumerate(zip(args, specs)):
        tree, nodes = split_tree(arg)
        leaves = jax.tree.leaves(tree)
        if isinstance(spec, StateAxes) or (is_prefix_tree(spec) and is_node(arg)):
            if leaves:
                raise TypeError(
                    f"{where}: argument {pos} mixes arrays with Modules and has a StateAxes "
                    f"{what}, which only covers Variables. Fix: pass the arrays as a "
                    "separate argument."
                )
        elif is_whole(spec):
            out.extend([spec] * len(leaves))
        elif nodes:
            # a prefix of a container of nodes (a State, a tuple of Modules): each
            # node and array under it takes the spec above it
            try:
                jax.tree.map(
                    lambda s, a: out.extend([s] * len(jax.tree.leaves(a))),
                    spec,
                    tree,
                    is_leaf=is_whole,
                )
            except (ValueError, TypeError):
                raise TypeError(
                    f"{where}: argument {pos} holds Modules/Variables, so its {what} must "
                    "be one value for all its leaves, an nnx.StateAxes or a prefix of the "
                    f"argument's structure; found {spec!r}."
                ) from None
        else:
            jax.tree.map(
                lambda s, a: out.extend([s] * len(jax.tree.leaves(a))),
                spec,
                arg,
                is_leaf=is_whole,
            )
    return out


def root_specs(
    args: tp.Sequence[tp.Any], specs: tp.Sequence[tp.Any], is_whole: tp.Callable[[tp.Any], bool]
) -> list[tp.Any]:
    """The spec of each graph node found in ``args`` (in ``split_tree`` order): its
    argument's spec, or the part of it above the node when the argument is a
    container of nodes (a State, a tuple) given a prefix of its structure."""
    out: list[tp.Any] = []
    for arg, spec in zip(args, specs):
        tree, nodes = split_tree(arg)
        if not nodes:
            continue
        if is_node(arg) or is_whole(spec) or isinstance(spec, StateAxes):
            out.extend([spec] * len(nodes))
            continue
        mine: list[tp.Any] = [spec] * len(nodes)

        def assign(s: tp.Any, sub: tp.Any, mine: list[tp.Any] = mine) -> None:
            for k in holes_of(sub):
                mine[k] = s

        jax.tree.map(assign, spec, tree, is_leaf=is_whole)
        out.extend(mine)
    return out


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
