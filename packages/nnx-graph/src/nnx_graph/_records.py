"""GraphDef: the static structure of an object graph, as typed records, and the
one walker every consumer reads it with.

Records (small NamedTuples: immutable, hashable, compared by value, so a GraphDef
can key a compilation cache). Field 0 is the record's tag:

* :class:`NodeDef` ``(NODE, type, index, explicit, attrs)``: a graph node (Pytree,
  List, Dict) with identity; ``attrs`` is a tuple of ``(key, record)`` in traversal
  order; ``explicit`` the attributes declared data/static (or None).
* :class:`VariableDef` ``(VAR, type, index, metadata)``: a Variable; its value is
  the next leaf.
* :class:`RefDef` ``(REF, index)``: a node or Variable already seen (shared
  reference or cycle).
* :class:`ArrayDef` ``(LEAF,)``: a raw array (or explicitly-data value) stored
  directly on a node; its value is the next leaf.
* :class:`StaticDef` ``(STATIC, value)``: a static value (a ``Frozen``).
* :class:`ContainerDef` ``(CONTAINER, type, keys, children)``: a plain tuple /
  list / dict / NamedTuple holding data (no identity).

Read records with :func:`walk`, never by recursion: it is iterative, so graphs
nested thousands of levels deep work. The builder (:func:`build`) runs a plan the
walker compiles once per GraphDef.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator

import jax

from nnx_graph._hashing import Frozen
from nnx_graph._variables import value_repr

__all__ = [
    "ArrayDef",
    "ContainerDef",
    "GraphDef",
    "NodeDef",
    "PytreeContainerDef",
    "RefDef",
    "StaticDef",
    "VariableDef",
    "Visit",
    "walk",
]

NODE, VAR, REF, LEAF, STATIC, CONTAINER = range(6)

M = tp.TypeVar("M")
Path = tuple[tp.Any, ...]


def _no_record_outer_index(record: tp.Any, method: str, fix: str) -> NotImplementedError:
    return NotImplementedError(
        f"{type(record).__name__}.{method}: records carry no outer index here (a GraphDef "
        f"keeps them). Fix: call {fix} on the GraphDef."
    )


class NodeDef(tp.NamedTuple):
    """A graph node: its type, node index, declared attribute kinds, attributes."""

    tag: int
    type: type
    node_index: int
    explicit: Frozen | None
    attrs: tuple[tuple[tp.Any, Record], ...]

    # Flax-style read-only views (``graphdef.nodes[i].index`` ...)
    @property
    def index(self) -> int:  # type: ignore[override]
        """The node index (Flax's name for ``node_index``)."""
        return self.node_index

    @property
    def outer_index(self) -> None:
        """Always None: outer indices are kept on the GraphDef, not per record."""
        return None

    @property
    def num_attributes(self) -> int:
        """The number of attributes / entries."""
        return len(self.attrs)

    @property
    def metadata(self) -> tp.Any:
        """The node type (what Flax's NodeDef metadata holds for a Module)."""
        return self.type

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


class VariableDef(tp.NamedTuple):
    """A Variable: its type, node index and metadata; its value is the next leaf."""

    tag: int
    type: type
    node_index: int
    metadata: Frozen

    @property
    def index(self) -> int:  # type: ignore[override]
        """The node index (Flax's name for ``node_index``)."""
        return self.node_index

    @property
    def outer_index(self) -> None:
        """Always None: outer indices are kept on the GraphDef, not per record."""
        return None

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


class RefDef(tp.NamedTuple):
    """A second (or later) reference to the node or Variable with this index."""

    tag: int
    node_index: int

    @property
    def index(self) -> int:  # type: ignore[override]
        """The referenced node index (Flax's ``NodeRef.index``)."""
        return self.node_index


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

    def __repr__(self) -> str:
        return f"PytreeContainerDef(type={self.type!r}, keys={self.keys!r}, aux={self.aux!r})"


Record = NodeDef | VariableDef | RefDef | ArrayDef | StaticDef | ContainerDef
ARRAY_DEF = ArrayDef(LEAF)
_NODE_RECORDS = (NodeDef, VariableDef, RefDef)


class Visit(tp.NamedTuple):
    """One step of :func:`walk`.

    ``path``: the keys from the root (``()`` when ``paths=False``). ``owner``: the
    index of the graph node whose attribute holds the value (-1 at the top), and
    ``attr``/``sub`` that attribute and the keys inside plain containers below it.
    ``closing``: the visit after a NodeDef's or ContainerDef's children."""

    record: Record
    path: Path
    owner: int
    attr: tp.Any
    sub: Path
    closing: bool


def walk(
    graphdef: GraphDef[tp.Any] | Record, *, closing: bool = False, paths: bool = True
) -> Iterator[Visit]:
    """Every record of a GraphDef in traversal (leaf) order, iteratively.

    With ``closing=True`` a NodeDef/ContainerDef is visited a second time after
    its children. ``paths=False`` skips building the path tuples.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._graphdef import VAR, walk
        >>> graphdef = nnx.graphdef(nnx.Dict(w=nnx.Param(jnp.ones(2))))
        >>> [v.path for v in walk(graphdef) if v.record.tag == VAR]
        [('w',)]
    """
    root = graphdef._record if isinstance(graphdef, GraphDef) else graphdef
    stack: list[tuple[tp.Any, ...]] = [(root, (), -1, None, (), False)]
    push = stack.append
    record: tp.Any  # positional reads: this loop is on the hot path of every consumer
    while stack:
        item = stack.pop()
        record, path, owner, attr, sub, close = item
        yield Visit(*item)
        if close:
            continue
        tag = record[0]
        if tag == NODE:
            if closing:
                push((record, path, owner, attr, sub, True))
            i = record[2]
            for key, child in reversed(record[4]):
                push((child, (*path, key) if paths else (), i, key, (), False))
        elif tag == CONTAINER:
            if closing:
                push((record, path, owner, attr, sub, True))
            for key, child in zip(reversed(record[2]), reversed(record[3])):
                push((child, (*path, key) if paths else (), owner, attr, (*sub, key), False))


def _deep_equal(a: tp.Any, b: tp.Any) -> bool:
    """``a == b`` for nested tuples, without recursion (for very deep GraphDefs)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, tuple) and isinstance(y, tuple) and type(x) is type(y):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif x != y:
            return False
    return True


class GraphDef(tp.Generic[M]):
    """The static structure of an object graph: node types, attribute names, static
    values, Variable types and metadata, and where references are shared.

    Immutable and hashable; equal for equal structures. Obtained from
    :func:`nnx.split` / :func:`nnx.graphdef`; ``GraphDef[Model]`` in annotations.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones(2))
        >>> g1, _ = nnx.split(M()); g2, _ = nnx.split(M())
        >>> g1 == g2, hash(g1) == hash(g2)
        (True, True)
    """

    __slots__ = (
        "_record",
        "_hash",
        "_leaf_paths",
        "_plan",
        "_external",
        "_outer",
        "num_leaves",
        "num_nodes",
    )

    def __init__(
        self,
        record: Record,
        num_leaves: int,
        num_nodes: int,
        leaf_paths: tuple[Path, ...] | None = None,
    ) -> None:
        self._record = record
        self._hash = hash(record)
        self._leaf_paths = leaf_paths
        self._plan: list[tuple[tp.Any, ...]] | None = None
        # node indices referenced but defined by an earlier split of the same
        # split context (computed with the plan)
        self._external: tuple[int, ...] = ()
        # node index -> index in the outer graph (inner splits of an update context)
        self._outer: dict[int, int] | None = None
        self.num_leaves = num_leaves
        self.num_nodes = num_nodes

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraphDef) or self._hash != other._hash:
            return False
        try:
            return bool(self._record == other._record)
        except RecursionError:
            return _deep_equal(self._record, other._record)

    @property
    def record(self) -> Record:
        """The root record."""
        return self._record

    @property
    def nodes(self) -> tuple[NodeDef | VariableDef | RefDef, ...]:
        """The node, Variable and reference records, in traversal order."""
        return tuple(
            v.record for v in walk(self, paths=False) if isinstance(v.record, _NODE_RECORDS)
        )

    @property
    def attributes(self) -> tuple[tuple[tp.Any, Record], ...]:
        """``(key, record)`` for every attribute / entry of every node, in order."""
        return tuple(
            (v.attr, v.record)
            for v in walk(self, paths=False)
            if v.owner >= 0 and not v.sub and v.attr is not None
        )

    @property
    def leaf_paths(self) -> tuple[Path, ...]:
        """The path of every leaf, in leaf order."""
        if self._leaf_paths is None:
            self._leaf_paths = tuple(
                v.path for v in walk(self._record) if isinstance(v.record, (VariableDef, ArrayDef))
            )
        return self._leaf_paths

    @property
    def type(self) -> type[M]:
        """The type of the root node."""
        return tp.cast("type[M]", tp.cast(tp.Any, self._record).type)

    def merge(self, state: tp.Any, /, *states: tp.Any) -> M:
        """``nnx.merge(self, state, *states)``."""
        return tp.cast(M, _graph_api().merge(self, state, *states))

    def apply(self, state: tp.Any, *states: tp.Any, graph: bool | None = None) -> tp.Any:
        """Compatibility functional call: ``graphdef.apply(state)(x)`` returns
        ``(out, (graphdef, state))``. ``graph=False`` splits the result in tree mode
        (shared references raise)."""
        api = _graph_api()
        return api.call_with_graph((self, api.merge_state(state, *states)), graph)

    def _with_outer(self, outer: dict[int, int] | None) -> GraphDef[M]:
        copy: GraphDef[M] = GraphDef(
            self._record, self.num_leaves, self.num_nodes, self._leaf_paths
        )
        copy._outer = outer
        return copy

    def _defined(self) -> list[int]:
        return [r.node_index for r in self.nodes if not isinstance(r, RefDef)]

    def with_same_outer_index(self) -> GraphDef[M]:
        """A copy whose nodes' outer indices are their own indices (used when an
        inner graph mirrors the outer one)."""
        return self._with_outer({i: i for i in self._defined()})

    def with_no_outer_index(self) -> GraphDef[M]:
        """A copy without outer indices."""
        return self._with_outer(None)

    def with_matching_outer_index(self, other: GraphDef[tp.Any]) -> GraphDef[M]:
        """A copy taking ``other``'s outer indices, node by node in traversal order."""
        theirs = other._outer or {}
        outer = {
            mine: theirs[their]
            for mine, their in zip(self._defined(), other._defined())
            if their in theirs
        }
        return self._with_outer(outer)

    def __repr__(self) -> str:
        return graphdef_repr(self)

    def __getstate__(self) -> tuple[tp.Any, ...]:
        return (self._record, self.num_leaves, self.num_nodes)

    def __setstate__(self, state: tuple[tp.Any, ...]) -> None:
        self._record, self.num_leaves, self.num_nodes = state
        self._hash = hash(self._record)
        self._leaf_paths = None
        self._plan = None
        self._external = ()
        self._outer = None


