"""The object-graph traversal: ``flatten_graph`` (objects -> GraphDef + ordered
leaves) and the readers built on the GraphDef walker (``node_repr``).

Traversal is deterministic: attribute names and dict keys are visited sorted.
Leaves are produced in traversal order; ``GraphDef.leaf_paths`` gives their paths.
The records, the walker and the builder live in ``_records.py`` and are
re-exported here. Both traversals are iterative (an explicit stack), so a chain
of 10,000 nested Modules works.
"""

from __future__ import annotations

import typing as tp
from collections import OrderedDict

import jax

from nnx_graph._build import build
from nnx_graph._errors import GraphStructureError, TraceLeakError, format_path
from nnx_graph._fingerprint import Fingerprint, fingerprint
from nnx_graph._graph_registry import GRAPH_REGISTRY, PYTREE_REGISTRY
from nnx_graph._hashing import Frozen
from nnx_graph._jax_pytrees import register_jax_pytree
from nnx_graph._paths import sorted_keys
from nnx_graph._pytree import (
    _KINDS,
    KIND_ARRAY,
    KIND_CONTAINER,
    KIND_NODE,
    KIND_OTHER,
    KIND_VARIABLE,
    Dict,
    List,
    Pytree,
    auto_container,
    has_data,
    kind_of,
)
from nnx_graph._records import (
    ARRAY_DEF,
    CONTAINER,
    LEAF,
    NODE,
    REF,
    STATIC,
    VAR,
    ArrayDef,
    ContainerDef,
    GraphDef,
    NodeDef,
    PytreeContainerDef,
    Record,
    RefDef,
    StaticDef,
    VariableDef,
    Visit,
    graphdef_repr,
    walk,
)
from nnx_graph._variables import (
    Variable,
    _set_observed,
    leaked_tracer,
    metadata_key,
    value_repr,
    variable_repr,
)

__all__ = [
    "CONTAINER",
    "LEAF",
    "NODE",
    "REF",
    "STATIC",
    "VAR",
    "ArrayDef",
    "ContainerDef",
    "Fingerprint",
    "Flattened",
    "GraphDef",
    "NodeDef",
    "Record",
    "RefDef",
    "Slot",
    "StaticDef",
    "VariableDef",
    "Visit",
    "build",
    "fingerprint",
    "flatten_graph",
    "freeze_static",
    "graphdef_repr",
    "node_repr",
    "walk",
]

Path = tuple[tp.Any, ...]
_new = tuple.__new__
_STATIC_CACHE: dict[tuple[type, tp.Any], StaticDef] = {}
_SIMPLE = frozenset({int, str, float, bool, type(None), bytes})


def freeze_static(value: tp.Any) -> StaticDef:
    """The StaticDef of a static value (shared for small immutable scalars)."""
    if type(value) in _SIMPLE:
        key = (type(value), value)
        record = _STATIC_CACHE.get(key)
        if record is None:
            if len(_STATIC_CACHE) > 4096:
                _STATIC_CACHE.clear()
            record = _STATIC_CACHE[key] = _new(StaticDef, (STATIC, Frozen(value)))
        return record
    return _new(StaticDef, (STATIC, Frozen(value)))


# --------------------------------------------------------------------- slots
class Slot:
    """A writable place holding a raw (non-Variable) leaf: a node attribute, a
    container entry, or an entry nested in plain tuples/lists/dicts under one."""

    __slots__ = ("owner", "key", "subpath")

    def __init__(self, owner: tp.Any, key: tp.Any, subpath: Path = ()) -> None:
        self.owner = owner
        self.key = key
        self.subpath = subpath

    def _get_top(self) -> tp.Any:
        owner = self.owner
        if isinstance(owner, List):  # (List/Dict are Pytrees holding items)
            return list.__getitem__(owner, self.key)
        if isinstance(owner, Pytree) and not isinstance(owner, Dict):
            return owner.__dict__[self.key]
        impl = GRAPH_REGISTRY.get(type(owner))
        if impl is not None:
            return dict(impl.items(owner))[self.key]
        return dict.__getitem__(owner, self.key)

    def _set_top(self, value: tp.Any) -> None:
        owner = self.owner
        if isinstance(owner, List):  # (List/Dict are Pytrees holding items)
            list.__setitem__(owner, self.key, value)
        elif isinstance(owner, Pytree) and not isinstance(owner, Dict):
            owner.__dict__[self.key] = value
        elif type(owner) in GRAPH_REGISTRY:
            GRAPH_REGISTRY[type(owner)].set_key(owner, self.key, value)
        else:
            dict.__setitem__(owner, self.key, value)

    @property
    def _raw_value(self) -> tp.Any:
        value = self._get_top()
        for k in self.subpath:
            if PYTREE_REGISTRY and type(value) in PYTREE_REGISTRY:
                value = PYTREE_REGISTRY[type(value)].child(value, k)
            else:
                value = value[k]
        return value

    @_raw_value.setter
    def _raw_value(self, new: tp.Any) -> None:
        if not self.subpath:
            self._set_top(new)
            return
        self._set_top(_replace_in(self._get_top(), self.subpath, new))

    def get_value(self) -> tp.Any:
        return self._raw_value

    def set_value(self, value: tp.Any) -> None:
        self._raw_value = value


