"""``to_tree``/``from_tree``: graph nodes inside a pytree <-> :class:`NodeStates`.

``to_tree`` replaces every graph node (and bare Variable) of a pytree with a
``NodeStates`` (a GraphDef plus States) inside one :func:`split_context`, so an
object reachable from two places is stored once and referenced after;
``from_tree`` merges them back inside one :func:`merge_context`.
"""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph._graph import iter_graph
from nnx_graph._graph_contexts import MergeContext, SplitContext, merge_context, split_context
from nnx_graph._pytree import is_graph_node
from nnx_graph._records import GraphDef
from nnx_graph._variables import Variable

__all__ = [
    "NodeStates",
    "check_consistent_aliasing",
    "default_split_fn",
    "from_tree",
    "is_tree_node",
    "merge_tree_node",
    "to_tree",
]

KeyPath = tuple[tp.Any, ...]


class _Missing:
    """Sentinel: no prefix given."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: tp.Any = _Missing()


class NodeStates:
    """A pytree standing for a graph node: its GraphDef (static) and its States
    (the children). Produced by :func:`to_tree`.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> tree = nnx.to_tree([M()])
        >>> type(tree[0]).__name__, len(jax.tree.leaves(tree))
        ('NodeStates', 1)
    """

    __slots__ = ("_graphdef", "states", "metadata")

    def __init__(
        self, _graphdef: GraphDef[tp.Any] | None, states: tuple[tp.Any, ...], metadata: tp.Any
    ) -> None:
        self._graphdef, self.states, self.metadata = _graphdef, tuple(states), metadata

    @property
    def graphdef(self) -> GraphDef[tp.Any]:
        """The GraphDef; ValueError when this NodeStates carries none."""
        if self._graphdef is None:
            raise ValueError(
                "NodeStates: No graphdef available (made by from_states/from_prefixes). "
                "Fix: build it with NodeStates.from_split(graphdef, state)."
            )
        return self._graphdef

    @property
    def state(self) -> tp.Any:
        """The single State; ValueError when there are several."""
        if len(self.states) != 1:
            raise ValueError(
                f"NodeStates.state: Expected exactly one state, got {len(self.states)}. "
                "Fix: read .states instead."
            )
        return self.states[0]

    @classmethod
    def from_split(
        cls,
        graphdef: GraphDef[tp.Any] | None,
        state: tp.Any,
        /,
        *states: tp.Any,
        metadata: tp.Any = None,
    ) -> NodeStates:
        """From the results of a split: ``NodeStates.from_split(*nnx.split(node))``."""
        return cls(graphdef, (state, *states), metadata)

    @classmethod
    def from_states(cls, state: tp.Any, *states: tp.Any) -> NodeStates:
        """States without a GraphDef."""
        return cls(None, (state, *states), None)

    @classmethod
    def from_prefixes(
        cls, prefixes: tp.Iterable[tp.Any], /, *, metadata: tp.Any = None
    ) -> NodeStates:
        """Prefixes (e.g. axes) in place of States, without a GraphDef."""
        return cls(None, tuple(prefixes), metadata)

    def replace(self, **updates: tp.Any) -> NodeStates:
        """A copy with some of ``_graphdef``/``states``/``metadata`` replaced."""
        fields = {"_graphdef": self._graphdef, "states": self.states, "metadata": self.metadata}
        unknown = set(updates) - set(fields)
        if unknown:
            raise TypeError(
                f"NodeStates.replace: unexpected field(s) {sorted(unknown)}; expected "
                "_graphdef, states or metadata."
            )
        fields.update(updates)
        return NodeStates(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodeStates):
            return NotImplemented
        return bool(
            self._graphdef == other._graphdef
            and self.states == other.states
            and self.metadata == other.metadata
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"NodeStates(_graphdef={self._graphdef!r}, states={self.states!r}, "
            f"metadata={self.metadata!r})"
        )


jax.tree_util.register_pytree_with_keys(
    NodeStates,
    lambda n: (
        tuple((jax.tree_util.SequenceKey(i), s) for i, s in enumerate(n.states)),
        (n._graphdef, n.metadata),
    ),
    lambda aux, states: NodeStates(aux[0], tuple(states), aux[1]),
    lambda n: (n.states, (n._graphdef, n.metadata)),
)


def default_split_fn(ctx: SplitContext, path: KeyPath, prefix: tp.Any, leaf: tp.Any) -> tp.Any:
    """``to_tree``'s default: ``NodeStates.from_split(*ctx.split(leaf))``."""
    return NodeStates.from_split(*ctx.split(leaf))


def merge_tree_node(ctx: MergeContext, path: KeyPath, prefix: tp.Any, leaf: tp.Any) -> tp.Any:
    """``from_tree``'s default: merge a :class:`NodeStates` in the merge context."""
    if not isinstance(leaf, NodeStates):
        raise ValueError(
            f"from_tree: Expected TreeNode (a NodeStates) at path {jax.tree_util.keystr(path)}"
            f", found {type(leaf).__name__}. Fix: pass the output of nnx.to_tree."
        )
    return ctx.merge(leaf.graphdef, *leaf.states)


def is_tree_node(x: tp.Any) -> bool:
    """True for a :class:`NodeStates`."""
    return isinstance(x, NodeStates)


def _is_node_or_variable(x: tp.Any) -> bool:
    return isinstance(x, Variable) or is_graph_node(x)