def _graph_api() -> tp.Any:
    # GraphDef.merge/apply call the graph API, which is built on this module
    from nnx_graph import _graph_tools

    return _graph_tools


def graphdef_repr(graphdef: GraphDef[tp.Any], limit: int = 400) -> str:
    """``GraphDef(Counter(count=BatchStat, w=Param))``, cut at ``limit`` characters."""
    parts: list[str] = []
    size = 0
    first: list[bool] = []  # per open node/container: no entry written yet
    for visit in walk(graphdef, closing=True, paths=False):
        record = visit.record
        if visit.closing:
            first.pop()
            parts.append(")")
            continue
        prefix = ""
        if first:
            key = visit.sub[-1] if visit.sub else visit.attr
            prefix = f"{'' if first[-1] else ', '}{key}="
            first[-1] = False
        if isinstance(record, (NodeDef, ContainerDef)):
            text = f"{record.type.__name__}("
            first.append(True)
        elif isinstance(record, VariableDef):
            text = record.type.__name__
        elif isinstance(record, RefDef):
            text = f"<ref {record.node_index}>"
        elif isinstance(record, ArrayDef):
            text = "Array"
        else:
            text = value_repr(record.value.value)
        parts.append(prefix + text)
        size += len(parts[-1])
        if size > limit:
            break
    text = "".join(parts)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"GraphDef({text})"


# A GraphDef is static structure: as a pytree it has no leaves, so `(graphdef, state)`
# from nnx.split passes straight through jax.jit / jax.tree functions.
jax.tree_util.register_static(GraphDef)