def _replace_in(container: tp.Any, subpath: Path, new: tp.Any) -> tp.Any:
    key, rest = subpath[0], subpath[1:]
    impl = PYTREE_REGISTRY.get(type(container)) if PYTREE_REGISTRY else None
    if impl is not None:
        return impl.replace(
            container, key, new if not rest else _replace_in(impl.child(container, key), rest, new)
        )
    child = new if not rest else _replace_in(container[key], rest, new)
    if isinstance(container, dict):
        out = dict(container)
        out[key] = child
        return type(container)(out) if type(container) is not dict else out
    items = list(container)
    items[key] = child
    if isinstance(container, tuple):
        return type(container)(*items) if hasattr(container, "_fields") else type(container)(items)
    return items


# --------------------------------------------------------------------- flatten
class Flattened(tp.NamedTuple):
    graphdef: GraphDef[tp.Any]
    leaves: list[tp.Any]  # Variables and Slots, in leaf order
    nodes: list[tp.Any]  # every node/Variable by index


class _Frame:
    """A node or container being traversed: its items and the records so far."""

    __slots__ = (
        "kind",
        "obj",
        "index",
        "key",
        "keys",
        "items",
        "pos",
        "out",
        "owner",
        "attr",
        "sub",
    )

    def __init__(
        self,
        kind: int,
        obj: tp.Any,
        index: int,
        key: tp.Any,
        items: list[tuple[tp.Any, tp.Any, int]],
        owner: tp.Any,
        attr: tp.Any,
        sub: Path,
    ) -> None:
        self.kind = kind  # NODE or CONTAINER
        self.obj = obj
        self.index = index
        self.key = key  # the key under which the parent holds this value
        self.items = items  # (key, value, mode): mode 0 static, 1 visit, 2 forced leaf
        self.pos = 0
        self.out: list[tp.Any] = []
        self.owner = owner  # the graph node holding array leaves found below
        self.attr = attr
        self.sub = sub
        self.keys: tuple[tp.Any, ...] = ()  # a container's keys


def _node_items(node: tp.Any) -> list[tuple[tp.Any, tp.Any, int]]:
    """The attributes (or entries) of a graph node in traversal order, classified."""
    items: list[tuple[tp.Any, tp.Any, int]] = []
    if isinstance(node, List):  # (List/Dict are Pytrees holding items)
        kinds = node._nnx_item_kinds  # declared by nnx.data(...)/nnx.static(...)
        if kinds is not None:
            return [
                (i, v, (1 if has_data(v) else 0) if k is None else (2 if k else 0))
                for i, (v, k) in enumerate(zip(node, kinds))
            ]
        return [(k, v, 1 if has_data(v) else 0) for k, v in enumerate(node)]
    if isinstance(node, Dict):
        get = dict.__getitem__
        return [(k, get(node, k), 1 if has_data(get(node, k)) else 0) for k in sorted_keys(node)]
    if isinstance(node, Pytree):
        d = node.__dict__
        explicit = node._nnx_explicit
        class_kinds = type(node)._nnx_class_kinds
        if not explicit and not class_kinds:  # the common case: decide by value
            for name in sorted(d):
                if name[:5] == "_nnx_":
                    continue
                value = d[name]
                k = _KINDS.get(type(value))
                if k is None:
                    k = kind_of(value)
                if k == KIND_OTHER or (k == KIND_CONTAINER and not has_data(value)):
                    items.append((name, value, 0))
                    continue
                if type(value) in (list, dict):
                    value = auto_container(List(value) if type(value) is list else Dict(value))
                    d[name] = value
                items.append((name, value, 1))
            return items
        for name in sorted(d):
            if name[:5] == "_nnx_":
                continue
            value = d[name]
            # declared kind (nnx.data/static on assignment, or on the class) wins
            kind = explicit.get(name)
            if kind is None:
                kind = class_kinds.get(name)
            if kind is None:
                if not has_data(value):
                    items.append((name, value, 0))
                    continue
                if type(value) in (list, dict):
                    # a plain container that acquired data after assignment:
                    # convert it so that later mutation is tracked
                    value = auto_container(List(value) if type(value) is list else Dict(value))
                    d[name] = value
                items.append((name, value, 1))
            else:
                items.append((name, value, 2 if kind else 0))
    return items


