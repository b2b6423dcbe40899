"""Flax's flat view of a GraphDef, both ways.

A GraphDef here is a tree of records (``_records.py``); Flax 0.12.8 describes the
same structure flat: ``nodes`` (one entry per graph node, Variable, reference and
plain container, in traversal order) and ``attributes`` (``(key, kind)`` for every
entry of every node, in the same order, where a node-kind entry stands for the next
item of ``nodes``). :func:`flat_view` produces that view from a GraphDef and
:func:`from_flat` assembles the record tree back (``GraphDef(nodes, attributes,
num_leaves)``), iteratively, checking that the description adds up.
"""

from __future__ import annotations

import dataclasses
import typing as tp
from collections import OrderedDict

import jax

from nnx_graph._errors import format_path
from nnx_graph._graph_registry import GRAPH_REGISTRY, PYTREE_REGISTRY
from nnx_graph._hashing import Frozen
from nnx_graph._pytree import Dict, List, Pytree
from nnx_graph._record_types import (
    ARRAY_DEF,
    CONTAINER,
    LEAF,
    NODE,
    REF,
    STATIC,
    VAR,
    ArrayDef,
    ContainerDef,
    NodeDef,
    PytreeContainerDef,
    Record,
    RefDef,
    StaticDef,
    VariableDef,
)

if tp.TYPE_CHECKING:
    from nnx_graph._records import GraphDef

__all__ = ["LEAF_ATTR", "NODE_ATTR", "LeafAttr", "NodeAttr", "Static", "flat_view", "from_flat"]

_new = tuple.__new__
FlatNodes = tuple[NodeDef | VariableDef | RefDef, ...]
FlatAttributes = tuple[tuple[tp.Any, tp.Any], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class NodeAttr:
    """An ``attributes`` entry whose value is the next item of ``nodes`` (a graph
    node, Variable, reference or container). Use the :data:`NODE_ATTR` instance.

    Example::

        >>> from nnx_graph.graphlib import NODE_ATTR, NodeAttr
        >>> NODE_ATTR == NodeAttr()
        True
    """


@dataclasses.dataclass(frozen=True, slots=True)
class LeafAttr:
    """An ``attributes`` entry whose value is the next leaf (a raw array stored on
    the node). Use the :data:`LEAF_ATTR` instance.

    Example::

        >>> from nnx_graph.graphlib import LEAF_ATTR, LeafAttr
        >>> LEAF_ATTR == LeafAttr()
        True
    """


NODE_ATTR = NodeAttr()
LEAF_ATTR = LeafAttr()
A = tp.TypeVar("A")


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, slots=True)
class Static(tp.Generic[A]):
    """A pytree node without leaves that carries ``value`` as static data (it becomes
    part of the tree structure, so ``value`` must be hashable and comparable).

    Not the ``nnx.Static`` attribute annotation (``nnx.pytreelib.Static``): this is the
    graph API's wrapper, as ``flax.nnx.graphlib.Static``.

    Example::

        >>> import jax
        >>> from nnx_graph.graphlib import Static
        >>> jax.tree.leaves(Static("relu"))
        []
        >>> jax.tree.structure(Static(1)) == jax.tree.structure(Static(1))
        True
    """

    value: A


