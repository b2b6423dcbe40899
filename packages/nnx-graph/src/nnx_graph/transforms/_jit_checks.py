"""Checks and diagnostics of ``nnx.jit`` that stay off the per-call path.

* static arguments (hashable, not graph nodes) and ``in_shardings`` (one entry per
  positional argument), checked when an entry is built;
* buffers donated twice, and leaked tracers, diagnosed only after a call failed;
* trace-context errors (:class:`TraceContextError`): objects the function closes
  over must not be changed inside the trace (checked while tracing), and a call
  under an outer JAX transform must not write that transform's tracers into
  objects that outlive it (checked before writing back, only when the results are
  tracers).
"""

from __future__ import annotations

import functools
import types
import typing as tp

import jax

from nnx_graph._errors import TraceContextError, format_path
from nnx_graph._graphdef import flatten_graph
from nnx_graph._traces import _is_top_level, current_trace
from nnx_graph.transforms._bridge import NODE_TYPES, Bridge, is_node

__all__ = [
    "TraceContextError",
    "check_donated_leaves",
    "check_outer_trace",
    "check_static",
    "closure_guard",
    "diagnose",
]


# ---------------------------------------------------------------- static arguments
def check_static(name: str, where: str, value: tp.Any) -> None:
    found = (
        value
        if isinstance(value, NODE_TYPES)
        else next((x for x in jax.tree.leaves(value, is_leaf=is_node) if is_node(x)), None)
    )
    if found is not None:
        inside = "" if found is value else f"{type(value).__name__} holding a "
        raise TypeError(
            f"nnx.jit({name}): {where} is declared static but received a "
            f"{inside}{type(found).__name__} (a graph node with state). Expected a "
            "hashable Python value. Fix: remove it from static_argnums/static_argnames; "
            "Modules and Variables are handled by nnx.jit automatically."
        )
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"nnx.jit({name}): static {where} must be hashable; found "
            f"{type(value).__name__} {value!r:.60}. Fix: pass a tuple instead of a list, "
            "or a frozen dataclass, or make the argument dynamic."
        ) from None


def check_in_shardings_count(name: str, specs: tp.Any, ndyn: int) -> tuple[tp.Any, ...]:
    """One ``in_shardings`` entry per non-static positional argument."""
    if not isinstance(specs, (tuple, list)):
        return (specs,) * ndyn
    if len(specs) != ndyn:
        raise ValueError(
            f"nnx.jit({name}): in_shardings has {len(specs)} entries but the "
            f"function was called with {ndyn} non-static positional argument(s). Expected "
            "one entry per positional argument (static ones excluded, as in jax.jit). "
            "Fix: give one sharding (or None) per argument."
        )
    return tuple(specs)


# ---------------------------------------------------------------- after a failure
def check_donated_leaves(
    name: str,
    bridge: Bridge,
    root_names: tp.Sequence[str],
    donated_index: tp.Collection[int],
    dyn: tp.Sequence[tp.Any] = (),
    donated_dyn: tp.Sequence[tp.Any] = (),
) -> None:
    """Raise when a donated buffer is also held elsewhere in the call (XLA would
    refuse it, or the other holder would be left with a deleted array)."""
    donated = set(donated_index)
    seen: dict[int, tuple[str, bool]] = {}  # buffer id -> (first holder, donated?)

    def visit(value: tp.Any, describe: tp.Callable[[], str], is_donated: bool) -> None:
        if not isinstance(value, jax.Array):
            return
        first = seen.get(id(value))
        if first is None:
            seen[id(value)] = (describe(), is_donated)
        elif first[1] or is_donated:
            raise ValueError(
                f"nnx.jit({name}): donating the arguments would donate a buffer "
                f"that is still referenced elsewhere: {first[0]} and {describe()} hold the "
                "same jax.Array (they are not one shared Variable). Expected each "
                "donated buffer to be referenced once. Fix: share the Variable itself "
                "(b.w = a.w), copy the array (jnp.array(x, copy=True)), or do not "
                "donate it."
            )

    for i, leaf in enumerate(bridge.leaves):
        describe = functools.partial(bridge.describe_leaf, i, root_names)
        visit(leaf._raw_value, describe, i in donated)
    for k, value in enumerate(jax.tree.leaves(list(dyn))):
        visit(value, f"array argument leaf {k}".format, False)
    for k, value in enumerate(jax.tree.leaves(list(donated_dyn))):
        visit(value, f"donated array argument leaf {k}".format, True)


def diagnose(
    name: str,
    bridge: Bridge,
    root_names: tp.Callable[[], tp.Sequence[str]],
    error: Exception,
    donated_index: tp.Collection[int] | None,
    dyn: tp.Sequence[tp.Any],
    donated_dyn: tp.Sequence[tp.Any],
) -> None:
    """After a failed call: turn a leaked tracer or a doubly-donated buffer into an
    error that names the Variable; otherwise return (the original error stands)."""
    try:
        bridge.check_leaks(f"nnx.jit({name})", root_names)
        if donated_index is not None:
            check_donated_leaves(name, bridge, root_names(), donated_index, dyn, donated_dyn)
    except (ValueError, RuntimeError) as diagnosis:
        raise diagnosis from error


