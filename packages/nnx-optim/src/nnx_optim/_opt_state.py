"""Optimizer state as Variables, and the conversions between optax's state trees and
the containers the graph API traverses.

optax returns its state as a pytree of namedtuples, tuples, dicts and, for every
parameter-shaped entry (Adam's ``mu``/``nu``, momentum traces, ...), a tree with the
same container type as the parameters it was built from.  Here the parameters are an
``nnx_graph.State``.  The graph API traverses Variables, graph nodes and plain
tuples/lists/dicts, but treats any other pytree (a ``State`` included) as opaque, so
the optimizer stores its state in a *graph form*:

* every array leaf becomes an ``OptArray`` and every Variable leaf an
  ``OptVariable`` (keeping its metadata, e.g. sharding), so the state flows
  through transforms and checkpoints like any other Variable;
* every ``State`` becomes a plain ``dict``; the paths where a State stood are
  recorded (its *layout*) so the optax form can be rebuilt exactly;
* every NamedTuple holding state (``ScaleByAdamState``, ...) becomes an
  :class:`OptNamedTuple` graph node whose attributes are the fields, so the state's
  paths use optax's field names (``opt_state[0].mu``, as in Flax) rather than
  positions.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator, Mapping

import jax

import nnx_graph

__all__ = [
    "OptArray",
    "OptNamedTuple",
    "OptState",
    "OptVariable",
    "StateLayout",
    "assign_opt_state",
    "mapping_leaf_paths",
    "to_graph_form",
    "to_opt_state",
    "to_optax_form",
]

A = tp.TypeVar("A")
Path = tuple[tp.Any, ...]
StateLayout = frozenset[Path]
"""The paths (inside the optimizer state) where optax produced a ``State``."""


class OptState(nnx_graph.Variable[A]):
    """Any optimizer state, including the optimizer's step counter.

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> step = nnx_optim.OptState(jnp.array(0))
        >>> step.value += 1
        >>> int(step.value)
        1
    """

    __slots__ = ()


class OptArray(OptState[A]):
    """Optimizer state for an array leaf of the optax state (e.g. Adam's ``count``).

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> isinstance(nnx_optim.OptArray(jnp.zeros(())), nnx_optim.OptState)
        True
    """

    __slots__ = ()


class OptVariable(OptState[A]):
    """Optimizer state mirroring a model Variable (e.g. Adam's ``mu`` for one
    kernel); it carries that Variable's metadata, such as sharding annotations.

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> mu = nnx_optim.OptVariable(jnp.zeros(3), sharding_names=("model",))
        >>> mu.sharding_names
        ('model',)
    """

    __slots__ = ()


class OptNamedTuple(nnx_graph.Pytree):
    """A NamedTuple of optax state (``ScaleByAdamState``, ...) as a graph node.

    Its fields are attributes, so state paths read ``('opt_state', 0, 'mu', ...)``
    with optax's field names, and ``jax.tree_util`` key paths use
    ``GetAttrKey(field)`` exactly as for the NamedTuple itself.  It reads like the
    NamedTuple: ``state.mu``, ``state[1]``, iteration, ``len``, ``_fields`` and
    :meth:`_asdict`; :meth:`to_namedtuple` rebuilds the original type.

    Example::

        >>> import jax.numpy as jnp, optax, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> optimizer = nnx_optim.Optimizer(Model(), optax.adam(1e-3), wrt=nnx.Param)
        >>> adam_state = optimizer.opt_state[0]
        >>> type(adam_state).__name__, adam_state.namedtuple_type.__name__
        ('OptNamedTuple', 'ScaleByAdamState')
        >>> adam_state._fields, type(adam_state.mu["w"]).__name__
        (('count', 'mu', 'nu'), 'OptVariable')
    """

    def __init__(self, namedtuple_type: type[tuple[tp.Any, ...]], fields: Mapping[str, tp.Any]):
        self._namedtuple_type = namedtuple_type  # static: part of the GraphDef
        for name in namedtuple_type._fields:  # type: ignore[attr-defined]
            setattr(self, name, fields[name])

    @property
    def namedtuple_type(self) -> type[tuple[tp.Any, ...]]:
        """The NamedTuple class this node stands for."""
        return self._namedtuple_type

    @property
    def _fields(self) -> tuple[str, ...]:
        return tuple(self._namedtuple_type._fields)  # type: ignore[attr-defined]

    def _asdict(self) -> dict[str, tp.Any]:
        return {name: getattr(self, name) for name in self._fields}

    def to_namedtuple(self) -> tuple[tp.Any, ...]:
        """The NamedTuple with the same field values (Variables kept as they are)."""
        return self._namedtuple_type(*(getattr(self, name) for name in self._fields))

    def __getitem__(self, index: tp.Any) -> tp.Any:
        if isinstance(index, str):
            return getattr(self, index)
        values = tuple(getattr(self, name) for name in self._fields)
        return values[index]

    def __iter__(self) -> Iterator[tp.Any]:
        return (getattr(self, name) for name in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self._namedtuple_type.__name__}({inner})"


_SHARDING_KEYS = ("out_sharding", "sharding_names", "sharding")


def _is_variable(x: object) -> bool:
    return isinstance(x, nnx_graph.Variable)


def to_opt_state(tree: tp.Any) -> tp.Any:
    """Wrap the leaves of an optax state in Variables: Variables become
    :class:`OptVariable` (metadata kept), anything else :class:`OptArray`.

    A parameter's ``optimizer_sharding`` metadata becomes its state's
    ``out_sharding`` (in place of the parameter's own sharding annotation).

    Example::

        >>> import jax.numpy as jnp, optax, nnx_graph
        >>> from nnx_optim._opt_state import to_opt_state
        >>> params = nnx_graph.State({"w": nnx_graph.Param(jnp.ones(2))})
        >>> state = to_opt_state(optax.adam(1e-3).init(params))
        >>> type(state[0].count).__name__, type(state[0].mu["w"]).__name__
        ('OptArray', 'OptVariable')
    """

    def wrap(x: tp.Any) -> OptState[tp.Any]:
        if isinstance(x, nnx_graph.Variable):
            # hijax/ref/eager_sharding are decided afresh for the state (an explicit
            # eager_sharding=True would require a mesh); eager_sharding=False is kept.
            metadata = x.get_metadata(exclude_required=True)
            if x.get_metadata("eager_sharding", None) is False:
                metadata["eager_sharding"] = False
            if "optimizer_sharding" in metadata:
                # A Variable may ask for its optimizer state to be sharded
                # differently: that annotation becomes the state's ``out_sharding``
                # (Flax 0.12's key), replacing the parameter's own annotation.
                for key in _SHARDING_KEYS:
                    metadata.pop(key, None)
                metadata["out_sharding"] = metadata.pop("optimizer_sharding")
            return OptVariable(x.get_value(), **metadata)
        return OptArray(x)

    return jax.tree.map(wrap, tree, is_leaf=_is_variable)


def _is_namedtuple(x: object) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _describe(path: Path) -> str:
    return "opt_state" + "".join(f"[{k!r}]" for k in path)


def to_graph_form(tree: tp.Any) -> tuple[tp.Any, StateLayout]:
    """Convert an optax state whose leaves are already :class:`OptState` Variables
    into graph form: ``State`` nodes become ``dict``; returns ``(tree, layout)``.

    Raises ``TypeError`` for a pytree node type the graph API cannot traverse.
    """
    layout: set[Path] = set()

    def go(x: tp.Any, path: Path, in_state: bool) -> tp.Any:
        if isinstance(x, nnx_graph.Variable) or x is None:
            return x
        if isinstance(x, nnx_graph.State):
            if not in_state:
                layout.add(path)
            return {k: go(v, (*path, k), True) for k, v in x.items()}
        if isinstance(x, Mapping):
            return {k: go(v, (*path, k), in_state) for k, v in x.items()}
        if _is_namedtuple(x):
            fields = {f: go(v, (*path, f), in_state) for f, v in zip(x._fields, x)}
            if not nnx_graph.has_data(tuple(fields.values())):
                return type(x)(*fields.values())  # e.g. EmptyState(): static, by value
            return OptNamedTuple(type(x), fields)
        if isinstance(x, (tuple, list)):
            return type(x)(go(v, (*path, i), in_state) for i, v in enumerate(x))
        children = jax.tree_util.tree_leaves(x, is_leaf=lambda y: y is not x)
        if children and not (len(children) == 1 and children[0] is x):
            raise TypeError(
                f"The optax state holds a {type(x).__name__} at {_describe(path)}; the "
                "Optimizer can store namedtuples, tuples, lists, dicts and States of "
                "arrays.\nExpected: an optax transformation whose state is made of those "
                "containers (all of optax's built-in transformations are).\nFix: express "
                f"the {type(x).__name__} state as a NamedTuple."
            )
        return x

    return go(tree, (), False), frozenset(layout)


def to_optax_form(tree: tp.Any, layout: StateLayout) -> tp.Any:
    """The inverse of :func:`to_graph_form` with raw values: every Variable is
    replaced by its value and the recorded ``State`` nodes are rebuilt, giving the
    exact pytree structure ``tx.init`` returned."""

    def go(x: tp.Any, path: Path, in_state: bool) -> tp.Any:
        if isinstance(x, nnx_graph.Variable):
            return x.raw_value
        if isinstance(x, OptNamedTuple):
            return x.namedtuple_type(*(go(getattr(x, f), (*path, f), in_state) for f in x._fields))
        if isinstance(x, Mapping):
            in_state = in_state or path in layout
            items = {k: go(v, (*path, k), in_state) for k, v in x.items()}
            return nnx_graph.State(items) if in_state else dict(items)
        if _is_namedtuple(x):
            return type(x)(*(go(v, (*path, i), in_state) for i, v in enumerate(x)))
        if isinstance(x, (tuple, list)):
            container = tuple if isinstance(x, tuple) else list
            return container(go(v, (*path, i), in_state) for i, v in enumerate(x))
        return x

    return go(tree, (), False)


def assign_opt_state(target: tp.Any, new: tp.Any) -> None:
    """Write the values of ``new`` (an optax state) into the Variables of ``target``
    (the same state in graph form)."""

    def go(t: tp.Any, n: tp.Any, path: Path) -> None:
        if isinstance(t, nnx_graph.Variable):
            t.raw_value = n.raw_value if isinstance(n, nnx_graph.Variable) else n
        elif isinstance(t, Mapping):
            if not isinstance(n, Mapping) or set(t) != set(n):
                raise _changed_structure(path, t, n)
            for key, value in t.items():
                go(value, n[key], (*path, key))
        elif isinstance(t, OptNamedTuple):
            if not _is_namedtuple(n) or tuple(n._fields) != t._fields:
                raise _changed_structure(path, t.to_namedtuple(), n)
            for name, value in zip(n._fields, n):
                go(getattr(t, name), value, (*path, name))
        elif isinstance(t, (tuple, list)):
            if not isinstance(n, (tuple, list)) or len(t) != len(n):
                raise _changed_structure(path, t, n)
            for i, (a, b) in enumerate(zip(t, n)):
                go(a, b, (*path, i))

    go(target, new, ())


def _changed_structure(path: Path, old: tp.Any, new: tp.Any) -> TypeError:
    return TypeError(
        f"tx.update returned a state whose structure differs from tx.init's at "
        f"{_describe(path)}.\nExpected: {jax.tree.structure(old, is_leaf=_is_variable)}\n"
        f"Found: {jax.tree.structure(new)}\nFix: an optax transformation must return "
        "a state with the structure its init returned."
    )


def mapping_leaf_paths(tree: tp.Any, path: Path = ()) -> Iterator[Path]:
    """The path of every non-mapping value below nested mappings."""
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from mapping_leaf_paths(value, (*path, key))
    else:
        yield path


def subtree(tree: tp.Any, path: Path) -> tp.Any:
    """``tree[path[0]][path[1]]...`` through mappings, sequences and
    :class:`OptNamedTuple` fields."""
    for key in path:
        tree = getattr(tree, key) if isinstance(tree, OptNamedTuple) else tree[key]
    return tree