def _container_items(value: tp.Any) -> tuple[tuple[tp.Any, ...], list[tuple[tp.Any, tp.Any, int]]]:
    if isinstance(value, dict):
        # an OrderedDict's order is part of its value; plain dicts are sorted
        keys = tuple(value) if type(value) is OrderedDict else tuple(sorted_keys(value))
        pairs = [(k, value[k]) for k in keys]
    else:
        keys = tuple(range(len(value)))
        pairs = list(zip(keys, value))
    return keys, [(k, v, 1 if has_data(v) else 0) for k, v in pairs]


_REBUILDABLE = (tuple, list, dict, OrderedDict)


def _pytree_child_mode(value: tp.Any) -> int:
    """How a child of a JAX-only pytree (or State) is walked: 1 when it is data, 2
    when it is itself a JAX pytree holding data (a nested State, a dataclass in a
    dataclass: traversed, not frozen into the GraphDef), else 0 (static)."""
    if has_data(value):
        return 1
    if value is None or kind_of(value) != KIND_OTHER or not register_jax_pytree(value):
        return 0
    leaves = jax.tree.leaves(value, is_leaf=lambda x: kind_of(x) == KIND_VARIABLE)
    return 2 if any(has_data(leaf) for leaf in leaves) else 0


def flatten_graph(
    root: tp.Any,
    *,
    check_leaks: bool = True,
    observe: bool = True,
    ref_index: dict[int, int] | None = None,
    ref_nodes: list[tp.Any] | None = None,
) -> Flattened:
    """Traverse ``root`` (a graph node, or a tuple/list/dict holding some) once,
    iteratively. ``observe=False`` leaves the objects' observed flags alone (for
    read-only consumers such as ``repr``). ``ref_index`` (``id -> index``) and
    ``ref_nodes`` (index -> object), shared by several calls, make objects seen by
    an earlier call references and continue its numbering (split contexts)."""
    index: dict[int, int] = {} if ref_index is None else ref_index
    nodes: list[tp.Any] = [] if ref_nodes is None else ref_nodes
    leaves: list[tp.Any] = []
    leaf_paths: list[Path] = []
    stack: list[_Frame] = []
    keys_path: list[tp.Any] = []  # keys from the root to the top frame

    def enter(
        value: tp.Any, key: tp.Any, owner: tp.Any, attr: tp.Any, sub: Path, mode: int
    ) -> tp.Any:
        """The record of ``value``, or None after pushing a frame for it."""
        kind = _KINDS.get(type(value))
        if kind is None:
            kind = kind_of(value)
        if kind == KIND_VARIABLE:
            i = index.get(id(value))
            if i is not None:
                return _new(RefDef, (REF, i))
            i = len(nodes)
            index[id(value)] = i
            nodes.append(value)
            if observe and not value._nnx_observed:
                _set_observed(value, True)
            if check_leaks and isinstance(value._raw_value, jax.core.Tracer):
                _check_leak(value, (*keys_path, key))
            leaves.append(value)
            leaf_paths.append((*keys_path, key) if stack else ())
            key_ = value._nnx_frozen or metadata_key(value)
            return _new(VariableDef, (VAR, type(value), i, key_))
        if kind == KIND_NODE:
            i = index.get(id(value))
            if i is not None:
                return _new(RefDef, (REF, i))
            i = len(nodes)
            index[id(value)] = i
            nodes.append(value)
            if GRAPH_REGISTRY and type(value) in GRAPH_REGISTRY:  # a registered type
                pairs, aux = GRAPH_REGISTRY[type(value)].flatten(value)
                items = [(k, v, 1 if has_data(v) else 0) for k, v in pairs]
                frame = _Frame(NODE, value, i, key, items, value, None, ())
                frame.keys = (Frozen(aux),)
                stack.append(frame)
                return None
            if observe and not value._nnx_observed:
                object.__setattr__(value, "_nnx_observed", True)
            stack.append(_Frame(NODE, value, i, key, _node_items(value), value, None, ()))
            return None
        if kind == KIND_ARRAY:
            leaves.append(Slot(owner, attr, sub))
            leaf_paths.append((*keys_path, key) if stack else ())
            return ARRAY_DEF
        if (
            kind == KIND_CONTAINER
            and (
                type(value) in _REBUILDABLE
                or (isinstance(value, tuple) and hasattr(value, "_fields"))
            )
            and has_data(value)
        ):
            keys, items = _container_items(value)
            frame = _Frame(CONTAINER, value, -1, key, items, owner, attr, sub)
            frame.keys = keys
            stack.append(frame)
            return None
        if mode == 2 and kind == KIND_OTHER:  # declared data: JAX-only pytrees, State
            register_jax_pytree(value)
        if PYTREE_REGISTRY and type(value) in PYTREE_REGISTRY:
            pairs = PYTREE_REGISTRY[type(value)].flatten(value)[0]
            frame = _Frame(CONTAINER, value, -2, key, [], owner, attr, sub)
            frame.items = [(k, v, _pytree_child_mode(v)) for k, v in pairs]
            frame.keys = tuple(k for k, _ in pairs)
            stack.append(frame)
            return None
        if mode == 2 and value is not None:  # (None, an empty pytree, has no leaves)
            leaves.append(Slot(owner, attr, sub))
            leaf_paths.append((*keys_path, key) if stack else ())
            return ARRAY_DEF
        if kind == KIND_CONTAINER and has_data(value):
            path = (*keys_path, key) if stack else ()
            raise GraphStructureError(
                f"{format_path(path)} is a {type(value).__name__} holding Variables, arrays "
                "or Modules. Expected a list, tuple, dict, OrderedDict, NamedTuple, nnx.List "
                "or nnx.Dict to hold them (other subclasses cannot be rebuilt from a "
                f"GraphDef). Fix: assign nnx.Dict(value) / nnx.List(value) (or a plain "
                "dict/list) instead."
            )
        return freeze_static(value)

    # Raw arrays inside a root-level tuple/list/dict have no graph node to live on;
    # a one-entry holder dict gives their Slots a place to read (and write) them.
    root_mode = 2 if kind_of(root) == KIND_OTHER else 1  # (JAX-only pytrees)
    result = enter(root, None, {None: root}, None, (), root_mode)
    while stack:
        frame = stack[-1]
        if frame.pos < len(frame.items):
            key, value, mode = frame.items[frame.pos]
            frame.pos += 1
            if mode == 0:
                record: tp.Any = freeze_static(value)
            else:
                if frame.kind == NODE:
                    record = enter(value, key, frame.obj, key, (), mode)
                else:
                    record = enter(value, key, frame.owner, frame.attr, (*frame.sub, key), mode)
                if record is None:  # a frame was pushed for value
                    keys_path.append(key)
                    continue
            frame.out.append((key, record) if frame.kind == NODE else record)
            continue
        stack.pop()
        obj = frame.obj
        if frame.kind == NODE:
            if frame.keys:  # a registered type's static data
                frozen = frame.keys[0]
            else:
                explicit = obj._nnx_explicit if isinstance(obj, Pytree) else None
                frozen = Frozen(explicit) if explicit else None
            record = _new(NodeDef, (NODE, type(obj), frame.index, frozen, tuple(frame.out)))
        else:
            record = _new(ContainerDef, (CONTAINER, type(obj), frame.keys, tuple(frame.out)))
            if frame.index == -2:  # a registered pytree type: keep its static data
                aux = Frozen(PYTREE_REGISTRY[type(obj)].flatten(obj)[1])
                record = _new(PytreeContainerDef, (*record, aux))
        if stack:
            keys_path.pop()
            parent = stack[-1]
            parent.out.append((frame.key, record) if parent.kind == NODE else record)
        else:
            result = record
    graphdef = GraphDef._create(result, len(leaves), len(nodes), tuple(leaf_paths))
    return Flattened(graphdef, leaves, nodes)