def flat_view(graphdef: GraphDef[tp.Any]) -> tuple[FlatNodes, FlatAttributes]:
    """``(nodes, attributes)`` of ``graphdef`` in Flax's flat form: containers as
    ``NodeDef`` headers with ``index=None``; attribute kinds ``NODE_ATTR`` (the next
    item of ``nodes``), ``LEAF_ATTR`` (the next leaf) or ``Static(value)``; a static
    root as one attribute with key None. Outer indices the GraphDef holds (inner
    graphs of an update context) appear on the nodes' and Variables' entries."""
    from nnx_graph._records import walk

    nodes: list[tp.Any] = []
    attributes: list[tuple[tp.Any, tp.Any]] = []
    first = True
    outer = graphdef._outer or {}
    for visit in walk(graphdef, paths=False):
        record: tp.Any = visit.record
        tag = record[0]
        if tag == CONTAINER:
            aux = record[4] if len(record) > 4 else None
            record = _new(NodeDef, (NODE, record[1], None, aux, (), len(record[3]), None))
        elif outer and tag in (NODE, VAR) and record[2] in outer:
            if tag == NODE:
                items = (*record[:4], (), len(record[4]), outer[record[2]])
                record = _new(NodeDef, items)
            else:
                record = _new(VariableDef, (*record[:4], outer[record[2]]))
        if tag == STATIC:
            kind: tp.Any = Static(record[1].value)
        else:
            kind = LEAF_ATTR if tag == LEAF else NODE_ATTR
        if first:
            first = False
            if tag == STATIC:
                attributes.append((None, kind))
        else:
            attributes.append((visit.sub[-1] if visit.sub else visit.attr, kind))
        if tag in (NODE, VAR, REF, CONTAINER):
            nodes.append(record)
    return tuple(nodes), tuple(attributes)


class _Frame:
    __slots__ = ("kind", "type", "index", "meta", "left", "keys", "out", "key", "where")

    def __init__(
        self, kind: int, typ: type, index: int | None, meta: tp.Any, left: int, where: str
    ) -> None:
        self.kind = kind
        self.type = typ
        self.index = index
        self.meta = meta
        self.left = left  # attributes still to read
        self.keys: list[tp.Any] = []
        self.out: list[tp.Any] = []
        self.key: tp.Any = None  # key in the parent
        self.where = where


def _flat_error(problem: str, expected: str, found: str, fix: str) -> ValueError:
    return ValueError(
        f"GraphDef(nodes, attributes, num_leaves): {problem}. Expected {expected}; found "
        f"{found}. Fix: {fix}."
    )


def _is_container_type(typ: type) -> bool:
    if typ in PYTREE_REGISTRY or typ in (tuple, list, dict, OrderedDict):
        return True
    return issubclass(typ, tuple) and hasattr(typ, "_fields")


def _is_graph_type(typ: type) -> bool:
    return typ in GRAPH_REGISTRY or issubclass(typ, (Pytree, List, Dict))


