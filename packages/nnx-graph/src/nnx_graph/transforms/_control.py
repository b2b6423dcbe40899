"""Control flow over graph nodes: ``cond``, ``switch``, ``while_loop``, ``fori_loop``.

Branches and loop bodies see fresh objects built from the traced state; Variable
updates come out as ordinary outputs (branches) or loop carry (loops) and are
written back to the caller's objects afterwards.
"""

from __future__ import annotations

import contextlib
import typing as tp

import jax

from nnx_graph._errors import GraphStructureError
from nnx_graph.transforms._bridge import Outcome, Trace, Updates, fill_tree, split_tree
from nnx_graph.transforms._lift import Lifted, carry_type_error, describe_aval
from nnx_graph.transforms._modes import Mode, resolve
from nnx_graph.transforms._shardings import variable_at

__all__ = ["BranchStructureError", "cond", "fori_loop", "switch", "while_loop"]


class BranchStructureError(GraphStructureError, TypeError):
    """A ``cond``/``switch`` branch changed which objects its operands reference
    (a GraphStructureError, and a TypeError as JAX reports differing branch outputs)."""


def cond(
    pred: tp.Any,
    true_fun: tp.Callable[..., tp.Any],
    false_fun: tp.Callable[..., tp.Any],
    *operands: tp.Any,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.lax.cond`` whose operands may be Modules; updates made by the branch
    taken reach the caller's objects. Branches may change the operands' structure
    or return Modules when every branch does the same (else a TypeError).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> def inc(c):
        ...     c["n"].value += 1
        >>> c = nnx.Dict(n=nnx.Variable(jnp.array(0)))
        >>> nnx.cond(True, inc, lambda c: None, c); int(c["n"].value)
        1
    """
    mode = resolve("nnx.cond", graph, graph_updates)
    lifted = Lifted("cond", operands, {}, fun=true_fun, mode=mode)
    lifted.structure_error = BranchStructureError
    branches = [
        lifted.pure(fn, allow_structure=True, changed_only=False) for fn in (true_fun, false_fun)
    ]
    with _branch_errors("cond"):
        out_tree, updates = jax.lax.cond(pred, *branches, lifted.values(), lifted.dyn)
    return lifted.write_back(out_tree, updates)


@contextlib.contextmanager
def _branch_errors(name: str) -> tp.Iterator[None]:
    """Name a structural change made by some branches only (JAX sees differing
    branch outputs)."""
    try:
        yield
    except TypeError as error:
        if "must have the same pytree structure" not in str(error):
            raise
        raise BranchStructureError(
            f"nnx.{name}: a branch changed the structure of its graph-node arguments (added, "
            "removed or replaced attributes, Variables or list entries) or returned "
            f"Modules/Variables, and another branch did not do the same: {name} branch "
            "outputs must have the same pytree structure. Expected every branch to make the "
            "same structural change (or none). Fix: make the change in every branch, or "
            f"outside nnx.{name} (e.g. initialise attributes in __init__)."
        ) from None


def switch(
    index: tp.Any,
    branches: tp.Sequence[tp.Callable[..., tp.Any]],
    *operands: tp.Any,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.lax.switch`` whose operands may be Modules.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> def add(k):
        ...     def f(c):
        ...         c["n"].value += k
        ...     return f
        >>> c = nnx.Dict(n=nnx.Variable(jnp.array(0)))
        >>> nnx.switch(2, [add(1), add(10), add(100)], c); int(c["n"].value)
        100
    """
    mode = resolve("nnx.switch", graph, graph_updates)
    lifted = Lifted("switch", operands, {}, fun=branches[0] if branches else None, mode=mode)
    lifted.structure_error = BranchStructureError
    pures = [lifted.pure(b, allow_structure=True, changed_only=False) for b in branches]
    with _branch_errors("switch"):
        out_tree, updates = jax.lax.switch(index, pures, lifted.values(), lifted.dyn)
    return lifted.write_back(out_tree, updates)


class _Loop:
    """The carry of a loop as (graph leaf values, other leaves)."""

    def __init__(self, name: str, init_val: tp.Any, mode: Mode | None = None) -> None:
        self.name = name
        self.lifted = Lifted(name, (init_val,), {}, param_names=["init_val"], mode=mode)

    def enter(self, carry: tp.Any) -> tuple[Trace, tp.Any]:
        values, dyn = carry
        trace, (val,), _ = self.lifted.enter(values, dyn)
        return trace, val

    def body(self, fn: tp.Callable[..., tp.Any], with_index: bool) -> tp.Callable[..., tp.Any]:
        lifted = self.lifted

        def pure(*loop_args: tp.Any) -> tp.Any:
            index, carry = loop_args if with_index else (None, loop_args[0])
            trace, val = self.enter(carry)
            new_val = fn(index, val) if with_index else fn(val)
            new_tree, new_nodes = split_tree(new_val)
            if [id(n) for n in new_nodes] != [id(r) for r in trace.roots]:
                raise GraphStructureError(
                    f"nnx.{self.name}: the loop body must return its carry with the same "
                    "Modules/Variables it received (updated in place); found different "
                    "objects. Fix: return the argument itself."
                )
            self.check_references(trace)
            new_values = lifted.exit(trace, None, allow_structure=False).values
            in_tree = lifted.tree[0][0]
            structure: tp.Any = jax.tree.structure(new_tree)
            if not bool(structure == jax.tree.structure(in_tree)):
                raise GraphStructureError(
                    f"nnx.{self.name}: the loop body returned a carry with a different "
                    f"structure than init_val.\nIn:  {jax.tree.structure(in_tree)}\nOut: "
                    f"{jax.tree.structure(new_tree)}\nFix: return a value shaped like init_val."
                )
            new_dyn = jax.tree.leaves(new_tree)
            values, dyn = carry
            self.check_carry([*dyn, *values], [*new_dyn, *new_values])
            return (new_values, new_dyn)

        return pure

    def check_references(self, trace: Trace) -> None:
        """Inside the body: every Variable of the carry is still the same object (a
        replaced Variable, ``m.w = nnx.Param(...)``, cannot be carried round the loop)."""
        bridge = self.lifted.bridge
        for i, var in enumerate(bridge.inner_variables(trace)):
            path = bridge.paths[i]
            if var is None or variable_at(trace.roots[path[0]], path[1:]) is var:
                continue
            raise ValueError(
                f"nnx.{self.name}: the loop body replaced the Variable "
                f"{self.lifted.describe_leaf(i)} with another object: Variable references "
                "in the carry must stay the same between iterations. Expected updates in "
                "place. Fix: set its value (m.w.value = ... or m.w[...] = ...) instead of "
                "assigning a new Variable."
            )

    def check_carry(self, inputs: tp.Sequence[tp.Any], outputs: tp.Sequence[tp.Any]) -> None:
        """Inside the body: name every carry entry whose shape or dtype changed."""
        lifted = self.lifted
        ins, outs = list(map(describe_aval, inputs)), list(map(describe_aval, outputs))
        if ins == outs:
            return
        names = [
            *lifted.dyn_names(),
            *(lifted.describe_leaf(i) for i in range(len(lifted.bridge.leaves))),
        ]
        error = carry_type_error(f"nnx.{self.name}", "the loop carry", names, ins, outs)
        if error is not None:
            raise error

    def run(self, loop: tp.Callable[..., tp.Any]) -> tp.Any:
        lifted = self.lifted
        values, dyn = loop((lifted.values(), lifted.dyn))
        lifted.write_back(None, Updates(Outcome(None, None), values))
        ((val,), _) = fill_tree(jax.tree.unflatten(lifted.treedef, list(dyn)), lifted.nodes)
        return val


def while_loop(
    cond_fun: tp.Callable[[tp.Any], tp.Any],
    body_fun: tp.Callable[[tp.Any], tp.Any],
    init_val: tp.Any,
    *,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.lax.while_loop`` whose carry may contain Modules.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> def body(c):
        ...     c["n"].value += 1
        ...     return c
        >>> c = nnx.Dict(n=nnx.Variable(jnp.array(0)))
        >>> c = nnx.while_loop(lambda c: c["n"].value < 5, body, c); int(c["n"].value)
        5
    """
    loop = _Loop("while_loop", init_val, resolve("nnx.while_loop", graph, graph_updates))

    def pure_cond(carry: tp.Any) -> tp.Any:
        return cond_fun(loop.enter(carry)[1])

    body = loop.body(body_fun, with_index=False)
    return loop.run(lambda carry: jax.lax.while_loop(pure_cond, body, carry))


def fori_loop(
    lower: int,
    upper: int,
    body_fun: tp.Callable[[tp.Any, tp.Any], tp.Any],
    init_val: tp.Any,
    *,
    unroll: int | bool | None = None,
    graph: bool | None = None,
    graph_updates: bool | None = None,
) -> tp.Any:
    """``jax.lax.fori_loop`` whose carry may contain Modules.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> def body(i, c):
        ...     c["n"].value += i
        ...     return c
        >>> c = nnx.fori_loop(0, 4, body, nnx.Dict(n=nnx.Variable(jnp.array(0))))
        >>> int(c["n"].value)
        6
    """
    loop = _Loop("fori_loop", init_val, resolve("nnx.fori_loop", graph, graph_updates))
    kwargs = {} if unroll is None else {"unroll": unroll}
    body = loop.body(body_fun, with_index=True)
    return loop.run(lambda carry: jax.lax.fori_loop(lower, upper, body, carry, **kwargs))
