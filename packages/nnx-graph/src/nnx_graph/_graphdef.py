"""GraphDef and the two primitive traversals: ``flatten`` (object graph -> GraphDef
+ ordered leaves) and ``build`` (GraphDef + leaves -> object graph).

Encoding.  A GraphDef wraps a nested tuple, so it is immutable, hashable and
compares by structure.  Node records:

* ``(NODE, type, index, explicit, attrs)``: a graph node (Pytree, List, Dict) with
  identity; ``attrs`` is a tuple of ``(key, record)`` in traversal order.
* ``(VAR, type, index, metadata)``: a Variable; its value is the next leaf.
* ``(REF, index)``: a node or Variable already seen (shared reference or cycle).
* ``(LEAF,)``: a raw array (or explicitly-data value) stored directly on a node.
* ``(STATIC, frozen)``: a static value.
* ``(CONTAINER, type, keys, children)``: a plain tuple/list/dict (no identity).

Traversal is deterministic: attribute names and dict keys are visited sorted.
Leaves are produced in traversal order; ``GraphDef.leaf_paths`` gives their paths.
"""

from __future__ import annotations

import typing as tp
from collections import OrderedDict

import jax
import numpy as np

from nnx_graph._errors import GraphStructureError, TraceLeakError, format_path
from nnx_graph._hashing import Frozen
from nnx_graph._pytree import Dict, List, Pytree, has_data, is_data
from nnx_graph._state import sorted_keys
from nnx_graph._variables import Variable, _leaked_tracer

__all__ = ["GraphDef", "Slot", "build", "flatten_graph"]

NODE, VAR, REF, LEAF, STATIC, CONTAINER = range(6)

Path = tuple[tp.Any, ...]


class GraphDef:
    """The static structure of an object graph: node types, attribute names, static
    values, Variable types and metadata, and where references are shared.

    Immutable and hashable; equal for equal structures. Obtained from
    :func:`nnx.split` / :func:`nnx.graphdef`.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> g1, _ = nnx.split(M()); g2, _ = nnx.split(M())
        >>> g1 == g2, hash(g1) == hash(g2)
        (True, True)
    """

    __slots__ = ("_record", "_hash", "_leaf_paths", "num_leaves", "num_nodes")

    def __init__(self, record: tuple[tp.Any, ...], num_leaves: int, num_nodes: int) -> None:
        self._record = record
        self._hash = hash(record)
        self._leaf_paths: tuple[Path, ...] | None = None
        self.num_leaves = num_leaves
        self.num_nodes = num_nodes

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, GraphDef)
            and self._hash == other._hash
            and self._record == other._record
        )

    @property
    def leaf_paths(self) -> tuple[Path, ...]:
        """The path of every leaf, in leaf order."""
        if self._leaf_paths is None:
            paths: list[Path] = []
            _collect_leaf_paths(self._record, (), paths)
            self._leaf_paths = tuple(paths)
        return self._leaf_paths

    @property
    def type(self) -> type:
        """The type of the root node."""
        return tp.cast(type, self._record[1])

    def merge(self, state: tp.Any, /, *states: tp.Any) -> tp.Any:
        """``nnx.merge(self, state, *states)``."""
        from nnx_graph._graph import merge

        return merge(self, state, *states)

    def apply(self, state: tp.Any, *states: tp.Any) -> tp.Any:
        """Compatibility functional call: ``graphdef.apply(state)(x)`` returns
        ``(out, (graphdef, state))``."""
        from nnx_graph._graph import call
        from nnx_graph._state import merge_state

        return call((self, merge_state(state, *states)))

    def __repr__(self) -> str:
        from nnx_graph._repr import graphdef_repr

        return graphdef_repr(self)

    def __getstate__(self) -> tuple[tp.Any, ...]:
        return (self._record, self.num_leaves, self.num_nodes)

    def __setstate__(self, state: tuple[tp.Any, ...]) -> None:
        self._record, self.num_leaves, self.num_nodes = state
        self._hash = hash(self._record)
        self._leaf_paths = None


def _collect_leaf_paths(record: tuple[tp.Any, ...], path: Path, out: list[Path]) -> None:
    tag = record[0]
    if tag in (VAR, LEAF):
        out.append(path)
    elif tag == NODE:
        for key, child in record[4]:
            _collect_leaf_paths(child, (*path, key), out)
    elif tag == CONTAINER:
        for key, child in zip(record[2], record[3]):
            _collect_leaf_paths(child, (*path, key), out)


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
        if isinstance(owner, Pytree):
            return owner.__dict__[self.key]
        if isinstance(owner, List):
            return list.__getitem__(owner, self.key)
        return dict.__getitem__(owner, self.key)

    def _set_top(self, value: tp.Any) -> None:
        owner = self.owner
        if isinstance(owner, Pytree):
            owner.__dict__[self.key] = value
        elif isinstance(owner, List):
            list.__setitem__(owner, self.key, value)
        else:
            dict.__setitem__(owner, self.key, value)

    @property
    def _raw_value(self) -> tp.Any:
        value = self._get_top()
        for k in self.subpath:
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
    graphdef: GraphDef
    leaves: list[tp.Any]  # Variables and Slots, in leaf order
    nodes: list[tp.Any]  # every node/Variable by index