def from_flat(
    nodes: tp.Sequence[tp.Any], attributes: tp.Sequence[tp.Any], num_leaves: int
) -> tuple[Record, int, dict[int, int] | None]:
    """The record tree Flax's flat description stands for, with the number of node
    indices it uses and its outer indices (``{index: outer_index}`` or None).

    Raises ValueError (TypeError for entries of the wrong type) naming the entry
    and what did not add up."""
    if type(num_leaves) is not int or num_leaves < 0:
        raise _flat_error(
            "num_leaves is not a count",
            "an int >= 0",
            repr(num_leaves),
            "pass num_leaves="
            " as the number of leaves (Variables and raw arrays) the structure holds",
        )
    nodes = list(nodes)
    attributes = list(attributes)
    if not nodes:
        return _leaf_root(attributes, num_leaves), 0, None
    n_pos = a_pos = leaves = 0
    defined: dict[int, int] = {}  # node index -> position in nodes
    referenced: list[tuple[int, int]] = []  # (index, position in nodes)
    outer: dict[int, int] = {}
    stack: list[_Frame] = []
    root: tp.Any = None

    def open_node(path: tuple[tp.Any, ...]) -> tp.Any:
        """The record of the next item of ``nodes``, or None after pushing a frame."""
        nonlocal n_pos, leaves
        if n_pos >= len(nodes):
            raise _flat_error(
                f"the attribute at {format_path(path)} is a node entry but `nodes` has "
                "no item left for it",
                f"at least {n_pos + 1} items in nodes",
                f"{len(nodes)}",
                "add the node's NodeDef/VariableDef/RefDef to nodes (in traversal order), "
                "or make the attribute LEAF_ATTR / Static(value)",
            )
        pos = n_pos
        item = nodes[pos]
        n_pos += 1
        where = f"nodes[{pos}] ({format_path(path)})"
        if isinstance(item, RefDef):
            referenced.append((item[1], pos))
            return item if len(item) == 2 else _new(RefDef, (REF, item[1]))
        if isinstance(item, VariableDef):
            _define(item[2], pos, where, defined)
            if len(item) > 4:
                outer[item[2]] = item[4]
            leaves += 1
            return item if len(item) == 4 else _new(VariableDef, tuple(item[:4]))
        if isinstance(item, NodeDef):
            typ, index, meta = item[1], item[2], item[3]
            count = item[5] if len(item) > 5 else len(item[4])
            if len(item) > 6 and item[6] is not None:
                outer[index] = item[6]
            if index is None:
                if not _is_container_type(typ):
                    raise _flat_error(
                        f"{where} has index=None (a plain container) but its type "
                        f"{typ.__name__} is not one",
                        "a tuple, list, dict, OrderedDict, NamedTuple or registered pytree "
                        "type for index=None",
                        typ.__name__,
                        "give graph nodes (Modules, nnx.List/Dict, registered graph types) "
                        "their node index",
                    )
                stack.append(_Frame(CONTAINER, typ, None, meta, count, where))
                return None
            if not _is_graph_type(typ):
                raise _flat_error(
                    f"{where} has a node index but its type {typ.__name__} is not a graph node",
                    "a Module/Pytree, nnx.List, nnx.Dict or registered graph node type",
                    typ.__name__,
                    "use index=None for plain containers (tuple, list, dict)",
                )
            _define(index, pos, where, defined)
            stack.append(_Frame(NODE, typ, index, meta, count, where))
            return None
        if isinstance(item, ContainerDef):
            aux = item[4] if len(item) > 4 else None
            stack.append(_Frame(CONTAINER, item[1], None, aux, len(item[3]), where))
            return None
        raise TypeError(
            f"GraphDef(nodes, attributes, num_leaves): {where} is a {type(item).__name__}. "
            "Expected a NodeDef, VariableDef or RefDef (NodeRef). Fix: build the entries "
            "with NodeDef(type, index, outer_index, num_attributes, metadata), "
            "VariableDef(type, index, outer_index, metadata, None) or NodeRef(index)."
        )

    root = open_node(())
    path: list[tp.Any] = []
    while stack:
        frame = stack[-1]
        if frame.left:
            frame.left -= 1
            if a_pos >= len(attributes):
                raise _flat_error(
                    f"{frame.where} declares more attributes than `attributes` has left",
                    f"{len(frame.out) + frame.left + 1} attribute(s) for it "
                    f"(num_attributes) from attributes[{a_pos}] on",
                    f"{len(frame.out)}: attributes ends at {len(attributes)} entries",
                    "make each NodeDef's num_attributes the number of its own entries in "
                    "attributes (entries of nested nodes follow their node entry)",
                )
            entry = attributes[a_pos]
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise TypeError(
                    f"GraphDef(nodes, attributes, num_leaves): attributes[{a_pos}] is "
                    f"{entry!r}. Expected a (key, kind) pair. Fix: pass pairs such as "
                    "('w', NODE_ATTR), ('b', LEAF_ATTR) or ('n', Static(3))."
                )
            a_pos += 1
            key, kind = entry
            child = _attribute_record(kind, a_pos - 1)
            if child is ARRAY_DEF:
                leaves += 1
            elif child is None:
                child = open_node((*path, key))
                if child is None:  # a frame was pushed: fill it first
                    stack[-1].key = key
                    path.append(key)
                    continue
            frame.keys.append(key)
            frame.out.append(child)
            continue
        stack.pop()
        record = _close(frame)
        if stack:
            path.pop()
            stack[-1].keys.append(frame.key)
            stack[-1].out.append(record)
        else:
            root = record
    if n_pos != len(nodes) or a_pos != len(attributes):
        raise _flat_error(
            "the description has entries no node uses",
            f"the root's entries to use all {len(nodes)} nodes and {len(attributes)} attributes",
            f"{n_pos} nodes and {a_pos} attributes used",
            "check each NodeDef's num_attributes, and that every NODE_ATTR attribute has "
            "its node in nodes",
        )
    if leaves != num_leaves:
        raise _flat_error(
            "num_leaves does not match the leaves the structure holds",
            f"num_leaves={leaves} (one per VariableDef and LEAF_ATTR attribute)",
            f"num_leaves={num_leaves}",
            f"pass num_leaves={leaves}",
        )
    for index, pos in referenced:
        if index in defined and defined[index] > pos:
            raise _flat_error(
                f"nodes[{pos}] refers to node {index} before nodes[{defined[index]}] defines it",
                "a reference after the node it refers to (traversal order)",
                "a forward reference",
                "put the NodeDef/VariableDef first and the NodeRef at the later occurrences",
            )
    indices = [*defined, *(i for i, _ in referenced)]
    return root, max(indices) + 1 if indices else 0, outer or None


