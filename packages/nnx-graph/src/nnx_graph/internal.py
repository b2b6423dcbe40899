"""The supported internal layer of nnx-graph, for the sibling packages (nnx-nn,
nnx-optim, nnx-viz) and for libraries building on nnx.

Siblings import only ``nnx_graph`` (the public API) or this module, never a private
``nnx_graph._*`` module. Everything here is typed, documented and kept stable
across minor versions; user code should prefer the public API.

* Paths: :func:`format_path` renders ``('blocks', 0, 'w')`` as ``model.blocks[0].w``.
* Graph nodes: :func:`is_graph_node`, :func:`is_data`, :func:`has_data`.
* Variables: :func:`variable_from_parts` builds a Variable from its type, value and
  metadata without running ``__init__``; :func:`leaked_tracer` tells whether a
  value is a tracer of a finished trace.
* Text: :func:`value_repr` (one-line, arrays summarised), :func:`variable_repr`,
  :func:`node_repr` (the multi-line repr of Modules).
* Traversal: :func:`walk` over a :class:`GraphDef`'s typed records
  (:class:`NodeDef`, :class:`VariableDef`, :class:`RefDef`, :class:`ArrayDef`,
  :class:`StaticDef`, :class:`ContainerDef`), and :func:`fingerprint` to tell
  whether a traversal is still valid.
* Errors: the base classes nnx raises (:class:`GraphStructureError` is a
  ``ValueError``, :class:`FilterError` a ``TypeError``, :class:`RngStreamError` a
  ``KeyError``/``AttributeError``, :class:`TraceLeakError` a ``RuntimeError``).

Example::

    >>> import jax.numpy as jnp, nnx_graph as nnx
    >>> from nnx_graph import internal
    >>> internal.format_path(("blocks", 0, "w"))
    'model.blocks[0].w'
    >>> p = internal.variable_from_parts(nnx.Param, jnp.ones(2), {"tag": "a"})
    >>> type(p).__name__, p.tag
    ('Param', 'a')
"""

from __future__ import annotations

from nnx_graph._errors import (
    FilterError,
    GraphStructureError,
    RngStreamError,
    TraceLeakError,
    format_path,
)
from nnx_graph._graphdef import (
    ArrayDef,
    ContainerDef,
    Fingerprint,
    GraphDef,
    NodeDef,
    RefDef,
    StaticDef,
    VariableDef,
    Visit,
    fingerprint,
    node_repr,
    walk,
)
from nnx_graph._pytree import has_data, is_data, is_graph_node
from nnx_graph._variables import (
    leaked_tracer,
    new_variable,
    shown_metadata,
    value_repr,
    variable_repr,
)

__all__ = [
    "ArrayDef",
    "ContainerDef",
    "FilterError",
    "Fingerprint",
    "GraphDef",
    "GraphStructureError",
    "NodeDef",
    "RefDef",
    "RngStreamError",
    "StaticDef",
    "TraceLeakError",
    "VariableDef",
    "Visit",
    "fingerprint",
    "format_path",
    "has_data",
    "is_data",
    "is_graph_node",
    "leaked_tracer",
    "node_repr",
    "shown_metadata",
    "value_repr",
    "variable_from_parts",
    "variable_repr",
    "walk",
]

variable_from_parts = new_variable
"""``variable_from_parts(type, value, metadata)``: a Variable of ``type`` holding
``value`` with ``metadata`` (the dict is used as is), without calling ``__init__``
(no value unwrapping, no eager sharding)."""