def _check_leak(var: Variable[tp.Any], path: Path) -> None:
    if leaked_tracer(var._raw_value):
        raise TraceLeakError(
            f"{format_path(path)} ({type(var).__name__}) holds a JAX tracer from "
            "a trace that has finished: a value computed inside a JAX transform "
            "was stored on an object that outlived it.\nExpected: a concrete "
            "array.\nFix: pass the object into the transform as an argument "
            "(nnx.jit, nnx.grad, ... carry updates back), or return the value "
            "and assign it outside."
        )


# --------------------------------------------------------------------- repr
_BRACKETS: dict[type, tuple[str, str]] = {tuple: ("(", ")"), list: ("[", "]"), dict: ("{", "}")}


def _entry_prefix(parent: NodeDef | ContainerDef | None, key: tp.Any) -> str:
    """How an entry is introduced inside its parent record's rendering."""
    if parent is None:
        return ""
    typ = parent.type
    if isinstance(parent, NodeDef):
        if issubclass(typ, List):
            return ""
        return f"{key!r}: " if issubclass(typ, Dict) or not issubclass(typ, Pytree) else f"{key}="
    return f"{key!r}: " if issubclass(typ, dict) else ""


def _brackets(record: NodeDef | ContainerDef) -> tuple[str, str]:
    typ = record.type
    if isinstance(record, NodeDef):
        if issubclass(typ, List):
            return "List([", "])"
        if issubclass(typ, Dict):
            return "Dict({", "})"
        return f"{typ.__name__}(", ")"  # Pytrees and registered graph node types
    for base, brackets in _BRACKETS.items():
        if issubclass(typ, base):
            return brackets
    return f"{typ.__name__}(", ")"  # pragma: no cover


