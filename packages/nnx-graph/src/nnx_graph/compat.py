"""Graph-mode spellings of the graph API and transforms (``flax.nnx.compat``).

In Flax 0.12, ``nnx.compat.X`` is ``nnx.X`` with ``graph=True`` (and
``graph_updates=True`` for transforms) bound, for code that must keep the
reference-sharing semantics whatever the global mode. nnx always keeps graph
semantics, so these are the same functions with the same keywords bound.

Example::

    >>> import jax.numpy as jnp, nnx_graph
    >>> from nnx_graph import compat
    >>> @compat.jit
    ... def total(box):
    ...     return box["w"].value.sum()
    >>> float(total(nnx_graph.Dict(w=nnx_graph.Param(jnp.ones(2)))))
    2.0
"""

from __future__ import annotations

import functools
import inspect
import typing as tp

import nnx_graph as _nnx

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])


def _bind(fn: F, *keywords: str) -> functools.partial[tp.Any]:
    """``fn`` with ``graph=True`` (and the other ``keywords``) bound, where it takes them."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - every bound function is Python
        params = {}  # type: ignore[assignment]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    bound = {k: True for k in ("graph", *keywords) if k in params or takes_any}
    return functools.partial(fn, **bound)


# graph API
split = _bind(_nnx.split)
state = _bind(_nnx.state)
graphdef = _bind(_nnx.graphdef)
clone = _bind(_nnx.clone)
flatten = _bind(_nnx.flatten)
iter_graph = _bind(_nnx.iter_graph)
recursive_map = _bind(_nnx.recursive_map)
iter_children = _bind(_nnx.iter_children)
iter_modules = _bind(_nnx.iter_modules)
view = _bind(_nnx.view)
view_info = _bind(_nnx.view_info)
get_abstract_model = _bind(_nnx.get_abstract_model)
# rngs
reseed = _bind(_nnx.reseed)
split_rngs = _bind(_nnx.split_rngs, "graph_updates")
fork_rngs = _bind(_nnx.fork_rngs, "graph_updates")
# transforms
cached_partial = _bind(_nnx.cached_partial, "graph_updates")
checkify = _bind(_nnx.checkify, "graph_updates")
cond = _bind(_nnx.cond, "graph_updates")
custom_vjp = _bind(_nnx.custom_vjp, "graph_updates")
eval_shape = _bind(_nnx.eval_shape, "graph_updates")
fori_loop = _bind(_nnx.fori_loop, "graph_updates")
grad = _bind(_nnx.grad, "graph_updates")
jit = _bind(_nnx.jit, "graph_updates")
jvp = _bind(_nnx.jvp, "graph_updates")
pmap = _bind(_nnx.pmap, "graph_updates")
remat = _bind(_nnx.remat, "graph_updates")
scan = _bind(_nnx.scan, "graph_updates")
shard_map = _bind(_nnx.shard_map, "graph_updates")
switch = _bind(_nnx.switch, "graph_updates")
value_and_grad = _bind(_nnx.value_and_grad, "graph_updates")
vjp = _bind(_nnx.vjp, "graph_updates")
vmap = _bind(_nnx.vmap, "graph_updates")
while_loop = _bind(_nnx.while_loop, "graph_updates")

__all__ = [
    "cached_partial",
    "checkify",
    "clone",
    "cond",
    "custom_vjp",
    "eval_shape",
    "flatten",
    "fori_loop",
    "fork_rngs",
    "get_abstract_model",
    "grad",
    "graphdef",
    "iter_children",
    "iter_graph",
    "iter_modules",
    "jit",
    "jvp",
    "pmap",
    "recursive_map",
    "remat",
    "reseed",
    "scan",
    "shard_map",
    "split",
    "split_rngs",
    "state",
    "switch",
    "value_and_grad",
    "view",
    "view_info",
    "vjp",
    "vmap",
    "while_loop",
]

# backup_keys joins as soon as nnx_graph exports it (Flax binds graph=True there too).
if hasattr(_nnx, "backup_keys"):
    backup_keys = _bind(_nnx.backup_keys)
    __all__.append("backup_keys")
