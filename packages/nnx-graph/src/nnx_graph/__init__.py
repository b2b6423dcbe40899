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

from nnx_graph import _graph, _module, _pytree, _rngs, _sharding, _state, _variables, transforms
from nnx_graph.__about__ import __version__
from nnx_graph._capture import capture
from nnx_graph._errors import FilterError, GraphStructureError, RngStreamError, TraceLeakError
from nnx_graph._filters import All, Any, Everything, Not, Nothing, OfType, PathContains, WithTag
from nnx_graph._graph import *  # noqa: F403
from nnx_graph._graph_tools import (
    MergeContext,
    NodeStates,
    SplitContext,
    UpdateContext,
    as_pure,
    call,
    current_update_context,
    from_tree,
    merge_context,
    prefix,
    pure,
    set_graph_mode,
    set_graph_updates,
    split_context,
    to_tree,
    unpack,
    update_context,
    vars_as,
    with_vars,
)
from nnx_graph._graphdef import GraphDef
from nnx_graph._module import *  # noqa: F403
from nnx_graph._pytree import *  # noqa: F403
from nnx_graph._rngs import *  # noqa: F403
from nnx_graph._sharding import *  # noqa: F403
from nnx_graph._state import *  # noqa: F403
from nnx_graph._variable_names import (
    register_variable_name,
    var_defaults,
    variable_name_from_type,
    variable_type_from_name,
)
from nnx_graph._variables import *  # noqa: F403
from nnx_graph.transforms import *  # noqa: F403

__all__ = [
    "All",
    "Any",
    "Everything",
    "FilterError",
    "GraphDef",
    "GraphStructureError",
    "MergeContext",
    "NodeStates",
    "Not",
    "Nothing",
    "OfType",
    "PathContains",
    "RngStreamError",
    "SplitContext",
    "TraceLeakError",
    "UpdateContext",
    "WithTag",
    "__version__",
    "as_pure",
    "call",
    "current_update_context",
    "from_tree",
    "merge_context",
    "prefix",
    "pure",
    "register_variable_name",
    "set_graph_mode",
    "set_graph_updates",
    "split_context",
    "to_tree",
    "unpack",
    "update_context",
    "var_defaults",
    "variable_name_from_type",
    "variable_type_from_name",
    "vars_as",
    "with_vars",
]
__all__ += _graph.__all__
__all__ += _pytree.__all__
__all__ += _sharding.__all__
__all__ += _variables.__all__
__all__ += _module.__all__
__all__ += ["capture"]
__all__ += _rngs.__all__
__all__ += _state.__all__
__all__ += transforms.__all__
