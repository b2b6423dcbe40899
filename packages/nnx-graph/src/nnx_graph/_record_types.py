"""The GraphDef records: small NamedTuples (immutable, hashable, compared by value).

Field 0 of every record is its tag. Internal code builds records with
``tuple.__new__(Record, fields)`` (fast, no checks); the public constructors of
:class:`NodeDef`, :class:`VariableDef` and :class:`RefDef` take Flax's parameters
instead (``NodeDef(type, index, outer_index, num_attributes, metadata)`` ...) and
build *headers* that ``GraphDef(nodes, attributes, num_leaves)`` assembles. See
``_records.py`` for the record layouts and the walker.
"""

from __future__ import annotations

import builtins
import typing as tp
from collections.abc import Mapping

from nnx_graph._hashing import Frozen
from nnx_graph._variables import Variable

__all__ = [
    "ARRAY_DEF",
    "ArrayDef",
    "ContainerDef",
    "NodeDef",
    "PytreeContainerDef",
    "Record",
    "RefDef",
    "StaticDef",
    "VariableDef",
]

NODE, VAR, REF, LEAF, STATIC, CONTAINER = range(6)
_T = tp.TypeVar("_T", bound=tuple[tp.Any, ...])


def _no_record_outer_index(record: tp.Any, method: str, fix: str) -> NotImplementedError:
    return NotImplementedError(
        f"{type(record).__name__}.{method}: records carry no outer index here (a GraphDef "
        f"keeps them). Fix: call {fix} on the GraphDef."
    )


def _restore(cls: type[_T], items: tuple[tp.Any, ...]) -> _T:
    """Unpickle a record (bypasses the public, Flax-style ``__new__``)."""
    return tuple.__new__(cls, items)


