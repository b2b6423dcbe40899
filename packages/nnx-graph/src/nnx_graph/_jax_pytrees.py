"""JAX-only pytrees holding state: types registered with ``jax.tree_util`` only
(``register_dataclass``, ``register_pytree_node``, ...), and ``nnx.State``, when
held by an attribute declared data (``nnx.data(...)``) or passed as the root of
``nnx.split``.

As in Flax, the graph API traverses them like containers: their children (by
JAX's one-level flatten, keyed by JAX's key path entries: attribute names, dict
keys, indices) become entries, so Variables and arrays inside them are state that
split/merge, update, the transforms and ``nnx.state`` carry. The type is added to
the graph's pytree registry on first use, rebuilt from JAX's treedef.
"""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph._graph_registry import PYTREE_REGISTRY, register_pytree_node_type
from nnx_graph._kinds import KIND_OTHER, kind_of
from nnx_graph._paths import sorted_keys

__all__ = ["register_jax_pytree"]

_NOT_NODES: set[type] = set()  # types seen to be JAX leaves


def register_jax_pytree(value: tp.Any) -> bool:
    """True when ``value``'s type is (now) in the graph's pytree registry: a JAX
    pytree node type that nnx does not otherwise know (not None, a container, an
    array, a Variable or a graph node)."""
    typ = type(value)
    if typ in PYTREE_REGISTRY:
        return True
    if value is None or typ in _NOT_NODES or kind_of(value) != KIND_OTHER:
        return False
    treedef = jax.tree.structure(value, is_leaf=lambda x: x is not value)
    if jax.tree_util.treedef_is_leaf(treedef):
        _NOT_NODES.add(typ)
        return False
    register_pytree_node_type(typ, _flatten, _unflatten)
    return True


def _key(entry: tp.Any) -> tp.Any:
    """A graph key from one JAX key path entry."""
    for attr in ("name", "key", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return str(entry)  # pragma: no cover (JAX's key entries all have one of these)


def _flatten(node: tp.Any) -> tuple[list[tuple[tp.Any, tp.Any]], tuple[tp.Any, ...]]:
    children, treedef = jax.tree_util.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    keys = tuple(_key(path[0]) for path, _ in children)
    by_key = dict(zip(keys, (child for _, child in children)))
    # entries sorted by key (as Flax lists them); the aux keeps JAX's order
    return [(k, by_key[k]) for k in sorted_keys(by_key)], (treedef, keys)


def _unflatten(pairs: tp.Sequence[tuple[tp.Any, tp.Any]], aux: tuple[tp.Any, ...]) -> tp.Any:
    treedef, keys = aux
    by_key = dict(pairs)
    return treedef.unflatten([by_key[k] for k in keys])
