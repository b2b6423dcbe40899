"""nnx-graph: Variables, Modules, Rngs, the object-graph API, filters, State,
transforms and sharding for the nnx neural-network library.

Example::

    >>> import jax.numpy as jnp, nnx_graph as nnx
    >>> class Counter(nnx.Module):
    ...     def __init__(self):
    ...         self.count = nnx.Variable(jnp.array(0))
    ...     def __call__(self):
    ...         self.count += 1
    >>> c = Counter(); c(); int(c.count.value)
    1
"""

from nnx_graph.__about__ import __version__
from nnx_graph._errors import FilterError, GraphStructureError, RngStreamError, TraceLeakError
from nnx_graph._filters import All, Any, Everything, Not, Nothing, OfType, PathContains, WithTag
from nnx_graph._graph import (
    GraphState,
    NodeStates,
    PureState,
    UpdateContext,
    as_pure,
    call,
    clone,
    current_update_context,
    find_duplicates,
    flatten,
    from_tree,
    graphdef,
    iter_graph,
    map,
    merge,
    pop,
    prefix,
    pure,
    recursive_map,
    set_graph_mode,
    set_graph_updates,
    set_metadata,
    split,
    state,
    to_tree,
    unflatten,
    unpack,
    update,
    update_context,
    variables,
    vars_as,
    with_vars,
)
from nnx_graph._graphdef import GraphDef
from nnx_graph._module import (
    M,
    Module,
    capture,
    iter_children,
    iter_modules,
    view,
    view_info,
    with_attributes,
)
from nnx_graph._pytree import (
    Data,
    Dict,
    List,
    Object,
    Pytree,
    Static,
    check_pytree,
    data,
    dataclass,
    has_data,
    is_data,
    register_data_type,
    static,
)
from nnx_graph._rngs import (
    RngCount,
    RngKey,
    RngState,
    RngStream,
    Rngs,
    fork_rngs,
    reseed,
    restore_rngs,
    split_rngs,
    with_rngs,
)
from nnx_graph._state import (
    FlatState,
    State,
    filter_state,
    from_flat_state,
    map_state,
    merge_state,
    replace_by_pure_dict,
    restore_int_paths,
    split_state,
    to_flat_state,
    to_pure_dict,
)
from nnx_graph.transforms import (
    Carry,
    DiffState,
    JitWrapped,
    StateAxes,
    StateSharding,
    cached_partial,
    checkify,
    cond,
    custom_vjp,
    eval_shape,
    fori_loop,
    grad,
    jit,
    jit_partial,
    jvp,
    make_jaxpr,
    pmap,
    remat,
    scan,
    shard_map,
    switch,
    transform_metadata,
    value_and_grad,
    vjp,
    vmap,
    while_loop,
)
from nnx_graph._variables import (
    BatchStat,
    Cache,
    Intermediate,
    Param,
    Perturbation,
    Variable,
    VariableMetadata,
    VariableState,
    register_variable_name,
    var_defaults,
    variable_name_from_type,
    variable_type_from_name,
    with_metadata,
)

__all__ = [
    "All", "Any", "BatchStat", "Cache", "Data", "Dict", "Everything", "FilterError",
    "FlatState", "GraphDef", "GraphState", "GraphStructureError", "Intermediate", "List", "M",
    "Module", "NodeStates", "Not", "Nothing", "Object", "OfType", "Param", "PathContains",
    "Perturbation", "PureState", "Pytree", "RngCount", "RngKey", "RngState", "RngStream",
    "RngStreamError", "Rngs", "State", "Static", "TraceLeakError", "UpdateContext", "Variable",
    "VariableMetadata", "VariableState", "WithTag", "__version__", "as_pure", "call",
    "capture", "check_pytree", "clone", "current_update_context", "data", "dataclass",
    "filter_state", "find_duplicates", "flatten", "fork_rngs", "from_flat_state",
    "from_tree", "graphdef", "has_data", "is_data", "iter_children", "iter_graph",
    "iter_modules", "map", "map_state", "merge", "merge_state", "pop", "prefix", "pure",
    "recursive_map", "register_data_type", "register_variable_name", "replace_by_pure_dict",
    "reseed", "restore_int_paths", "restore_rngs", "set_graph_mode", "set_graph_updates",
    "set_metadata", "split", "split_rngs", "split_state", "state", "static", "to_flat_state",
    "to_pure_dict", "to_tree", "unflatten", "unpack", "update", "update_context",
    "var_defaults", "variable_name_from_type", "variable_type_from_name", "variables",
    "vars_as", "view", "view_info", "with_attributes", "with_metadata", "with_rngs",
    "with_vars",
    "Carry", "DiffState", "JitWrapped", "StateAxes", "StateSharding", "cached_partial",
    "checkify", "cond", "custom_vjp", "eval_shape", "fori_loop", "grad", "jit", "jit_partial",
    "jvp", "make_jaxpr", "pmap", "remat", "scan", "shard_map", "switch", "transform_metadata",
    "value_and_grad", "vjp", "vmap", "while_loop",
]