def check_consistent_aliasing(
    node: tp.Any, prefix: tp.Any, /, *, node_prefixes: dict[int, list[tp.Any]] | None = None
) -> None:
    """Raise ValueError when a Variable reachable from several leaves of a tree is
    given different prefixes (e.g. two different vmap axes)."""
    if node_prefixes is None:
        node_prefixes = {}
    for path, value in iter_graph(node, graph=True):
        if isinstance(value, Variable):
            node_prefixes.setdefault(id(value), [type(value).__name__]).append((path, prefix))
    messages = []
    for entries in node_prefixes.values():
        name, pairs = entries[0], entries[1:]
        if len({repr(p) for _, p in pairs}) > 1:
            lines = "\n".join(f"  {'/'.join(map(str, p)) or '<root>'}: {x!r}" for p, x in pairs)
            messages.append(f"Node: {name}\n{lines}")
    if messages:
        raise ValueError(
            "Inconsistent aliasing detected. The following nodes have different prefixes:\n"
            + "\n".join(messages)
            + "\nFix: give every reference to a shared Variable the same prefix."
        )


def _broadcast_prefix(
    prefix: tp.Any, tree: tp.Any, is_leaf: tp.Callable[[tp.Any], bool]
) -> list[tp.Any]:
    """One prefix value per leaf of ``tree`` (leaves as decided by ``is_leaf``)."""
    prefix_leaves, prefix_def = jax.tree.flatten(prefix, is_leaf=lambda x: x is None or is_leaf(x))
    try:
        subtrees = prefix_def.flatten_up_to(tree)  # type: ignore[attr-defined]
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"to_tree/from_tree: the prefix {prefix!r} is not a tree prefix of the input. "
            f"Expected its structure to match the top of the tree. Fix: pass a prefix "
            f"whose structure matches ({e})."
        ) from None
    out: list[tp.Any] = []
    for value, sub in zip(prefix_leaves, subtrees):
        out.extend([value] * len(jax.tree.leaves(sub, is_leaf=is_leaf)))
    return out


def to_tree(
    tree: tp.Any,
    /,
    *,
    prefix: tp.Any = MISSING,
    split_fn: tp.Callable[[SplitContext, KeyPath, tp.Any, tp.Any], tp.Any] = default_split_fn,
    map_non_graph_nodes: bool = False,
    ctxtag: tp.Hashable | None = None,
    check_aliasing: bool = True,
) -> tp.Any:
    """Replace the graph nodes (and bare Variables) inside a pytree with
    ``split_fn(ctx, path, prefix, node)`` (default: a :class:`NodeStates`), all in
    one split context so that sharing between them is kept. ``prefix``: a tree
    prefix whose values are passed to ``split_fn``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> m = M(); back = nnx.from_tree(nnx.to_tree((m, m)))
        >>> back[0] is back[1]
        True
    """
    if prefix is MISSING or prefix is None:
        with split_context(ctxtag) as ctx:
            return jax.tree.map(
                lambda x: (
                    split_fn(ctx, (), prefix, x)
                    if map_non_graph_nodes or _is_node_or_variable(x)
                    else x
                ),
                tree,
                is_leaf=_is_node_or_variable,
            )
    prefixes = _broadcast_prefix(prefix, tree, _is_node_or_variable)
    keyed, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_node_or_variable)
    node_prefixes: dict[int, list[tp.Any]] = {}
    out = []
    with split_context(ctxtag) as ctx:
        for (path, leaf), leaf_prefix in zip(keyed, prefixes):
            if _is_node_or_variable(leaf):
                if check_aliasing:
                    check_consistent_aliasing(leaf, leaf_prefix, node_prefixes=node_prefixes)
                out.append(split_fn(ctx, path, leaf_prefix, leaf))
            else:
                out.append(split_fn(ctx, path, leaf_prefix, leaf) if map_non_graph_nodes else leaf)
    return jax.tree.unflatten(treedef, out)


def from_tree(
    tree: tp.Any,
    /,
    *,
    prefix: tp.Any = MISSING,
    merge_fn: tp.Callable[[MergeContext, KeyPath, tp.Any, tp.Any], tp.Any] = merge_tree_node,
    is_node_leaf: tp.Callable[[tp.Any], bool] = is_tree_node,
    is_leaf: tp.Callable[[tp.Any], bool] = is_tree_node,
    map_non_graph_nodes: bool = False,
    is_inner: bool | None = None,
    ctxtag: tp.Hashable | None = None,
) -> tp.Any:
    """Inverse of :func:`to_tree`: every leaf for which ``is_node_leaf`` holds (a
    :class:`NodeStates`) becomes ``merge_fn(ctx, path, prefix, leaf)``, all in one
    merge context so that shared objects come back shared.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> d = nnx.from_tree(nnx.to_tree({"a": nnx.Dict(w=nnx.Param(jnp.ones(1)))}))
        >>> d["a"]["w"].shape
        (1,)
    """
    if prefix is MISSING or prefix is None:
        with merge_context(ctxtag, is_inner) as ctx:
            return jax.tree.map(
                lambda x: (
                    merge_fn(ctx, (), prefix, x)
                    if map_non_graph_nodes or is_node_leaf(x) or isinstance(x, Variable)
                    else x
                ),
                tree,
                is_leaf=is_leaf,
            )
    prefixes = _broadcast_prefix(prefix, tree, is_leaf)
    keyed, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    out = []
    with merge_context(ctxtag, is_inner) as ctx:
        for (path, leaf), leaf_prefix in zip(keyed, prefixes):
            if map_non_graph_nodes or is_node_leaf(leaf) or isinstance(leaf, Variable):
                leaf = merge_fn(ctx, path, leaf_prefix, leaf)
            out.append(leaf)
    return jax.tree.unflatten(treedef, out)
