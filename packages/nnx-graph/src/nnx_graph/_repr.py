"""The ``repr`` of Modules, Pytrees and nnx.List/nnx.Dict, laid out as Flax's:

* one attribute per line, commas between entries (none trailing);
* each object with Variables gets a ``# Param: 9 (36 B), ..., Total: ...`` comment
  (sizes per Variable type over its subtree, each Variable counted once);
* a Variable opens its own block: ``Param( # 6 (24 B)`` / ``value=...`` / ``)``;
* arrays of more than one element are summarised as
  ``Array(shape=(2, 3), dtype=dtype('float32'))``, scalars are shown whole.

Attributes appear in assignment order (as Flax's). Kept from nnx's graph repr: an
object seen before is shown as ``<shared: self.path>`` (Flax: ``Type(...)``), where
"before" is the traversal (sorted) order.
The walk is iterative over the GraphDef, so very deep graphs render in linear size.
"""

from __future__ import annotations

import typing as tp

from nnx_graph._errors import format_path
from nnx_graph._graphdef import (
    ArrayDef,
    ContainerDef,
    NodeDef,
    RefDef,
    StaticDef,
    VariableDef,
    _brackets,
    _entry_prefix,
    _pad,
    flatten_graph,
    walk,
)
from nnx_graph._hijax import unbox
from nnx_graph._pytree import Dict, List, Pytree

__all__ = ["object_repr", "size_text"]

_DEFAULT_METADATA = (("hijax", False), ("ref", False), ("eager_sharding", True))
Stats = dict[str, list[int]]  # Variable type name -> [element count, bytes]


def size_text(count: int, nbytes: int) -> str:
    """``'60,000 (240.0 KB)'``: an element count and a byte size (decimal units).

    Example::

        >>> from nnx_graph._repr import size_text
        >>> size_text(6, 24), size_text(60_000, 240_000)
        ('6 (24 B)', '60,000 (240.0 KB)')
    """
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            amount = f"{nbytes}" if unit == "B" else f"{size:.1f}"
            return f"{count:,} ({amount} {unit})"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _stats_text(stats: Stats) -> str:
    parts = [f"{name}: {size_text(*counts)}" for name, counts in stats.items()]
    if len(stats) > 1:
        total = [sum(c[0] for c in stats.values()), sum(c[1] for c in stats.values())]
        parts.append(f"Total: {size_text(*total)}")
    return ", ".join(parts)


def _array_text(value: tp.Any) -> str | None:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None or isinstance(value, type):
        return None
    if getattr(value, "size", 2) <= 1:
        return repr(value)
    return f"Array(shape={tuple(shape)}, dtype={dtype!r})"


