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

The records live in ``_record_types.py``. ``GraphDef(nodes, attributes,
num_leaves)`` (Flax's parameters) assembles the tree from Flax's flat view
(``_flat_graphdef.py``); ``split`` uses the fast ``GraphDef._create``.

Read records with :func:`walk`, never by recursion: it is iterative, so graphs
nested thousands of levels deep work. The builder (:func:`build`) runs a plan the
walker compiles once per GraphDef.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator

import jax

from nnx_graph._record_types import (
    ARRAY_DEF,
    CONTAINER,
    LEAF,
    NODE,
    REF,
    STATIC,
    VAR,
    ArrayDef,
    ContainerDef,
    NodeDef,
    PytreeContainerDef,
    Record,
    RefDef,
    StaticDef,
    VariableDef,
)
from nnx_graph._variables import value_repr

__all__ = [
    "ARRAY_DEF",
    "CONTAINER",
    "LEAF",
    "NODE",
    "REF",
    "STATIC",
    "VAR",
    "ArrayDef",
    "ContainerDef",
    "GraphDef",
    "NodeDef",
    "PytreeContainerDef",
    "Record",
    "RefDef",
    "StaticDef",
    "VariableDef",
    "Visit",
    "walk",
]

M = tp.TypeVar("M")
Path = tuple[tp.Any, ...]


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

    ``GraphDef(nodes, attributes, num_leaves)`` (Flax's parameters) assembles one
    from Flax's flat view (:attr:`nodes`, :attr:`attributes`)::

        >>> nnx.GraphDef(g1.nodes, g1.attributes, g1.num_leaves) == g1
        True
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
    _record: Record
    _hash: int
    _leaf_paths: tuple[Path, ...] | None
    _plan: list[tuple[tp.Any, ...]] | None
    _external: tuple[int, ...]
    _outer: dict[int, int] | None
    num_leaves: int
    num_nodes: int

    def __init__(
        self,
        nodes: tp.Sequence[tp.Any],
        attributes: tp.Sequence[tuple[tp.Any, tp.Any]],
        num_leaves: int,
    ) -> None:
        # Flax's parameters: a flat description, assembled into the record tree
        # (internal code uses the fast GraphDef._create instead)
        from nnx_graph._flat_graphdef import from_flat

        record, num_nodes, outer = from_flat(nodes, attributes, num_leaves)
        self._setup(record, num_leaves, num_nodes, None)
        self._outer = outer

    @classmethod
    def _create(
        cls,
        record: Record,
        num_leaves: int,
        num_nodes: int,
        leaf_paths: tuple[Path, ...] | None = None,
    ) -> GraphDef[tp.Any]:
        """The GraphDef of a record tree (what ``split`` builds; no checks)."""
        self: GraphDef[tp.Any] = object.__new__(cls)
        self._setup(record, num_leaves, num_nodes, leaf_paths)
        return self

    def _setup(
        self,
        record: Record,
        num_leaves: int,
        num_nodes: int,
        leaf_paths: tuple[Path, ...] | None,
    ) -> None:
        self._record = record
        self._hash = hash(record)
        self._leaf_paths = leaf_paths
        self._plan = None
        # node indices referenced but defined by an earlier split of the same
        # split context (computed with the plan)
        self._external = ()
        # node index -> index in the outer graph (inner splits of an update context)
        self._outer = None
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
        """Flax's flat view: a record per graph node, Variable, reference and plain
        container, in traversal order (a container is a ``NodeDef`` header with
        ``index=None``). ``GraphDef(g.nodes, g.attributes, g.num_leaves) == g``."""
        from nnx_graph._flat_graphdef import flat_view

        return flat_view(self)[0]

    @property
    def attributes(self) -> tuple[tuple[tp.Any, Record], ...]:
        """Flax's flat view: ``(key, record)`` for every attribute / entry of every
        node and container, in traversal order (the record is the child's entry in
        :attr:`nodes`, a ``StaticDef`` or an ``ArrayDef``; a static root is one
        entry with key None)."""
        from nnx_graph._flat_graphdef import flat_view

        return flat_view(self)[1]

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
        copy = self._create(self._record, self.num_leaves, self.num_nodes, self._leaf_paths)
        copy._outer = outer
        return copy

    def _defined(self) -> list[int]:
        records: list[tp.Any] = [v.record for v in walk(self, paths=False)]
        return [r[2] for r in records if r[0] == NODE or r[0] == VAR]

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