def flatten_graph(root: tp.Any, *, check_leaks: bool = True) -> Flattened:
    """Traverse ``root`` (a graph node, or a tuple/list/dict holding some) once."""
    index: dict[int, int] = {}
    nodes: list[tp.Any] = []
    leaves: list[tp.Any] = []

    def visit_value(
        value: tp.Any, path: Path, owner: tp.Any, key: tp.Any, sub: Path, force_leaf: bool = False
    ) -> tuple[tp.Any, ...]:
        if isinstance(value, Variable):
            i = index.get(id(value))
            if i is not None:
                return (REF, i)
            i = len(nodes)
            index[id(value)] = i
            nodes.append(value)
            object.__setattr__(value, "_nnx_observed", True)
            if (
                check_leaks
                and isinstance(value._raw_value, jax.core.Tracer)
                and _leaked_tracer(value._raw_value)
            ):
                raise TraceLeakError(
                    f"{format_path(path)} ({type(value).__name__}) holds a JAX tracer from "
                    "a trace that has finished: a value computed inside a JAX transform "
                    "was stored on an object that outlived it.\nExpected: a concrete "
                    "array.\nFix: pass the object into the transform as an argument "
                    "(nnx.jit, nnx.grad, ... carry updates back), or return the value "
                    "and assign it outside."
                )
            leaves.append(value)
            return (VAR, type(value), i, Frozen(value._var_metadata))
        if isinstance(value, (Pytree, List, Dict)):
            i = index.get(id(value))
            if i is not None:
                return (REF, i)
            i = len(nodes)
            index[id(value)] = i
            nodes.append(value)
            value._nnx_observed = True
            return visit_node(value, path, i)
        if isinstance(value, (jax.Array, np.ndarray)) or is_data(value):
            leaves.append(Slot(owner, key, sub))
            return (LEAF,)
        if (
            type(value) in (tuple, list, dict, OrderedDict)
            or (isinstance(value, tuple) and hasattr(value, "_fields"))
        ) and has_data(value):
            if isinstance(value, dict):
                # an OrderedDict's order is part of its value; plain dicts are sorted
                keys = tuple(value) if type(value) is OrderedDict else tuple(sorted_keys(value))
                items = [(k, value[k]) for k in keys]
            else:
                keys = tuple(range(len(value)))
                items = list(zip(keys, value))
            children = tuple(
                visit_value(v, (*path, k), owner, key, (*sub, k))
                if has_data(v)
                else (STATIC, Frozen(v))
                for k, v in items
            )
            return (CONTAINER, type(value), keys, children)
        if force_leaf:
            leaves.append(Slot(owner, key, sub))
            return (LEAF,)
        if isinstance(value, (list, tuple, dict)) and has_data(value):
            raise GraphStructureError(
                f"{format_path(path)} is a {type(value).__name__} holding Variables, arrays "
                "or Modules. Expected a list, tuple, dict, OrderedDict, NamedTuple, nnx.List "
                "or nnx.Dict to hold them (other subclasses cannot be rebuilt from a "
                f"GraphDef). Fix: assign nnx.Dict(value) / nnx.List(value) (or a plain "
                "dict/list) instead."
            )
        return (STATIC, Frozen(value))

    def visit_node(node: tp.Any, path: Path, i: int) -> tuple[tp.Any, ...]:
        attrs: list[tuple[tp.Any, tp.Any]] = []
        if isinstance(node, Pytree):
            d = node.__dict__
            explicit = node._nnx_explicit
            class_kinds = type(node)._nnx_class_kinds
            for name in sorted(d):
                if name.startswith("_nnx_"):
                    continue
                value = d[name]
                # declared kind (nnx.data/static on assignment, or on the class) wins
                kind = explicit.get(name)
                if kind is None:
                    kind = class_kinds.get(name)
                if kind is None:
                    if not has_data(value):
                        attrs.append((name, (STATIC, Frozen(value))))
                        continue
                    if type(value) in (list, dict):
                        # a plain container that acquired data after assignment:
                        # convert it so that later mutation is tracked
                        value = List(value) if type(value) is list else Dict(value)
                        d[name] = value
                elif not kind:
                    attrs.append((name, (STATIC, Frozen(value))))
                    continue
                attrs.append(
                    (
                        name,
                        visit_value(value, (*path, name), node, name, (), force_leaf=kind is True),
                    )
                )
            frozen_explicit = Frozen(explicit) if explicit else None
            return (NODE, type(node), i, frozen_explicit, tuple(attrs))
        if isinstance(node, List):
            for k, value in enumerate(node):
                attrs.append(
                    (
                        k,
                        visit_value(value, (*path, k), node, k, ())
                        if has_data(value)
                        else (STATIC, Frozen(value)),
                    )
                )
        else:
            for k in sorted_keys(node):
                value = dict.__getitem__(node, k)
                attrs.append(
                    (
                        k,
                        visit_value(value, (*path, k), node, k, ())
                        if has_data(value)
                        else (STATIC, Frozen(value)),
                    )
                )
        return (NODE, type(node), i, None, tuple(attrs))

    # Raw arrays inside a root-level tuple/list/dict have no graph node to live on;
    # a one-entry holder dict gives their Slots a place to read (and write) them.
    record = visit_value(root, (), {None: root}, None, ())
    return Flattened(GraphDef(record, len(leaves), len(nodes)), leaves, nodes)


