"""Lifting plain JAX transforms over graph nodes by hand (``flax.nnx.transforms.general``).

``split_inputs`` turns the graph nodes (Modules, ...) among a function's arguments
into pure pytrees (each node's State, with its GraphDef as static data) before
calling it, so a transform's per-argument axes apply to each node; ``merge_inputs``
turns them back into objects inside the function, runs it, and hands the updated
States back out (in the arguments' places, then the output), where ``split_inputs``
writes them into the caller's objects. In between, any JAX transform can run (``jax.jit``,
``jax.lax.cond``, ...). The nnx transforms (``nnx.jit``, ``nnx.cond``, ...) do this
for you; these two are for JAX transforms nnx does not wrap.

Example::

    >>> import jax, jax.numpy as jnp, nnx_graph
    >>> from nnx_graph.transforms.general import merge_inputs, split_inputs
    >>> class Counter(nnx_graph.Module):
    ...     def __init__(self):
    ...         self.count = nnx_graph.Variable(jnp.array(0))
    >>> @split_inputs
    ... @jax.jit
    ... @merge_inputs
    ... def step(counter, x):
    ...     counter.count.value += 1
    ...     return x * 2
    >>> counter = Counter()
    >>> step(counter, jnp.ones(2)).tolist(), int(counter.count.value)
    ([2.0, 2.0], 1)
"""

from __future__ import annotations

import functools
import typing as tp

import jax

import nnx_graph
from nnx_graph.graphlib import is_graph_node

__all__ = ["merge_inputs", "split_inputs"]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])
_DEFAULT_TAG = "split_merge_inputs"


@jax.tree_util.register_pytree_node_class
class _Nodes:
    """Stands for graph node number ``index`` of the split arguments, carrying its
    GraphDef (static) and its State (references shared with an earlier node are
    resolved through that node's); GraphDef None: an input node returned as is."""

    def __init__(self, index: int, graphdef: tp.Any, state: tp.Any, tag: str) -> None:
        self.index, self.graphdef, self.state, self.tag = index, graphdef, state, tag

    def tree_flatten(self) -> tuple[tuple[tp.Any, ...], tuple[tp.Any, ...]]:
        return (self.state,), (self.index, self.graphdef, self.tag)

    @classmethod
    def tree_unflatten(cls, aux: tuple[tp.Any, ...], children: tuple[tp.Any, ...]) -> _Nodes:
        index, graphdef, tag = aux
        return cls(index, graphdef, children[0], tag)


@jax.tree_util.register_pytree_node_class
class _Merged:
    """The second half of what a ``merge_inputs`` function returns (after the
    arguments holding each node's updated State): the keyword arguments likewise, and
    the output (graph nodes in it that are inputs are referred to by index)."""

    def __init__(self, updates: tp.Any, output: tp.Any) -> None:
        self.updates, self.output = updates, output

    def tree_flatten(self) -> tuple[tuple[tp.Any, ...], None]:
        return (self.updates, self.output), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: tuple[tp.Any, ...]) -> _Merged:
        return cls(*children)


def _is_node(x: object) -> bool:
    return is_graph_node(x) or isinstance(x, nnx_graph.Variable)


def _is_marker(x: object) -> bool:
    return isinstance(x, _Nodes)


def _node_marker(index: int, split: tuple[tp.Any, ...], tag: str) -> _Nodes:
    """The marker of node ``index`` from its ``SplitContext.split`` (GraphDef, State)."""
    graphdef, state = split
    return _Nodes(index, graphdef, state, tag)


def _write(node: tp.Any, state: tp.Any) -> None:
    """Write a node's updated state (from ``SplitContext.split``) into it."""
    if isinstance(node, nnx_graph.Variable):
        if isinstance(state, nnx_graph.Variable):
            node.set_value(state.get_value())
        return
    nnx_graph.update(node, state)


