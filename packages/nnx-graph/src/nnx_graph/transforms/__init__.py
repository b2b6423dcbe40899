"""Transforms over object graphs, all built on the plumbing in ``_bridge.py``."""

from nnx_graph.transforms._autodiff import (
    DiffState,
    grad,
    jvp,
    remat,
    value_and_grad,
    vjp,
)
from nnx_graph.transforms._axes import Carry, StateAxes
from nnx_graph.transforms._control import cond, fori_loop, switch, while_loop
from nnx_graph.transforms._custom_vjp import custom_vjp
from nnx_graph.transforms._jit_api import JitWrapped, cached_partial, jit, jit_partial
from nnx_graph.transforms._jit_checks import TraceContextError
from nnx_graph.transforms._misc import StateSharding, checkify, eval_shape, make_jaxpr, shard_map
from nnx_graph.transforms._scan import scan
from nnx_graph.transforms._vmap import pmap, transform_metadata, vmap

__all__ = [
    "Carry",
    "DiffState",
    "JitWrapped",
    "StateAxes",
    "StateSharding",
    "TraceContextError",
    "cached_partial",
    "checkify",
    "cond",
    "custom_vjp",
    "eval_shape",
    "fori_loop",
    "grad",
    "jit",
    "jit_partial",
    "jvp",
    "make_jaxpr",
    "pmap",
    "remat",
    "scan",
    "shard_map",
    "switch",
    "transform_metadata",
    "value_and_grad",
    "vjp",
    "vmap",
    "while_loop",
]
