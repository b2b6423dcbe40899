"""The builder: creates the object graph a GraphDef describes, from its leaves,
by running a plan the walker compiles once per GraphDef (values are pushed on a
stack and each closing step pops its children)."""

from __future__ import annotations

import typing as tp

from nnx_graph import _epoch
from nnx_graph._containers_jax import restore_explicit
from nnx_graph._graph_registry import GRAPH_REGISTRY, PYTREE_REGISTRY
from nnx_graph._hashing import Frozen
from nnx_graph._kinds import KIND_ARRAY, kind_of
from nnx_graph._pytree import Dict, List, Pytree
from nnx_graph._records import (
    LEAF,
    REF,
    STATIC,
    VAR,
    ContainerDef,
    GraphDef,
    NodeDef,
    RefDef,
    StaticDef,
    VariableDef,
    walk,
)
from nnx_graph._variable_meta import set_raw as special_set_raw
from nnx_graph._variables import Variable, new_variable

__all__ = ["build"]

_OPEN, _CLOSE_NODE, _CLOSE_CONTAINER = 10, 11, 12


def _compile_plan(graphdef: GraphDef[tp.Any]) -> list[tuple[tp.Any, ...]]:
    """The builder's instructions, in walk order: values are pushed on a stack and
    each closing step pops its children."""
    plan: list[tuple[tp.Any, ...]] = []
    defined: set[int] = set()
    external: list[int] = []
    for visit in walk(graphdef, closing=True, paths=False):
        r = visit.record
        if isinstance(r, RefDef) and r.node_index not in defined:
            external.append(r.node_index)
        elif isinstance(r, (NodeDef, VariableDef)):
            defined.add(r.node_index)
        if isinstance(r, NodeDef):
            typ = r.type
            if typ in GRAPH_REGISTRY:  # registered type: explicit holds its static data
                kind, aux = 3, tp.cast(Frozen, r.explicit).value
            else:
                # (List/Dict are Pytrees holding items: tested first)
                kind = 1 if issubclass(typ, List) else 2 if issubclass(typ, Dict) else 0
                aux = None
            if visit.closing:
                explicit = dict(r.explicit.value) if r.explicit is not None and kind < 3 else None
                keys = tuple(k for k, _ in r.attrs)
                plan.append((_CLOSE_NODE, typ, r.node_index, keys, explicit, kind))
            else:
                plan.append((_OPEN, typ, r.node_index, kind, aux))
        elif isinstance(r, ContainerDef):
            if visit.closing:
                typ = r.type
                if typ in PYTREE_REGISTRY:
                    aux = r[4].value if len(r) > 4 else None
                    plan.append((_CLOSE_CONTAINER, typ, r.keys, 3, aux))
                    continue
                kind = 0 if issubclass(typ, dict) else 1 if hasattr(typ, "_fields") else 2
                plan.append((_CLOSE_CONTAINER, typ, r.keys, kind))
        elif isinstance(r, VariableDef):
            plan.append((VAR, r.type, r.node_index, r.metadata.value))
        elif isinstance(r, StaticDef):
            plan.append((STATIC, r.value.value))
        else:
            plan.append(tuple(r))
    graphdef._external = tuple(external)
    return plan