# ---------------------------------------------------------------- trace context
_FIX = (
    "Fix: pass the Module as an argument of the jitted function (nnx.jit carries "
    "updates of its arguments back), or return the new value and assign it outside."
)


def _closed_over(fun: tp.Any, limit: int = 64) -> list[tuple[str, tp.Any]]:
    """Graph nodes that ``fun`` reaches through its closure cells and the globals it
    names, following the functions it names in the same way (bounded)."""
    found: dict[int, tuple[str, tp.Any]] = {}
    seen: set[int] = set()
    stack: list[tp.Any] = [fun]
    while stack and len(seen) < limit:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        if isinstance(f, functools.partial):
            stack.append(f.func)
            continue
        if isinstance(f, types.MethodType):
            stack.append(f.__func__)
            continue
        inner = getattr(f, "fun", None)  # nnx.jit / transforms wrappers
        if inner is not None and callable(inner):
            stack.append(inner)
        f = getattr(f, "__wrapped__", f)
        code = getattr(f, "__code__", None)
        if code is None:
            continue
        named: list[tuple[str, tp.Any]] = []
        for var, cell in zip(code.co_freevars, getattr(f, "__closure__", None) or ()):
            try:
                named.append((var, cell.cell_contents))
            except ValueError:  # an empty cell
                continue
        scope = getattr(f, "__globals__", {})
        codes = [code]
        while codes:
            c = codes.pop()
            named.extend((n, scope[n]) for n in c.co_names if n in scope)
            codes.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        for var, value in named:
            if is_node(value):
                found.setdefault(id(value), (var, value))
            elif isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
                stack.append(value)
    return list(found.values())


class _Guard:
    """While tracing: remember the leaf values of the objects the function closes
    over; afterwards, put back any that the trace changed and raise."""

    __slots__ = ("name", "names", "paths", "leaves", "before")

    def __init__(self, name: str, closed: list[tuple[str, tp.Any]]) -> None:
        self.name = name
        self.names = [n for n, _ in closed]
        flat = flatten_graph(tuple(node for _, node in closed), check_leaks=False, observe=False)
        self.paths = flat.graphdef.leaf_paths
        self.leaves = flat.leaves
        self.before = [leaf._raw_value for leaf in self.leaves]

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        changed = [i for i, leaf in enumerate(self.leaves) if leaf._raw_value is not self.before[i]]
        if not changed:
            return
        for i in changed:
            self.leaves[i]._raw_value = self.before[i]
        if exc[0] is not None:
            return  # the function failed anyway: its own error is the better one
        path = self.paths[changed[0]]
        where = format_path(tuple(path[1:]), self.names[path[0]])
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise TraceContextError(
            f"nnx.jit({self.name}): the function changed {where}{more}, which it closes "
            "over instead of receiving it as an argument: its new value is a tracer of "
            "this trace, and storing it on an object from a different trace level would "
            "leave that object holding a dead tracer. Expected: objects the function "
            f"updates are passed to it. {_FIX} The object was left unchanged."
        )


def closure_guard(name: str, fun: tp.Any) -> tp.ContextManager[None]:
    """The guard for one trace of ``fun`` (a no-op when it closes over no object)."""
    closed = _closed_over(fun)
    if not closed:
        return _NO_GUARD
    return _Guard(name, closed)


class _NoGuard:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_GUARD = _NoGuard()


def _same_trace(created: tp.Any, now: tp.Any) -> bool:
    """Whether an object created in trace ``created`` belongs to trace ``now``."""
    if created is None:
        return False
    return created is now or created == now or (_is_top_level(created) and _is_top_level(now))


def check_outer_trace(
    name: str,
    leaves: tp.Sequence[tp.Any],
    indices: tp.Sequence[int],
    values: tp.Sequence[tp.Any],
    describe: tp.Callable[[int], str],
) -> None:
    """Before writing ``values`` into leaves ``indices`` under an outer ``jax.jit``/
    ``grad``/``checkify``...: refuse to store a tracer in a Variable created in
    another trace (outside that transform), which would outlive it holding a dead
    tracer. Variables created inside the outer transform (by the user, or by an nnx
    transform such as ``nnx.checkify``/``nnx.grad`` rebuilding its arguments there)
    belong to it and are updated normally."""
    tracer = jax.core.Tracer
    now = current_trace()
    for i, value in zip(indices, values):
        leaf = leaves[i]
        if (
            isinstance(value, tracer)
            and not isinstance(leaf._raw_value, tracer)
            and not _same_trace(getattr(leaf, "_nnx_trace", None), now)
        ):
            raise TraceContextError(
                f"nnx.jit({name}): called inside another JAX transform (jax.jit, "
                "jax.grad, checkify, ...) on an object created outside it: writing the "
                f"results back would store that transform's tracers on {describe(i)}, an "
                "object from a different trace level, which outlives the transform. "
                "Expected: objects updated under an outer transform are created inside "
                "it, or passed into it through nnx transforms. Fix: pass the Module as an "
                "argument of an nnx transform (nnx.jit, nnx.grad, nnx.checkify ...) "
                "instead of the jax one, or split it with nnx.split and merge it inside. "
                "The object was left unchanged."
            )
