"""Control flow over graph nodes: ``cond``, ``switch``, ``while_loop``, ``fori_loop``."""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph._errors import GraphStructureError
from nnx_graph.transforms._bridge import split_tree
from nnx_graph.transforms._lift import Lifted

__all__ = ["cond", "fori_loop", "switch", "while_loop"]


def _branch(lifted: Lifted, fn: tp.Callable[..., tp.Any]) -> tp.Callable[..., tp.Any]:
    def pure(values: list[tp.Any], dyn: list[tp.Any]) -> tp.Any:
        out, roots, _ = lifted.call(fn, values, dyn)
        return lifted.finish(roots, out, allow_structure=False, full=True)

    return pure


def cond(pred: tp.Any, true_fun: tp.Callable[..., tp.Any], false_fun: tp.Callable[..., tp.Any],
         *operands: tp.Any, **kwargs: tp.Any) -> tp.Any:
    """``jax.lax.cond`` whose operands may be Modules; updates made by the branch
    taken reach the caller's objects.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def inc(c):
        ...     c.n += 1
        >>> c = C(); nnx.cond(True, inc, lambda c: None, c); int(c.n.value)
        1
    """
    lifted = Lifted("cond", operands, kwargs)
    out_tree, updates = jax.lax.cond(pred, _branch(lifted, true_fun), _branch(lifted, false_fun),
                                     lifted.values(), lifted.dyn)
    return lifted.apply(out_tree, updates)


def switch(index: tp.Any, branches: tp.Sequence[tp.Callable[..., tp.Any]], *operands: tp.Any,
           **kwargs: tp.Any) -> tp.Any:
    """``jax.lax.switch`` whose operands may be Modules.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def add(k):
        ...     def f(c):
        ...         c.n += k
        ...     return f
        >>> c = C(); nnx.switch(2, [add(1), add(10), add(100)], c); int(c.n.value)
        100
    """
    lifted = Lifted("switch", operands, kwargs)
    out_tree, updates = jax.lax.switch(index, [_branch(lifted, b) for b in branches],
                                       lifted.values(), lifted.dyn)
    return lifted.apply(out_tree, updates)


def _loop_body(lifted: Lifted, name: str, body: tp.Callable[..., tp.Any], with_index: bool
               ) -> tp.Callable[..., tp.Any]:
    def pure(*carry_args: tp.Any) -> tp.Any:
        if with_index:
            i, (values, dyn) = carry_args
        else:
            ((values, dyn),) = carry_args
        roots = lifted.bridge.enter(list(values))
        from nnx_graph.transforms._bridge import fill_tree

        ((val,), _) = fill_tree(jax.tree.unflatten(lifted.treedef, list(dyn)), roots)
        new_val = body(i, val) if with_index else body(val)
        new_tree, new_nodes = split_tree(new_val)
        if [id(n) for n in new_nodes] != [id(r) for r in roots]:
            raise GraphStructureError(
                f"nnx.{name}: the loop body must return its carry with the same Modules/"
                "Variables it received (updated in place). Found different objects. Fix: "
                "return the argument itself."
            )
        _, new_values = lifted.finish(roots, None, allow_structure=False, full=True)
        new_dyn = jax.tree.leaves(((new_tree,), {}))
        if len(new_dyn) != len(dyn):
            raise GraphStructureError(
                f"nnx.{name}: the carry changed structure ({len(dyn)} array leaves in, "
                f"{len(new_dyn)} out). Fix: return a value shaped like init_val."
            )
        return (new_values, new_dyn)

    return pure


def _finish_loop(lifted: Lifted, result: tp.Any) -> tp.Any:
    values, dyn = result
    lifted.bridge.apply_changes(dict(enumerate(values)))
    from nnx_graph.transforms._bridge import fill_tree

    ((val,), _) = fill_tree(jax.tree.unflatten(lifted.treedef, list(dyn)), lifted.nodes)
    return val


def while_loop(cond_fun: tp.Callable[[tp.Any], tp.Any], body_fun: tp.Callable[[tp.Any], tp.Any],
               init_val: tp.Any) -> tp.Any:
    """``jax.lax.while_loop`` whose carry may contain Modules.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def body(c):
        ...     c.n += 1
        ...     return c
        >>> c = nnx.while_loop(lambda c: c.n.value < 5, body, C()); int(c.n.value)
        5
    """
    lifted = Lifted("while_loop", (init_val,), {})

    def pure_cond(carry: tp.Any) -> tp.Any:
        values, dyn = carry
        roots = lifted.bridge.enter(list(values))
        from nnx_graph.transforms._bridge import fill_tree

        ((val,), _) = fill_tree(jax.tree.unflatten(lifted.treedef, list(dyn)), roots)
        return cond_fun(val)

    result = jax.lax.while_loop(pure_cond, _loop_body(lifted, "while_loop", body_fun, False),
                                (lifted.values(), lifted.dyn))
    return _finish_loop(lifted, result)


def fori_loop(lower: int, upper: int, body_fun: tp.Callable[[tp.Any, tp.Any], tp.Any],
              init_val: tp.Any, *, unroll: int | bool | None = None) -> tp.Any:
    """``jax.lax.fori_loop`` whose carry may contain Modules.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class C(nnx.Module):
        ...     def __init__(self):
        ...         self.n = nnx.Variable(jnp.array(0))
        >>> def body(i, c):
        ...     c.n += i
        ...     return c
        >>> c = nnx.fori_loop(0, 4, body, C()); int(c.n.value)
        6
    """
    lifted = Lifted("fori_loop", (init_val,), {})
    kwargs = {} if unroll is None else {"unroll": unroll}
    result = jax.lax.fori_loop(lower, upper, _loop_body(lifted, "fori_loop", body_fun, True),
                               (lifted.values(), lifted.dyn), **kwargs)
    return _finish_loop(lifted, result)