def build(
    graphdef: GraphDef[tp.Any],
    leaves: tp.Sequence[tp.Any],
    *,
    reuse_variables: bool = False,
    existing: tp.Mapping[int, tp.Any] | None = None,
    nodes: list[tp.Any] | None = None,
) -> tuple[tp.Any, list[tp.Any]]:
    """Create the object graph described by ``graphdef`` with ``leaves`` in leaf
    order. Returns ``(root, nodes_by_index)``.

    ``reuse_variables``: when a leaf is a Variable, use that object itself.
    ``existing``: map of node index -> object to update in place instead of
    creating (used to carry structural changes back out of transforms).
    ``nodes``: the objects built so far by a merge context, by node index (extended
    and filled in place); references to them resolve there.
    """
    plan = graphdef._plan
    if plan is None:
        plan = graphdef._plan = _compile_plan(graphdef)
    if nodes is None:
        if graphdef._external:
            raise _external_error(graphdef, None)
        nodes = [None] * graphdef.num_nodes
    else:
        if len(nodes) < graphdef.num_nodes:
            nodes.extend([None] * (graphdef.num_nodes - len(nodes)))
        if graphdef._external and any(nodes[i] is None for i in graphdef._external):
            raise _external_error(graphdef, nodes)
    old_nodes = existing or {}
    values: list[tp.Any] = []
    push = values.append
    pos = 0
    for op in plan:
        tag = op[0]
        if tag == VAR:
            leaf = leaves[pos]
            pos += 1
            i = op[2]
            old = old_nodes.get(i) if existing else None
            if old is not None:
                raw = leaf._raw_value if isinstance(leaf, Variable) else leaf
                if old._nnx_special:  # a hijax Variable's box takes the value in place
                    special_set_raw(old, raw)
                else:
                    old._raw_value = raw
                if old._var_metadata != op[3]:
                    old.set_metadata(dict(op[3]))
                var = old
            elif reuse_variables and isinstance(leaf, Variable):
                var = leaf
            else:
                raw = leaf._raw_value if isinstance(leaf, Variable) else leaf
                var = new_variable(op[1], raw, dict(op[3]))
            nodes[i] = var
            push(var)
        elif tag == _OPEN:
            typ, i = op[1], op[2]
            old = old_nodes.get(i) if existing else None
            if old is not None:
                nodes[i] = old
            elif op[3] == 0:
                nodes[i] = object.__new__(typ)
            elif op[3] < 3:
                nodes[i] = (list if op[3] == 1 else dict).__new__(typ)
            else:
                nodes[i] = GRAPH_REGISTRY[typ].create_empty(op[4])
        elif tag == _CLOSE_NODE:
            keys = op[3]
            n = len(keys)
            node = nodes[op[2]]
            if n:
                children = values[-n:]
                del values[-n:]
            else:
                children = []
            if existing and op[2] in old_nodes:
                _fill_existing(node, op[1], keys, children, op[4])
            elif op[5] == 0:
                d = node.__dict__
                d.update(zip(keys, children))
                if op[4] is not None:
                    d["_nnx_explicit"] = dict(op[4])
            elif op[5] == 1:
                list.extend(node, children)
                if op[4] is not None:  # made from a plain list, items marked data/static
                    restore_explicit(node, op[4])
            elif op[5] == 2:
                dict.update(node, zip(keys, children))
                if op[4] is not None:
                    restore_explicit(node, op[4])
            else:
                GRAPH_REGISTRY[op[1]].init(node, zip(keys, children))
            push(node)
        elif tag == _CLOSE_CONTAINER:
            keys, kind = op[2], op[3]
            n = len(keys)
            children = values[len(values) - n :] if n else []
            if n:
                del values[-n:]
            typ = op[1]
            if kind == 0:
                push(typ(zip(keys, children)))
            elif kind == 1:
                push(typ(*children))
            elif kind == 2:
                push(typ(children))
            else:
                push(PYTREE_REGISTRY[typ].unflatten(list(zip(keys, children)), op[4]))
        elif tag == REF:
            push(nodes[op[1]])
        elif tag == LEAF:
            leaf = leaves[pos]
            pos += 1
            push(leaf._raw_value if isinstance(leaf, Variable) else leaf)
        else:  # STATIC
            push(op[1])
    return values[0], nodes


def _external_error(graphdef: GraphDef[tp.Any], nodes: list[tp.Any] | None) -> KeyError:
    missing = [i for i in graphdef._external if nodes is None or nodes[i] is None]
    return _ContextKeyError(
        f"GraphDef refers to node index(es) {missing} created by an earlier split of the "
        "same nnx.split_context, which this merge has not seen. Expected them to be "
        "merged first in the same nnx.merge_context. Fix: merge every GraphDef of the "
        "split context, in split order, inside one `with nnx.merge_context() as ctx:`."
    )


class _ContextKeyError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _fill_existing(
    node: tp.Any, typ: type, keys: tuple[tp.Any, ...], children: list[tp.Any], explicit: tp.Any
) -> None:
    """Update an existing node in place; bump the epoch when its structure changed."""
    impl = GRAPH_REGISTRY.get(typ)
    if impl is not None:
        before = impl.items(node)
        if [k for k, _ in before] != list(keys):
            _epoch.bump()
            impl.clear(node)
            impl.init(node, zip(keys, children))
            return
        for (key, old), new in zip(before, children):
            if old is not new:
                if kind_of(new) != KIND_ARRAY:  # a new Variable/node: structure changed
                    _epoch.bump()
                impl.set_key(node, key, new)
        return
    if issubclass(typ, Pytree) and not issubclass(typ, (List, Dict)):
        d = node.__dict__
        new_attrs = dict(zip(keys, children))
        changed = [
            k
            for k in d
            if not k.startswith("_nnx_") and (k not in new_attrs or d[k] is not new_attrs[k])
        ]
        changed += [k for k in new_attrs if k not in d]
        for k in [k for k in d if not k.startswith("_nnx_") and k not in new_attrs]:
            del d[k]
        if changed and node._nnx_observed:
            _epoch.bump()
        d.update(new_attrs)
        if explicit is not None:
            d["_nnx_explicit"] = dict(explicit)
    elif issubclass(typ, List):
        if node._nnx_observed and (
            len(children) != len(node) or any(a is not b for a, b in zip(children, node))
        ):
            _epoch.bump()
        list.__init__(node, children)
    else:
        items = dict(zip(keys, children))
        if node._nnx_observed and (
            set(items) != set(node) or any(items[k] is not dict.__getitem__(node, k) for k in items)
        ):
            _epoch.bump()
        dict.clear(node)
        dict.update(node, items)
