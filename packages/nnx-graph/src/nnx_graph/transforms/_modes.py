"""``graph=`` and ``graph_updates=`` of the transforms, checked in one place.

Every transform keeps full graph semantics here; the two flags only add Flax's
checks for the modes they select (the default, ``graph=True`` with
``graph_updates=True``, checks nothing and costs nothing):

* ``graph=False`` (tree mode: Modules treated as pytrees): a Variable reached twice
  in the inputs (two attributes, or the same object passed twice), a reference
  cycle, and a Variable reached twice in the outputs raise ``ValueError``;
* ``graph=False`` or ``graph_updates=False``: an input Variable returned in the
  output (the Module itself, or one of its Variables) raises ``ValueError``.

Variable updates are carried back in every mode. Structural changes made inside
(new or deleted attributes, replaced Variables, static attributes such as the
``deterministic`` flag ``.eval()`` sets) are carried back too: Flax drops them
silently in these modes (see ``tests/oracle/deliberate_differences.py``).
``None`` means the current default (``nnx.set_graph_mode`` /
``nnx.set_graph_updates``).
"""

from __future__ import annotations

import functools
import inspect
import threading
import typing as tp

import jax
import jax.numpy as jnp

from nnx_graph._errors import format_path
from nnx_graph._graph import merge, split, update
from nnx_graph._graph_config import graph_mode_default, graph_updates_default
from nnx_graph._graphdef import GraphDef, NodeDef, RefDef, VariableDef, flatten_graph, walk
from nnx_graph._pytree import Dict, List, Pytree, is_graph_node
from nnx_graph._state import State
from nnx_graph._variables import Variable

__all__ = [
    "Mode",
    "aliasing_error",
    "as_module",
    "check_inputs",
    "check_outputs",
    "check_prefix",
    "reject_bound_method",
    "resolve",
    "take_pending",
    "with_mode",
]


class Mode(tp.NamedTuple):
    """A non-default mode: ``tree`` (``graph=False``) and/or ``graph_updates=False``."""

    where: str  # "nnx.jit", "nnx.grad", ...
    graph: bool
    updates: bool

    @property
    def flag(self) -> str:
        return "graph=False" if not self.graph else "graph_updates=False"


def resolve(where: str, graph: bool | None, graph_updates: bool | None) -> Mode | None:
    """The call's mode, or None for the default (graph mode with updates)."""
    if graph is None:
        graph = graph_mode_default()
    if graph_updates is None:
        graph_updates = graph_updates_default()
    if graph and graph_updates:
        return None
    return Mode(where, bool(graph), bool(graph_updates))


def aliasing_error(mode: Mode, kind: str, first: str, second: str, what: str) -> ValueError:
    return ValueError(
        f"Duplicate {kind} found at paths:\n  - {first}\n  - {second}\n"
        f"{mode.where} with {mode.flag} does not support Variable aliasing (duplicate "
        f"inputs, duplicate outputs, or input Variables returned as outputs): {what}.\n"
        "Expected: every Variable reached once.\nFix: remove the duplicate reference, "
        "pass or return a copy (nnx.clone), or use the default graph mode "
        "(graph=True, graph_updates=True), which keeps shared references."
    )


def _input_name(path: tp.Sequence[tp.Any], names: tp.Sequence[str]) -> str:
    """``model.a`` for a path ``(root_index, 'a')`` below the call's roots."""
    if not path:
        return "arguments"
    k, *rest = path
    root = names[k] if isinstance(k, int) and k < len(names) else f"arg{k}"
    return format_path(tuple(rest), root)


def _first_variable(node: tp.Any) -> tuple[tuple[tp.Any, ...], tp.Any] | None:
    """``(path inside node, Variable)`` of the first Variable reached from ``node``
    (itself when it is one); None when it holds none."""
    if isinstance(node, Variable):
        return (), node
    flat = flatten_graph(node, check_leaks=False, observe=False)
    for path, leaf in zip(flat.graphdef.leaf_paths, flat.leaves):
        if isinstance(leaf, Variable):
            return tuple(path), leaf
    return None