# --------------------------------------------------------------------- build
def build(
    graphdef: GraphDef,
    leaves: tp.Sequence[tp.Any],
    *,
    reuse_variables: bool = False,
    existing: tp.Mapping[int, tp.Any] | None = None,
) -> tuple[tp.Any, list[tp.Any]]:
    """Create the object graph described by ``graphdef`` with ``leaves`` in leaf
    order. Returns ``(root, nodes_by_index)``.

    ``reuse_variables``: when a leaf is a Variable, use that object itself.
    ``existing``: map of node index -> object to update in place instead of
    creating (used to carry structural changes back out of transforms).
    """
    nodes: list[tp.Any] = [None] * graphdef.num_nodes
    position = [0]
    existing = existing or {}

    def take() -> tp.Any:
        value = leaves[position[0]]
        position[0] += 1
        return value

    def make(record: tuple[tp.Any, ...]) -> tp.Any:
        tag = record[0]
        if tag == VAR:
            _, typ, i, meta = record
            leaf = take()
            old = existing.get(i)
            if old is not None:
                value = leaf._raw_value if isinstance(leaf, Variable) else leaf
                object.__setattr__(old, "_raw_value", value)
                if old._var_metadata != meta.value:
                    old.set_metadata(dict(meta.value))
                nodes[i] = old
                return old
            if reuse_variables and isinstance(leaf, Variable):
                nodes[i] = leaf
                return leaf
            var = object.__new__(typ)
            object.__setattr__(
                var, "_raw_value", leaf._raw_value if isinstance(leaf, Variable) else leaf
            )
            object.__setattr__(var, "_var_metadata", dict(meta.value))
            object.__setattr__(var, "_nnx_observed", False)
            nodes[i] = var
            return var
        if tag == REF:
            return nodes[record[1]]
        if tag == LEAF:
            leaf = take()
            return leaf._raw_value if isinstance(leaf, Variable) else leaf
        if tag == STATIC:
            return record[1].value
        if tag == CONTAINER:
            _, typ, keys, children = record
            values = [make(c) for c in children]
            if typ is dict or issubclass(typ, dict):
                return typ(zip(keys, values))
            if hasattr(typ, "_fields"):
                return typ(*values)
            return typ(values)
        # NODE
        _, typ, i, explicit, attrs = record
        old = existing.get(i)
        if issubclass(typ, Pytree):
            node = old if old is not None else object.__new__(typ)
            nodes[i] = node
            new_attrs = {key: make(child) for key, child in attrs}
            d = node.__dict__
            if old is not None:
                changed = [
                    k
                    for k in d
                    if not k.startswith("_nnx_")
                    and (k not in new_attrs or d[k] is not new_attrs[k])
                ]
                changed += [k for k in new_attrs if k not in d]
                for k in [k for k in d if not k.startswith("_nnx_") and k not in new_attrs]:
                    del d[k]
                if changed and node._nnx_observed:
                    from nnx_graph import _epoch

                    _epoch.bump()
            d.update(new_attrs)
            if explicit is not None:
                d["_nnx_explicit"] = dict(explicit.value)
            return node
        if issubclass(typ, List):
            node = old if old is not None else List.__new__(typ)
            if old is None:
                node._nnx_observed = False
            nodes[i] = node
            values = [make(child) for _, child in attrs]
            if old is not None and node._nnx_observed:
                from nnx_graph import _epoch

                if len(values) != len(node) or any(a is not b for a, b in zip(values, node)):
                    _epoch.bump()
            list.__init__(node, values)
            return node
        node = old if old is not None else Dict.__new__(typ)
        if old is None:
            node._nnx_observed = False
        nodes[i] = node
        items = {key: make(child) for key, child in attrs}
        if old is not None and node._nnx_observed:
            from nnx_graph import _epoch

            if set(items) != set(node) or any(
                items[k] is not dict.__getitem__(node, k) for k in items
            ):
                _epoch.bump()
        dict.clear(node)
        dict.update(node, items)
        return node

    root = make(graphdef._record)
    return root, nodes