def _value_text(value: tp.Any) -> str:
    array = _array_text(value)
    if array is not None:
        return array
    if isinstance(value, type) and hasattr(value, "dtype"):  # jnp.float32 & co
        return str(getattr(value.dtype, "name", value.__name__))
    if type(value) is tuple and value:
        inner = ", ".join(_value_text(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


def _variable_lines(var: tp.Any, head: str, pad: str) -> tuple[list[str], str, int, int]:
    value = unbox(var._raw_value)  # (a hijax Variable's box: its content)
    if hasattr(value, "get") and not hasattr(value, "shape"):  # an array ref
        value = value[...]
    count, nbytes = int(getattr(value, "size", 0) or 0), int(getattr(value, "nbytes", 0) or 0)
    name = type(var).__name__
    kind = next((c.__name__ for c in type(var).__mro__ if c.__name__ == "RngState"), name)
    comment = f" # {size_text(count, nbytes)}" if hasattr(value, "size") else ""
    metadata = dict(var._var_metadata)
    for key, default in _DEFAULT_METADATA:
        if metadata.get(key, default) is default:
            metadata.pop(key, None)
    entries = [f"value={_value_text(value)}"] + [f"{k}={v!r}" for k, v in metadata.items()]
    lines = [f"{head}{name}({comment}"]
    lines += [f"{pad}  {e}," for e in entries]
    lines[-1] = lines[-1][:-1]
    lines.append(f"{pad}),")
    return lines, kind, count, nbytes


def _unlink(link: tp.Any) -> tuple[tp.Any, ...]:
    keys: list[tp.Any] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return tuple(reversed(keys))


def _strip_last_comma(chunk: list[tp.Any]) -> None:
    holder = chunk
    while isinstance(holder[-1], list):
        holder = holder[-1]
    if holder[-1].endswith(","):
        holder[-1] = holder[-1][:-1]


def _source_order(
    record: NodeDef | ContainerDef, nodes: list[tp.Any], entries: list[tuple[tp.Any, tp.Any]]
) -> list[tuple[tp.Any, tp.Any]]:
    """A Pytree's attributes (and an nnx.Dict's entries) in assignment order, as Flax
    shows them; the GraphDef holds them sorted."""
    if not isinstance(record, NodeDef) or issubclass(record.type, List):
        return entries
    obj = nodes[record.node_index]
    keys = dict.keys(obj) if isinstance(obj, Dict) else obj.__dict__.keys()
    order = {k: i for i, k in enumerate(keys)}
    return sorted(entries, key=lambda entry: order.get(entry[0], len(order)))


def _flatten(chunk: list[tp.Any]) -> list[str]:
    out: list[str] = []
    stack = [iter(chunk)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def object_repr(node: tp.Any) -> str:
    """The multi-line repr of a graph node, in Flax's layout (see the module doc).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones((2, 3)))
        ...         self.n = 3
        >>> print(repr(M()))
        M( # Param: 6 (24 B)
          w=Param( # 6 (24 B)
            value=Array(shape=(2, 3), dtype=dtype('float32'))
          ),
          n=3
        )
    """
    flat = flatten_graph(node, check_leaks=False, observe=False)
    leaves = iter(flat.leaves)
    # each rendered entry is a chunk: a list of lines and nested chunks whose last
    # element is a line; a node's entries are reordered when it closes
    open_records: list[NodeDef | ContainerDef] = []
    chunks: list[list[tp.Any]] = []  # the chunk of each open record
    entries: list[list[tuple[tp.Any, list[tp.Any]]]] = [[]]  # per level: (key, chunk)
    links: list[tp.Any] = [None]
    stats: list[Stats] = []  # Variable sizes per open record
    first_seen: dict[int, tp.Any] = {}
    skip = 0
    for visit in walk(flat.graphdef, closing=True, paths=False):
        if skip:
            skip -= 1
            continue
        record = visit.record
        if visit.closing:
            opened = open_records.pop()
            links.pop()
            own, chunk = stats.pop(), chunks.pop()
            if (
                own
                and isinstance(opened, NodeDef)
                and issubclass(opened.type, Pytree)
                and not issubclass(opened.type, (List, Dict))  # as Flax: no stats line
            ):
                chunk[0] += f" # {_stats_text(own)}"
            if stats:
                for name, (count, nbytes) in own.items():
                    entry = stats[-1].setdefault(name, [0, 0])
                    entry[0] += count
                    entry[1] += nbytes
            chunk.extend(c for _, c in _source_order(opened, flat.nodes, entries.pop()))
            _strip_last_comma(chunk)
            chunk.append(f"{_pad(len(open_records))}{_brackets(opened)[1]},")
            continue
        parent = open_records[-1] if open_records else None
        key = visit.sub[-1] if visit.sub and isinstance(parent, ContainerDef) else visit.attr
        pad = _pad(len(open_records))
        head = pad + _entry_prefix(parent, key)
        link = (links[-1], key) if parent is not None else None
        out = entries[-1]
        if isinstance(record, RefDef):
            where = format_path(_unlink(first_seen[record.node_index]), "self")
            out.append((key, [f"{head}<shared: {where}>,"]))
        elif isinstance(record, VariableDef):
            first_seen[record.node_index] = link
            block, kind, count, nbytes = _variable_lines(next(leaves), head, pad)
            out.append((key, block))
            if stats:
                entry = stats[-1].setdefault(kind, [0, 0])
                entry[0] += count
                entry[1] += nbytes
        elif isinstance(record, ArrayDef):
            out.append((key, [f"{head}{_value_text(next(leaves)._raw_value)},"]))
        elif isinstance(record, StaticDef):
            out.append((key, [f"{head}{_value_text(record.value.value)},"]))
        elif isinstance(record, ContainerDef) and all(
            isinstance(c, (ArrayDef, StaticDef)) for c in record.children
        ):
            items = [
                _value_text(c.value.value)
                if isinstance(c, StaticDef)
                else _value_text(next(leaves)._raw_value)
                for c in record.children
            ]
            opener, closer = _brackets(record)
            if opener == "{":
                items = [f"{k!r}: {t}" for k, t in zip(record.keys, items)]
            comma = "," if opener == "(" and len(items) == 1 else ""
            out.append((key, [f"{head}{opener}{', '.join(items)}{comma}{closer},"]))
            skip = len(record.children) + 1
        else:
            opener, closer = _brackets(record)
            if isinstance(record, NodeDef):
                first_seen[record.node_index] = link
                if not record.attrs:
                    out.append((key, [f"{head}{opener}{closer},"]))
                    skip = 1
                    continue
            chunk = [f"{head}{opener}"]
            out.append((key, chunk))
            chunks.append(chunk)
            open_records.append(record)
            links.append(link)
            entries.append([])
            stats.append({})
    text = "\n".join(_flatten([c for _, c in entries[0]]))
    return text[:-1] if text.endswith(",") else text