def check_inputs(
    mode: Mode,
    graphdef: GraphDef[tp.Any],
    nodes: tp.Sequence[tp.Any],
    names: tp.Sequence[str],
    *,
    shared: bool,
) -> None:
    """Raise ``ValueError`` for a cycle (tree mode) or, with ``shared``, for a
    Variable reached twice. ``graphdef``/``nodes`` are those of the call's roots
    flattened together (as ``Bridge`` does)."""
    first: dict[int, tuple[tp.Any, ...]] = {}
    for visit in walk(graphdef):
        record = visit.record
        path = visit.path[1:]  # drop the (roots, ()) holder's index
        if isinstance(record, (NodeDef, VariableDef)):
            first.setdefault(record.node_index, path)
            continue
        if not isinstance(record, RefDef):
            continue
        i = record.node_index
        seen = first.get(i, ())
        node = nodes[i] if i < len(nodes) else None
        if not mode.graph and len(seen) <= len(path) and tuple(path[: len(seen)]) == seen:
            raise ValueError(
                f"{mode.where} with graph=False: {_input_name(path, names)} refers back "
                f"to {_input_name(seen, names)}, which contains it: a reference cycle, "
                "which tree mode (Modules treated as pytrees) cannot represent.\n"
                "Expected: an acyclic object tree.\nFix: remove the cycle, or use the "
                "default graph mode (graph=True)."
            )
        if not shared:
            continue
        found = _first_variable(node) if node is not None else ((), None)
        if found is None:  # a shared object holding no Variables: harmless
            continue
        sub, var = found
        raise aliasing_error(
            mode,
            type(var).__name__ if var is not None else "Variable",
            _input_name((*seen, *sub), names),
            _input_name((*path, *sub), names),
            "the same object is reached twice in the inputs",
        )


def check_outputs(
    mode: Mode,
    out_nodes: tp.Sequence[tp.Any],
    input_index: tp.Mapping[int, int],
    describe_input: tp.Callable[[int], str],
) -> None:
    """Inside the transform, after the call: raise ``ValueError`` when an output
    graph node holds an input Variable (any mode here) or, in tree mode, when a
    Variable is reached twice in the outputs. ``input_index`` maps ``id`` of the
    trace's input nodes to their node index."""
    if not out_nodes:
        return
    flat = flatten_graph(tuple(out_nodes), check_leaks=False, observe=False)
    paths: dict[int, tuple[tp.Any, ...]] = {}
    for visit in walk(flat.graphdef):
        record = visit.record
        if isinstance(record, VariableDef):
            paths[record.node_index] = visit.path
            var = flat.nodes[record.node_index]
            j = input_index.get(id(var))
            if j is not None:
                raise aliasing_error(
                    mode,
                    type(var).__name__,
                    describe_input(j),
                    format_path(tuple(visit.path[1:]), f"output[{visit.path[0]}]"),
                    "an input Variable (or the Module holding it) is returned",
                )
        elif isinstance(record, (NodeDef, RefDef)):
            if isinstance(record, RefDef):
                if mode.graph:
                    continue
                found = _first_variable(flat.nodes[record.node_index])
                if found is None:
                    continue
                sub, var = found
                seen = (*paths.get(record.node_index, (0,)), *sub)
                again = (*visit.path, *sub)
                raise aliasing_error(
                    mode,
                    type(var).__name__,
                    format_path(tuple(seen[1:]), f"output[{seen[0]}]"),
                    format_path(tuple(again[1:]), f"output[{again[0]}]"),
                    "the same Variable is reached twice in the outputs",
                )
            paths.setdefault(record.node_index, visit.path)


# ------------------------------------------------------------------ threading the mode
# The transforms built on ``Lifted`` take their mode from here: ``with_mode`` wraps
# a transformed function (only for a non-default mode, so the default path is
# untouched) and hands the mode to the one ``Lifted`` its call creates, which takes
# it (so transforms nested inside the function do not see it).
class _Pending(threading.local):
    mode: Mode | None = None


_PENDING = _Pending()


def take_pending() -> Mode | None:
    """The mode of the transform being called (once; None afterwards)."""
    mode = _PENDING.mode
    if mode is not None:
        _PENDING.mode = None
    return mode


