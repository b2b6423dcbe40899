"""Tree mode (``graph=False``): the graph functions accept only object *trees*.

In graph mode (the default) a Variable or Module reachable along two paths is kept
shared, and cycles are allowed. In tree mode the same object graph must be a tree;
:func:`check_tree` raises on the first shared reference or cycle, naming the
paths. Everything else works the same in both modes.
"""

from __future__ import annotations

import typing as tp

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._graph_config import graph_mode_default
from nnx_graph._records import NODE, REF, VAR, GraphDef, walk

__all__ = ["check_tree", "is_tree_mode", "not_a_pytree_error"]

Path = tuple[tp.Any, ...]


def is_tree_mode(graph: bool | None) -> bool:
    """True when ``graph`` (``None``: the :class:`set_graph_mode` setting) asks for
    tree mode."""
    if graph is None:
        return not graph_mode_default()
    return not graph


def check_tree(graphdef: GraphDef[tp.Any], fn: str) -> None:
    """Raise if ``graphdef`` has a shared reference or a cycle (tree mode).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._graph_modes import check_tree
        >>> v = nnx.Param(jnp.zeros(1))
        >>> try:
        ...     check_tree(nnx.graphdef(nnx.Dict(a=v, b=v)), "split")
        ... except ValueError as e:
        ...     print(str(e).splitlines()[0])
        nnx.split(graph=False): Duplicate Param found at paths:
    """
    first: dict[int, Path] = {}
    types: dict[int, type] = {}
    for visit in walk(graphdef):
        record: tp.Any = visit.record
        tag = record[0]
        if tag in (NODE, VAR):
            first[record[2]] = visit.path
            types[record[2]] = record[1]
            if tag == NODE and getattr(record[1], "_nnx_is_pytree", True) is False:
                raise not_a_pytree_error(fn, record[1], visit.path)
        elif tag == REF:
            index = record[1]
            origin = first.get(index)
            if origin is None:  # refers to a node from an earlier split in a context
                continue
            name = types[index].__name__
            path = visit.path
            if path[: len(origin)] == origin:
                raise GraphStructureError(
                    f"nnx.{fn}(graph=False): Cycle detected for {name} found at paths "
                    f"{format_path(origin)} and {format_path(path)}: {format_path(path)} "
                    f"refers back to its ancestor {format_path(origin)}. Tree mode "
                    "(graph=False) does not support reference cycles or shared references."
                    f"\nFix: break the cycle, or use graph mode: nnx.{fn}(..., graph=True) "
                    f"(or nnx.compat.{fn})."
                )
            raise GraphStructureError(
                f"nnx.{fn}(graph=False): Duplicate {name} found at paths:\n\n"
                f"  - {format_path(origin)}\n  - {format_path(path)}\n\n"
                "Tree mode (graph=False) does not support shared references. Expected "
                "every Variable and Module to be reachable along one path only.\nFix: "
                "remove the duplicate reference so the structure is a tree, or use graph "
                f"mode: nnx.{fn}(..., graph=True) (or nnx.compat.{fn})."
            )


def not_a_pytree_error(fn: str, cls: type, path: Path | None) -> GraphStructureError:
    """The tree-mode error for a ``pytree=False`` object (not a JAX pytree)."""
    where = "" if path is None else f" Found at path: {format_path(path)}."
    return GraphStructureError(
        f"nnx.{fn}(graph=False): Cannot use '{fn}' with graph=False on a "
        f"'{cls.__name__}' instance that has pytree=False.{where} Classes declared with "
        "pytree=False are not JAX pytrees, so tree mode (graph=False) cannot traverse "
        f"them. Fix: use graph mode, nnx.{fn}(..., graph=True) (or nnx.compat.{fn}), or "
        f"drop pytree=False from {cls.__name__}."
    )