def _define(index: int, pos: int, where: str, defined: dict[int, int]) -> None:
    if index in defined:
        raise _flat_error(
            f"{where} defines node index {index} again",
            "each index defined by one NodeDef/VariableDef",
            f"nodes[{defined[index]}] and nodes[{pos}] both with index {index}",
            "give each node its own index and use NodeRef(index) for shared references",
        )
    defined[index] = pos


def _attribute_record(kind: tp.Any, a_pos: int) -> tp.Any:
    """The record of a leaf/static attribute; None for a node-kind attribute."""
    if isinstance(kind, StaticDef):
        return kind
    if isinstance(kind, (ArrayDef, LeafAttr)):
        return ARRAY_DEF
    if isinstance(kind, (NodeAttr, NodeDef, VariableDef, RefDef, ContainerDef)):
        return None
    if isinstance(kind, Static):
        return _new(StaticDef, (STATIC, Frozen(kind.value)))
    raise TypeError(
        f"GraphDef(nodes, attributes, num_leaves): attributes[{a_pos}] has kind "
        f"{kind!r}. Expected NODE_ATTR, LEAF_ATTR, Static(value) or a record from "
        "GraphDef.attributes. Fix: use nnx.graphlib.NODE_ATTR / LEAF_ATTR / Static."
    )


def _close(frame: _Frame) -> Record:
    if frame.kind == NODE:
        attrs = tuple(zip(frame.keys, frame.out))
        return tp.cast(Record, _new(NodeDef, (NODE, frame.type, frame.index, frame.meta, attrs)))
    items = (CONTAINER, frame.type, tuple(frame.keys), tuple(frame.out))
    if frame.type in PYTREE_REGISTRY:
        aux = frame.meta if isinstance(frame.meta, Frozen) else Frozen(frame.meta)
        return tp.cast(Record, _new(PytreeContainerDef, (*items, aux)))
    return tp.cast(Record, _new(ContainerDef, items))


def _leaf_root(attributes: list[tp.Any], num_leaves: int) -> Record:
    """The root record when ``nodes`` is empty: a leaf or a static value."""
    if not attributes and num_leaves == 1:
        return ARRAY_DEF
    if len(attributes) == 1 and num_leaves == 0 and isinstance(attributes[0], tuple):
        key, kind = attributes[0]
        record = _attribute_record(kind, 0) if key is None else None
        if isinstance(record, StaticDef):
            return record
    raise _flat_error(
        "with no nodes the GraphDef must describe a single leaf or a static value",
        "attributes=[] with num_leaves=1 (a leaf), or attributes=[(None, Static(value))] "
        "with num_leaves=0",
        f"{len(attributes)} attribute(s) and num_leaves={num_leaves}",
        "put the root node first in nodes",
    )