def _check_index(owner: str, name: str, value: tp.Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if type(value) is not int or value < 0:
        expected = "None or a node index" if optional else "a node index"
        raise ValueError(
            f"{owner}({name}=...): expected {expected} (an int >= 0); found {value!r}. "
            f"Fix: pass {name}= as a non-negative int"
            + (" (None for no value)." if optional else ".")
        )


def _check_type(owner: str, value: tp.Any, base: type | None = None) -> None:
    if not isinstance(value, builtins.type) or (base is not None and not issubclass(value, base)):
        what = f"a subclass of {base.__name__}" if base is not None else "a class"
        raise TypeError(
            f"{owner}(type=...): expected {what} (the node's type); found {value!r}. "
            f"Fix: pass the class itself, e.g. {owner}(type={base.__name__ if base else 'MyModule'}"
            ", ...)."
        )


def _node_metadata(typ: type, metadata: tp.Any) -> Frozen | None:
    """What a NodeDef stores for Flax's ``metadata`` argument: the attributes
    declared data/static (a Module), or a registered type's static data."""
    if isinstance(metadata, Frozen):
        return metadata
    from nnx_graph._graph_registry import GRAPH_REGISTRY, PYTREE_REGISTRY

    if typ in GRAPH_REGISTRY or typ in PYTREE_REGISTRY:
        return Frozen(metadata)
    if metadata is None or metadata is typ or (isinstance(metadata, Mapping) and not metadata):
        return None
    return Frozen(metadata)


class _NodeFields(tp.NamedTuple):
    tag: int
    type: type
    node_index: int
    explicit: Frozen | None
    attrs: tuple[tuple[tp.Any, Record], ...]


class NodeDef(_NodeFields):
    """A graph node: its type, node index, declared attribute kinds, attributes.

    ``NodeDef(type, index, outer_index, num_attributes, metadata)`` (Flax's
    parameters) makes a *header*: the node without its attributes, which
    :class:`GraphDef` ``(nodes, attributes, num_leaves)`` completes from the flat
    attribute list. ``index=None`` describes a plain container (tuple, list, dict,
    NamedTuple, registered pytree type). ``metadata``: the node type (or None) for a
    Module, the attributes declared data/static, or a registered type's static data.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph.graphlib import NodeDef
        >>> header = NodeDef(nnx.Dict, 0, None, 1, nnx.Dict)
        >>> header.index, header.num_attributes
        (0, 1)
        >>> isinstance(nnx.graphdef(nnx.Dict(w=jnp.ones(1))).nodes[0], NodeDef)
        True
    """

    __slots__ = ()

    # Internal code builds the full record with ``tuple.__new__(NodeDef, (NODE, type,
    # index, explicit, attrs))``; this public form takes Flax's parameters and builds
    # the 7-element header ``(NODE, type, index, explicit, (), num_attributes, outer)``.
    def __new__(
        cls,
        type: type,
        index: int | None,
        outer_index: int | None,
        num_attributes: int,
        metadata: tp.Any,
    ) -> NodeDef:
        _check_type("NodeDef", type)
        _check_index("NodeDef", "index", index, optional=True)
        _check_index("NodeDef", "outer_index", outer_index, optional=True)
        if builtins.type(num_attributes) is not int or num_attributes < 0:
            raise ValueError(
                f"NodeDef(num_attributes=...): expected the number of the node's entries "
                f"in GraphDef.attributes (an int >= 0); found {num_attributes!r}. Fix: "
                "pass num_attributes= as a non-negative int."
            )
        explicit = _node_metadata(type, metadata)
        items = (NODE, type, index, explicit, (), num_attributes, outer_index)
        return tuple.__new__(cls, items)

    def __init__(
        self,
        type: type,
        index: int | None,
        outer_index: int | None,
        num_attributes: int,
        metadata: tp.Any,
    ) -> None:
        """Flax's parameters (all the work is done by ``__new__``)."""

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (_restore, (builtins.type(self), tuple(self)))

    # Flax-style read-only views (``graphdef.nodes[i].index`` ...)
    @property
    def index(self) -> int:  # type: ignore[override]
        """The node index (Flax's name for ``node_index``); None for a container."""
        return self.node_index

    @property
    def outer_index(self) -> int | None:
        """The outer index a header was given (records from ``split`` carry none:
        the GraphDef keeps them)."""
        return tp.cast("int | None", tuple.__getitem__(self, 6)) if len(self) > 5 else None

    @property
    def num_attributes(self) -> int:
        """The number of attributes / entries."""
        if len(self) > 5:
            return tp.cast(int, tuple.__getitem__(self, 5))
        return len(self.attrs)

    @property
    def metadata(self) -> tp.Any:
        """The attributes declared data/static (a Module that declares some), a
        registered type's static data, else the node type (None for a container)."""
        if self.explicit is not None:
            return self.explicit.value
        return self.type if self.node_index is not None else None

    def with_no_outer_index(self) -> NodeDef:
        """This record (records carry no outer index)."""
        return self

    def with_same_outer_index(self) -> tp.NoReturn:
        """Not available per record (raises, naming the GraphDef-level method)."""
        raise _no_record_outer_index(self, "with_same_outer_index", "with_same_outer_index()")

    def with_matching_outer_index(self, other: tp.Any) -> tp.NoReturn:
        """Not available per record (raises, naming the GraphDef-level method)."""
        raise _no_record_outer_index(
            self, "with_matching_outer_index", "with_matching_outer_index(other)"
        )

    def __repr__(self) -> str:
        return (
            f"NodeDef(type={self.type.__name__}, index={self.node_index}, outer_index="
            f"{self.outer_index}, num_attributes={self.num_attributes}, "
            f"metadata={_short_repr(self.metadata)})"
        )


def _short_repr(value: tp.Any) -> str:
    return value.__name__ if isinstance(value, builtins.type) else repr(value)


class _VariableFields(tp.NamedTuple):
    tag: int
    type: type
    node_index: int
    metadata: Frozen


class VariableDef(_VariableFields):
    """A Variable: its type, node index and metadata; its value is the next leaf.

    ``VariableDef(type, index, outer_index, metadata, array_refdef)`` takes Flax's
    parameters: ``metadata`` a mapping (the Variable's metadata), ``array_refdef``
    None (Variables here hold arrays, not array references).

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph.graphlib import VariableDef
        >>> var = nnx.Param(jnp.ones(1))
        >>> vdef = VariableDef(nnx.Param, 0, None, var.get_metadata(), None)
        >>> vdef == nnx.graphdef(var).nodes[0]
        True
    """

    __slots__ = ()

    # Internal code builds records with ``tuple.__new__(VariableDef, (VAR, type,
    # index, metadata))``; a header given an outer index carries it as a 5th element.
    def __new__(
        cls,
        type: type,
        index: int,
        outer_index: int | None,
        metadata: tp.Any,
        array_refdef: tp.Any,
    ) -> VariableDef:
        _check_type("VariableDef", type, Variable)
        _check_index("VariableDef", "index", index, optional=False)
        _check_index("VariableDef", "outer_index", outer_index, optional=True)
        if array_refdef is not None:
            raise ValueError(
                f"VariableDef(array_refdef=...): expected None (Variables here hold arrays, "
                f"not array references); found {array_refdef!r}. Fix: pass "
                "array_refdef=None."
            )
        if not isinstance(metadata, Frozen):
            if metadata is None:
                metadata = {}
            if not isinstance(metadata, Mapping):
                raise TypeError(
                    f"VariableDef(metadata=...): expected a mapping of metadata names to "
                    f"values; found {builtins.type(metadata).__name__}. Fix: pass e.g. "
                    "var.get_metadata() or {}."
                )
            metadata = Frozen(dict(metadata))
        items: tuple[tp.Any, ...] = (VAR, type, index, metadata)
        if outer_index is not None:
            items = (*items, outer_index)
        return tuple.__new__(cls, items)

    def __init__(
        self,
        type: type,
        index: int,
        outer_index: int | None,
        metadata: tp.Any,
        array_refdef: tp.Any,
    ) -> None:
        """Flax's parameters (all the work is done by ``__new__``)."""

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (_restore, (builtins.type(self), tuple(self)))

    @property
    def index(self) -> int:  # type: ignore[override]
        """The node index (Flax's name for ``node_index``)."""
        return self.node_index

    @property
    def outer_index(self) -> int | None:
        """The outer index a header was given (records from ``split`` carry none:
        the GraphDef keeps them)."""
        return tp.cast("int | None", tuple.__getitem__(self, 4)) if len(self) > 4 else None

    @property
    def array_refdef(self) -> None:
        """Always None: Variables here hold arrays, not array references."""
        return None

    def with_no_outer_index(self) -> VariableDef:
        """This record (records carry no outer index)."""
        return self

    def with_same_outer_index(self) -> tp.NoReturn:
        """Not available per record (raises, naming the GraphDef-level method)."""
        raise _no_record_outer_index(self, "with_same_outer_index", "with_same_outer_index()")

    def with_matching_outer_index(self, other: tp.Any) -> tp.NoReturn:
        """Not available per record (raises, naming the GraphDef-level method)."""
        raise _no_record_outer_index(
            self, "with_matching_outer_index", "with_matching_outer_index(other)"
        )

    def __repr__(self) -> str:
        return (
            f"VariableDef(type={self.type.__name__}, index={self.node_index}, "
            f"outer_index={self.outer_index}, metadata={self.metadata!r})"
        )


class _RefFields(tp.NamedTuple):
    tag: int
    node_index: int


class RefDef(_RefFields):
    """A second (or later) reference to the node or Variable with this index.

    ``RefDef(index)`` (Flax's ``NodeRef(index)``).

    Example::

        >>> from nnx_graph.graphlib import NodeRef
        >>> NodeRef(0).index
        0
    """

    __slots__ = ()

    def __new__(cls, index: int) -> RefDef:
        _check_index("RefDef", "index", index, optional=False)
        return tuple.__new__(cls, (REF, index))

    def __init__(self, index: int) -> None:
        """Flax's parameters (all the work is done by ``__new__``)."""

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (_restore, (builtins.type(self), tuple(self)))

    @property
    def index(self) -> int:  # type: ignore[override]
        """The referenced node index (Flax's ``NodeRef.index``)."""
        return self.node_index

    def __repr__(self) -> str:
        return f"RefDef(index={self.node_index})"


class ArrayDef(tp.NamedTuple):
    """An array stored directly on a node; its value is the next leaf."""

    tag: int


class StaticDef(tp.NamedTuple):
    """A static value, wrapped so that it hashes."""

    tag: int
    value: Frozen


class ContainerDef(tp.NamedTuple):
    """A plain tuple/list/dict/NamedTuple holding data: its type, keys, children."""

    tag: int
    type: type
    keys: tuple[tp.Any, ...]
    children: tuple[Record, ...]


class PytreeContainerDef(ContainerDef):
    """A ContainerDef of a type registered with ``register_pytree_node_type``; a
    fifth element holds the type's static data (``aux``)."""

    __slots__ = ()

    @property
    def aux(self) -> Frozen:
        """The static data given back to the type's ``unflatten``."""
        return tp.cast(Frozen, tuple.__getitem__(self, 4))

    def __reduce__(self) -> tuple[tp.Any, ...]:
        return (_restore, (type(self), tuple(self)))

    def __repr__(self) -> str:
        return f"PytreeContainerDef(type={self.type!r}, keys={self.keys!r}, aux={self.aux!r})"


Record = NodeDef | VariableDef | RefDef | ArrayDef | StaticDef | ContainerDef
ARRAY_DEF = ArrayDef(LEAF)
