"""How much state an object holds: element counts and bytes per Variable type.

Used by the size comments of the rendered tree (``# Param: 1,234 (4.9 KB)``) and by
the columns of :func:`nnx_viz.tabulate`. Counting walks the object graph itself
(without ``nnx.split``) so that displaying an object never changes it, and counts
each Variable once however many times it is referenced.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing as tp
from collections.abc import Iterator, Mapping

import jax
import numpy as np

import nnx_graph

__all__ = [
    "SizeTotal",
    "format_bytes",
    "format_sizes",
    "iter_variables",
    "size_group",
    "variable_sizes",
]

_BYTE_UNITS = ("KB", "MB", "GB", "TB", "PB")


@dataclasses.dataclass
class SizeTotal:
    """Number of elements and bytes held by the Variables of one type."""

    count: int = 0
    bytes: int = 0

    def add(self, count: int, nbytes: int) -> None:
        self.count += count
        self.bytes += nbytes

    def __str__(self) -> str:
        return f"{self.count:,} ({format_bytes(self.bytes)})"


def format_bytes(nbytes: int) -> str:
    """Human-readable byte count with decimal (1000-based) units.

    Example::

        >>> format_bytes(256), format_bytes(4_936), format_bytes(3_200_000)
        ('256 B', '4.9 KB', '3.2 MB')
    """
    if nbytes < 1000:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in _BYTE_UNITS:
        value /= 1000
        # 999.96 KB would print as "1000.0 KB": move to the next unit instead.
        if value < 999.95 or unit == _BYTE_UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def size_group(variable: nnx_graph.Variable[tp.Any]) -> str:
    """The name a Variable is counted under: its type name, except that the key and
    counter of an RNG stream are both counted as ``RngState``."""
    if isinstance(variable, nnx_graph.RngState):
        return "RngState"
    return type(variable).__name__


def _leaf_size(leaf: tp.Any) -> tuple[int, int] | None:
    """``(elements, bytes)`` of an array-like leaf (arrays, tracers, ShapeDtypeStructs,
    Python numbers); None for anything else (strings, placeholders, ...)."""
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    if shape is None or dtype is None:
        if isinstance(leaf, numbers.Number):
            array = np.asarray(leaf)
            return int(array.size), int(array.nbytes)
        return None
    try:
        count = math.prod(int(d) for d in shape)
        itemsize = int(getattr(dtype, "itemsize", 0) or np.dtype(dtype).itemsize)
    except (TypeError, ValueError):  # symbolic shapes or exotic dtypes: not countable
        return None
    return count, count * itemsize


def _variable_size(variable: nnx_graph.Variable[tp.Any]) -> tuple[int, int] | None:
    count = nbytes = 0
    found = False
    for leaf in jax.tree.leaves(variable.raw_value):
        size = _leaf_size(leaf)
        if size is not None:
            found = True
            count += size[0]
            nbytes += size[1]
    return (count, nbytes) if found else None


def iter_variables(obj: tp.Any) -> Iterator[nnx_graph.Variable[tp.Any]]:
    """Every Variable reachable from ``obj`` (graph nodes, States and plain
    containers), each once, in the graph API's traversal order (sorted names)."""
    seen: set[int] = set()
    stack: list[tp.Any] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, nnx_graph.Variable):
            if id(value) not in seen:
                seen.add(id(value))
                yield value
            continue
        if isinstance(value, (nnx_graph.Pytree, nnx_graph.List, nnx_graph.Dict)):
            if id(value) in seen:  # shared node or cycle
                continue
            seen.add(id(value))
        children: list[tp.Any]
        if isinstance(value, nnx_graph.Pytree) and not isinstance(value, (list, dict)):
            attributes = vars(value)
            children = [attributes[k] for k in sorted(attributes) if not k.startswith("_nnx_")]
        elif isinstance(value, Mapping):
            children = [value[k] for k in _sorted_keys(value)]
        elif isinstance(value, (list, tuple)):
            children = list(value)
        else:
            continue
        stack.extend(reversed(children))


def _sorted_keys(mapping: Mapping[tp.Any, tp.Any]) -> list[tp.Any]:
    try:
        return sorted(mapping, key=lambda k: (isinstance(k, str), k))
    except TypeError:
        return list(mapping)


def variable_sizes(obj: tp.Any) -> dict[str, SizeTotal]:
    """Elements and bytes per Variable type for everything reachable from ``obj``.

    ``Param`` comes first, then the other types in traversal order. Shared Variables
    are counted once. Variables without array values (e.g. placeholders) are skipped.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> kernel = nnx.Param(jnp.zeros((2, 3)))
        >>> block = nnx.Dict(kernel=kernel, mean=nnx.BatchStat(jnp.zeros(3)), tied=kernel)
        >>> {name: str(total) for name, total in variable_sizes(block).items()}
        {'Param': '6 (24 B)', 'BatchStat': '3 (12 B)'}
    """
    totals: dict[str, SizeTotal] = {}
    for variable in iter_variables(obj):
        size = _variable_size(variable)
        if size is not None:
            totals.setdefault(size_group(variable), SizeTotal()).add(*size)
    if "Param" in totals:
        totals = {"Param": totals.pop("Param"), **totals}
    return totals


def format_sizes(sizes: Mapping[str, SizeTotal]) -> str:
    """``'Param: 1,234 (4.9 KB), BatchStat: 64 (256 B)'``; empty when there is nothing.

    Example::

        >>> format_sizes({"Param": SizeTotal(1_234, 4_936), "BatchStat": SizeTotal(64, 256)})
        'Param: 1,234 (4.9 KB), BatchStat: 64 (256 B)'
    """
    return ", ".join(f"{name}: {total}" for name, total in sizes.items())