def with_mode(
    fun: tp.Callable[..., tp.Any],
    where: str,
    graph: bool | None,
    graph_updates: bool | None,
    post: tp.Callable[[tuple[tp.Any, ...], tp.Any], tp.Any] | None = None,
) -> tp.Callable[..., tp.Any]:
    """``fun`` (a transformed function) running in the mode ``graph``/
    ``graph_updates`` select (``None``: the current defaults, read now); ``fun``
    itself for the default mode. ``post(args, result)`` adapts the result in the
    other modes."""
    mode = resolve(where, graph, graph_updates)
    if mode is None:
        return fun

    @functools.wraps(fun)
    def in_mode(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        _PENDING.mode = mode
        try:
            out = fun(*args, **kwargs)
        finally:
            _PENDING.mode = None
        return out if post is None else post(args, out)

    return in_mode


# ------------------------------------------------------------------ grads in these modes
def as_module(arg: tp.Any, grads: tp.Any) -> tp.Any:
    """A copy of graph node ``arg`` holding ``grads`` (a State) in its Variables and
    zeros in the others: how Flax returns gradients in tree mode."""
    if not isinstance(grads, State) or not isinstance(arg, (Pytree, List, Dict)):
        return grads
    graphdef, state = split(arg)
    copy = merge(graphdef, jax.tree.map(jnp.zeros_like, state))
    update(copy, grads)
    return copy


def module_grads(argnums: tp.Any, has_aux: bool, with_value: bool) -> tp.Callable[..., tp.Any]:
    """For ``with_mode``'s ``post``: ``grad``/``value_and_grad`` results with each
    graph-node argument's gradient as a copy of that object (Flax's form with
    ``graph=False``/``graph_updates=False``) instead of a State."""

    def post(args: tuple[tp.Any, ...], out: tp.Any) -> tp.Any:
        if with_value:
            value, grads = out
        elif has_aux:
            grads, aux = out
        else:
            grads = out
        if isinstance(argnums, int):
            grads = as_module(args[argnums], grads)
        elif isinstance(argnums, tuple) and all(isinstance(i, int) for i in argnums):
            grads = tuple(as_module(args[i], g) for i, g in zip(argnums, grads))
        if with_value:
            return value, grads
        return (grads, aux) if has_aux else grads

    return post


def reject_bound_method(f: tp.Any, name: str) -> None:
    """Raise ``ValueError`` when ``f`` (possibly inside ``functools.partial``) is a
    method bound to a Module: the transform would close over the Module instead of
    receiving it, so updates to it could not come out (Flax refuses them too)."""
    while isinstance(f, functools.partial):
        f = f.func
    if not inspect.ismethod(f):
        return
    from nnx_graph._module import Module  # lazy: _module imports the transforms

    owner = f.__self__
    if not isinstance(owner, Module):
        return
    cls, method = type(owner).__name__, getattr(f, "__name__", "method")
    raise ValueError(
        f"nnx.{name} does not support bound methods: {cls}.{method} is bound to a {cls}, "
        f"which {name} would close over instead of receiving as an argument, so its "
        f"Variables could not be updated. Expected a function taking the Module as an "
        f"argument. Fix: use the decorator form @nnx.{name} on the method, or call "
        f"nnx.{name}({cls}.{method})(instance, ...) with the unbound method."
    )


def check_prefix(
    prefix: tp.Any, what: str, name: str, mode: Mode | None, mapping: type | None = None
) -> None:
    """Check a prefix tree (``in_axes``, ``in_shardings``, ``argnums`` ...) when the
    transform is applied: no Variable in it, no graph node in graph mode, and no
    ``mapping`` object (StateAxes, StateSharding, DiffState) when ``mode`` is one of
    Flax's tree/no-updates modes, which cannot split a graph node by filters.
    A State of specs (``nnx.get_named_sharding``, ``jax.tree.map`` over
    ``nnx.state``) holds its specs in Variables: those are per-Variable specs and
    are accepted (Flax refuses them; see ``tests/oracle/deliberate_differences.py``)."""
    if prefix is None or isinstance(prefix, (int, str)):
        return

    def stop(x: tp.Any) -> bool:
        return (
            isinstance(x, (Variable, State))
            or is_graph_node(x)
            or (mapping is not None and isinstance(x, mapping))
        )

    leaves = jax.tree_util.tree_flatten_with_path(prefix, is_leaf=stop)[0]
    for path, leaf in leaves:
        if isinstance(leaf, State):
            continue
        where = jax.tree_util.keystr(path) or "the top level"
        if isinstance(leaf, Variable):
            raise ValueError(
                f"nnx.{name}: found a {type(leaf).__name__} at {where} of `{what}`: Variables "
                "prefixes are not supported. Expected an axis/spec for the whole Variable. "
                f"Fix: give the Variable's axis/spec itself (e.g. 0) in `{what}`."
            )
        if is_graph_node(leaf) and (mode is None or mode.graph):
            raise ValueError(
                f"nnx.{name}: found a graph node of type {type(leaf).__name__} at {where} of "
                f"`{what}`: Graph nodes are not allowed as prefixes when graph=True. Expected "
                "axes/specs (ints, None, PartitionSpecs, or StateAxes/State of them). Fix: "
                f"remove the graph node from `{what}` (for per-Variable specs use a State "
                "of them, e.g. from nnx.get_partition_spec)."
            )
        if mapping is not None and mode is not None and isinstance(leaf, mapping):
            kind = type(leaf).__name__
            raise ValueError(
                f"nnx.{name}: `{what}` cannot contain `{kind}` objects when `graph=False` or "
                f"`graph_updates=False` (found one at {where}). Expected plain axes/specs "
                f"in this mode. Fix: remove the {kind}, or use the default mode "
                f"(graph=True, graph_updates=True) to select state by filters."
            )