@tp.overload
def split_inputs(f: F, *, ctxtag: str = _DEFAULT_TAG) -> F: ...
@tp.overload
def split_inputs(f: None = None, *, ctxtag: str = _DEFAULT_TAG) -> tp.Callable[[F], F]: ...
def split_inputs(f: F | None = None, *, ctxtag: str = _DEFAULT_TAG) -> F | tp.Callable[[F], F]:
    """Call ``f`` with the graph nodes of its arguments replaced by one pure pytree,
    then write the State that a :func:`merge_inputs` function inside hands back into
    those nodes. Shared nodes (the same Module in two arguments) stay shared.

    Arguments:
        f: usually a JAX transform of a :func:`merge_inputs` function; used as a
            decorator without arguments or with ``ctxtag``.
        ctxtag: pairs a ``split_inputs`` with its ``merge_inputs`` (nested pairs use
            different tags).

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph
        >>> from nnx_graph.transforms.general import merge_inputs, split_inputs
        >>> class Scale(nnx_graph.Module):
        ...     def __init__(self):
        ...         self.s = nnx_graph.Param(jnp.array(3.0))
        >>> model = Scale()
        >>> y = split_inputs(jax.lax.cond)(
        ...     True, merge_inputs(lambda m, x: m.s.value * x),
        ...     merge_inputs(lambda m, x: x), model, jnp.array(2.0))
        >>> float(y)
        6.0
    """
    if f is None:
        return lambda fn: split_inputs(fn, ctxtag=ctxtag)

    @functools.wraps(f)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        leaves, treedef = jax.tree.flatten((args, kwargs), is_leaf=_is_node)
        at = [i for i, leaf in enumerate(leaves) if _is_node(leaf)]
        nodes = [leaves[i] for i in at]
        if nodes:
            # one pure pytree per node (shared references only in the first that has
            # them), so a JAX transform's per-argument axes apply to each node
            with nnx_graph.split_context() as ctx:
                for k, i in enumerate(at):
                    leaves[i] = _node_marker(k, ctx.split(leaves[i]), ctxtag)
        pure_args, pure_kwargs = jax.tree.unflatten(treedef, leaves)
        result = f(*pure_args, **pure_kwargs)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], _Merged)):
            return result
        args_out, merged = result
        for marker in jax.tree.leaves((args_out, merged.updates), is_leaf=_is_marker):
            if _is_marker(marker) and marker.tag == ctxtag and marker.graphdef is not None:
                _write(nodes[marker.index], marker.state)
        out_leaves, out_def = jax.tree.flatten(merged.output, is_leaf=_is_marker)
        for i, leaf in enumerate(out_leaves):
            if isinstance(leaf, _Nodes) and leaf.graphdef is None and leaf.tag == ctxtag:
                out_leaves[i] = nodes[leaf.index]  # an input node returned as is
            elif isinstance(leaf, _Nodes) and leaf.tag == ctxtag:
                out_leaves[i] = nnx_graph.merge(leaf.graphdef, leaf.state)
        return jax.tree.unflatten(out_def, out_leaves)

    return tp.cast(F, wrapper)


@tp.overload
def merge_inputs(f: F, *, ctxtag: str = _DEFAULT_TAG) -> F: ...
@tp.overload
def merge_inputs(f: None = None, *, ctxtag: str = _DEFAULT_TAG) -> tp.Callable[[F], F]: ...
def merge_inputs(f: F | None = None, *, ctxtag: str = _DEFAULT_TAG) -> F | tp.Callable[[F], F]:
    """Inside a :func:`split_inputs` call: rebuild the graph nodes from the pure
    pytree, run ``f`` on them, and return their updated State with ``f``'s output.

    Called with arguments that hold no split nodes (outside ``split_inputs``), it
    simply calls ``f``.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph
        >>> from nnx_graph.transforms.general import merge_inputs, split_inputs
        >>> class Acc(nnx_graph.Module):
        ...     def __init__(self):
        ...         self.total = nnx_graph.Variable(jnp.array(0.0))
        >>> add = split_inputs(jax.jit(merge_inputs(lambda acc, x: acc.total.__iadd__(x))))
        >>> acc = Acc()
        >>> _ = add(acc, 2.0); _ = add(acc, 3.0)
        >>> float(acc.total.value)
        5.0
    """
    if f is None:
        return lambda fn: merge_inputs(fn, ctxtag=ctxtag)

    @functools.wraps(f)
    def wrapper(*pure_args: tp.Any, **pure_kwargs: tp.Any) -> tp.Any:
        leaves, treedef = jax.tree.flatten((pure_args, pure_kwargs), is_leaf=_is_marker)
        markers = {
            i: leaf
            for i, leaf in enumerate(leaves)
            if _is_marker(leaf) and leaf.tag == ctxtag and leaf.graphdef is not None
        }
        if not markers:
            return f(*pure_args, **pure_kwargs)
        nodes: dict[int, tp.Any] = {}
        with nnx_graph.merge_context() as mctx:
            for marker in sorted(markers.values(), key=lambda m: m.index):
                nodes[marker.index] = mctx.merge(marker.graphdef, marker.state)
        args, kwargs = jax.tree.unflatten(
            treedef,
            [nodes[leaves[i].index] if i in markers else leaf for i, leaf in enumerate(leaves)],
        )
        out = f(*args, **kwargs)
        with nnx_graph.split_context() as sctx:  # the updated state, node by node
            updated = {k: _node_marker(k, sctx.split(nodes[k]), ctxtag) for k in sorted(nodes)}
        # the arguments come back with each node's new state in its place (other
        # leaves as None), so the arguments' axes also fit these outputs
        args_out, kwargs_out = jax.tree.unflatten(
            treedef,
            [updated[leaves[i].index] if i in markers else None for i in range(len(leaves))],
        )
        out_leaves, out_def = jax.tree.flatten(out, is_leaf=_is_node)
        for i, leaf in enumerate(out_leaves):
            if not _is_node(leaf):
                continue
            index = next((k for k, node in nodes.items() if node is leaf), None)
            if index is not None:
                out_leaves[i] = _Nodes(index, None, None, ctxtag)
            else:  # a new node: carried with its own GraphDef and State
                out_leaves[i] = _Nodes(0, *nnx_graph.split(leaf), ctxtag)
        return args_out, _Merged(kwargs_out, jax.tree.unflatten(out_def, out_leaves))

    return tp.cast(F, wrapper)