def node_repr(node: tp.Any) -> str:
    """The multi-line ``repr`` of a graph node: attributes one per line, Variables
    and arrays summarised, a shared object shown once and then as ``<shared: ...>``."""
    flat = flatten_graph(node, check_leaks=False, observe=False)
    leaves = iter(flat.leaves)
    lines: list[str] = []
    open_records: list[NodeDef | ContainerDef] = []  # records being rendered
    links: list[tp.Any] = [None]  # linked path of each open record: (parent link, key)
    first_seen: dict[int, tp.Any] = {}  # node index -> linked path of its first visit
    skip = 0
    for visit in walk(flat.graphdef, closing=True, paths=False):
        if skip:
            skip -= 1
            continue
        record = visit.record
        if visit.closing:
            opened = open_records.pop()
            links.pop()
            lines.append(f"{_pad(len(open_records))}{_brackets(opened)[1]},")
            continue
        parent = open_records[-1] if open_records else None
        in_container = isinstance(parent, ContainerDef)
        key = visit.sub[-1] if visit.sub and in_container else visit.attr
        head = _pad(len(open_records)) + _entry_prefix(parent, key)
        link = (links[-1], key) if parent is not None else None
        if isinstance(record, RefDef):
            where = format_path(_unlink(first_seen[record.node_index]), "self")
            lines.append(f"{head}<shared: {where}>,")
        elif isinstance(record, VariableDef):
            first_seen[record.node_index] = link
            lines.append(f"{head}{variable_repr(next(leaves))},")
        elif isinstance(record, ArrayDef):
            lines.append(f"{head}{value_repr(next(leaves)._raw_value)},")
        elif isinstance(record, StaticDef):
            lines.append(f"{head}{value_repr(record.value.value)},")
        elif isinstance(record, ContainerDef) and all(
            isinstance(c, (ArrayDef, StaticDef)) for c in record.children
        ):
            items = [
                value_repr(c.value.value)
                if isinstance(c, StaticDef)
                else value_repr(next(leaves)._raw_value)
                for c in record.children
            ]
            opener, closer = _brackets(record)
            if opener == "{":
                items = [f"{k!r}: {t}" for k, t in zip(record.keys, items)]
            comma = "," if opener == "(" and len(items) == 1 else ""
            lines.append(f"{head}{opener}{', '.join(items)}{comma}{closer},")
            skip = len(record.children) + 1
        else:
            opener, closer = _brackets(record)
            if isinstance(record, NodeDef):
                first_seen[record.node_index] = link
                if not record.attrs:
                    lines.append(f"{head}{opener}{closer},")
                    skip = 1
                    continue
            lines.append(f"{head}{opener}")
            open_records.append(record)
            links.append(link)
    text = "\n".join(lines)
    return text[:-1] if text.endswith(",") else text


def _pad(depth: int) -> str:
    # indentation stops growing after 32 levels: a repr of a graph nested thousands
    # of levels deep stays linear in size
    return "  " * min(depth, 32)


def _unlink(link: tp.Any) -> Path:
    keys: list[tp.Any] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return tuple(reversed(keys))
