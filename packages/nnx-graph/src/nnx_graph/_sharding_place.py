"""Everything derived from sharding annotations: ``PartitionSpec``/``NamedSharding``
trees, placement of annotated Variables at creation (eager sharding), abstract
models carrying shardings, and the axis helpers of ``nnx.vmap``/``nnx.scan``.

The public entry point is :mod:`nnx_graph._sharding`, which re-exports these names.
"""

from __future__ import annotations

import typing as tp
import warnings
from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from nnx_graph._errors import format_path
from nnx_graph._graph import map as graph_map
from nnx_graph._graph import split
from nnx_graph._pytree import is_graph_node
from nnx_graph._sharding_spec import (
    _P,
    PARTITION_NAME,
    A,
    AnyMesh,
    ShardingError,
    _annotation,
    _annotation_mesh,
    _current_mesh,
    _entries,
    _fmt_names,
    _reshard,
    _resolve,
    _rules_for,
    _ShapeDtypeStruct,
    _value_rank,
    _variable_spec,
    _with_sharding_constraint,
)
from nnx_graph._state import State
from nnx_graph._values import _sharding_hook
from nnx_graph._variables import Variable

__all__ = [
    "abstract_with_sharding",
    "add_axis",
    "as_abstract",
    "get_abstract_model",
    "get_named_sharding",
    "get_partition_spec",
    "remove_axis",
]


# ------------------------------------------------------------------------ tree helpers


def _key_part(key: tp.Any) -> tp.Any:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return getattr(key, attr)
    return str(key)


def _root_name(tree: tp.Any) -> str:
    if isinstance(tree, State):
        return "state"
    if is_graph_node(tree):
        return "model"
    return "tree"


def _map_leaves(fn: tp.Callable[[str, tp.Any], tp.Any], tree: tp.Any) -> tp.Any:
    """``jax.tree.map`` with Variables as leaves, passing each leaf's rendered path."""
    root = _root_name(tree)

    def visit(keypath: tuple[tp.Any, ...], leaf: tp.Any) -> tp.Any:
        return fn(format_path(tuple(_key_part(k) for k in keypath), root), leaf)

    return jax.tree_util.tree_map_with_path(visit, tree, is_leaf=lambda x: isinstance(x, Variable))


def _spec_tree(tree: tp.Any, mesh: AnyMesh | None) -> tp.Any:
    def leaf_spec(where: str, leaf: tp.Any) -> tp.Any:
        if isinstance(leaf, Variable):
            return leaf.replace(_variable_spec(leaf, mesh, where))
        return _P() if _value_rank(leaf) is not None else None

    return _map_leaves(leaf_spec, tree)


def get_partition_spec(tree: A) -> A:
    """The ``PartitionSpec`` of every Variable (and array) in a pytree.

    Variables keep their type and metadata and hold their ``PartitionSpec`` as value;
    unannotated arrays get ``PartitionSpec()`` (replicated) and non-array leaves
    ``None``. Logical names are mapped with the current :class:`logical_axis_rules`;
    under ``jax.set_mesh`` the names are also checked against that mesh.

    Arguments:
        tree: a State (e.g. from ``nnx.split``/``nnx.state``), a Module or any pytree.

    Returns:
        The same structure with ``PartitionSpec`` values.

    Raises:
        ShardingError: an annotation does not have one entry per axis of its value.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> layer = nnx.Dict(
        ...     kernel=nnx.Param(jnp.ones((2, 4)), sharding_names=(None, "model")),
        ...     bias=nnx.Param(jnp.zeros(4)),
        ... )
        >>> specs = nnx.get_partition_spec(nnx.state(layer))
        >>> specs["kernel"].value, specs["bias"].value
        (P(None, 'model'), P())
    """
    return tp.cast(A, _spec_tree(tree, _current_mesh()))


def get_named_sharding(tree: A, mesh: AnyMesh) -> A:
    """The ``NamedSharding`` on ``mesh`` of every Variable (and array) in a pytree.

    Pass the result as ``in_shardings``/``out_shardings`` to ``jax.jit`` (or
    ``jax.device_put``) for the matching State.

    Arguments:
        tree: a State, Module or pytree, concrete or abstract (``jax.eval_shape``).
        mesh: the mesh to shard on.

    Returns:
        The same structure with ``NamedSharding`` values (``None`` for non-arrays).

    Raises:
        ShardingError: an annotation has the wrong number of entries, names an axis the
            mesh does not have, or uses a logical name without a rule.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> init = nnx.with_partitioning(jax.nn.initializers.ones, ("model",))
        >>> state = nnx.State({"w": nnx.Param(init(jax.random.key(0), (4,)))})
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> sharded = jax.device_put(state, nnx.get_named_sharding(state, mesh))
        >>> sharded["w"].value.sharding.spec
        P('model',)
    """

    def leaf_sharding(where: str, leaf: tp.Any) -> tp.Any:
        if isinstance(leaf, Variable):
            spec = _variable_spec(leaf, mesh, where)
            return leaf.replace(None if spec is None else NamedSharding(mesh, spec))
        return NamedSharding(mesh, _P()) if _value_rank(leaf) is not None else None

    return tp.cast(A, _map_leaves(leaf_sharding, tree))


# -------------------------------------------------------------------------- placement


def _axis_types(mesh: AnyMesh) -> dict[str, tp.Any]:
    return {str(name): kind for name, kind in zip(mesh.axis_names, mesh.axis_types)}


def _used_axes(spec: PartitionSpec) -> list[str]:
    used: list[str] = []
    for entry in spec:
        if isinstance(entry, str):
            used.append(entry)
        elif isinstance(entry, tuple):
            used.extend(entry)
    return used


def _cannot_place(where: str, reason: str) -> ShardingError:
    return ShardingError(
        f"{where}: An auto mesh context or metadata is required to place an annotated "
        f"value at creation (eager_sharding=True), but {reason}.\n"
        "Expected: a mesh to place on.\n"
        "Fix: create the Variable under `with jax.set_mesh(mesh):`, pass "
        "`with_partitioning(init, names, mesh=mesh)`, or drop eager_sharding=True to "
        "place it later with nnx.get_named_sharding."
    )


def _place(
    value: tp.Any, spec: PartitionSpec, mesh: AnyMesh, *, strict: bool, where: str
) -> tp.Any:
    kinds = _axis_types(mesh)
    if AxisType.Manual in kinds.values():
        return value  # inside shard_map values are per-device blocks: nothing to place
    if AxisType.Explicit in kinds.values() and AxisType.Auto in kinds.values():
        raise ShardingError(
            f"{where}: Mesh must have all axes as Explicit or all axes as Auto to place an "
            f"annotated value. Got mixed axis types: {tuple(mesh.axis_types)} for axes "
            f"{tuple(mesh.axis_names)}.\nFix: make every mesh axis Explicit or every one "
            "Auto (jax.make_mesh(..., axis_types=...)), or pass eager_sharding=False and "
            "place the value yourself."
        )
    if isinstance(value, jax.ShapeDtypeStruct):
        return _ShapeDtypeStruct(
            value.shape,
            value.dtype,
            sharding=NamedSharding(mesh, spec),
            weak_type=value.weak_type,
        )
    if isinstance(value, jax.core.Tracer):
        used = _used_axes(spec)
        explicit = any(kinds[a] == AxisType.Explicit for a in used) or (
            not used and all(k == AxisType.Explicit for k in kinds.values())
        )
        if not explicit:
            return _with_sharding_constraint(value, NamedSharding(mesh, spec))
        if jax.sharding.get_abstract_mesh().empty:
            # Explicit axes inside a transform need the mesh as context; jit
            # out_shardings (from get_named_sharding) still place the result.
            if strict:
                raise _cannot_place(
                    where, "Explicit mesh axes inside jax.jit need `jax.set_mesh(mesh)`"
                )
            return value
        return _reshard(value, NamedSharding(mesh, spec))
    if isinstance(value, (jax.Array, np.ndarray)):
        if isinstance(mesh, Mesh):
            return jax.device_put(value, NamedSharding(mesh, spec))
        if strict:
            raise _cannot_place(where, "only an abstract mesh is known outside jax.jit")
    return value


def _place_on_creation(variable: Variable[tp.Any]) -> None:
    """The ``_sharding_hook`` callback: Variable.__init__ calls it when eager is on."""
    metadata = variable._var_metadata
    if "sharding" in metadata and "out_sharding" not in metadata:
        # Flax 0.12 stores the `sharding=` alias under its own key, out_sharding.
        metadata["out_sharding"] = metadata.pop("sharding")
        if getattr(variable, "_nnx_frozen", None) is not None:
            object.__setattr__(variable, "_nnx_frozen", None)
    flag = metadata.get("eager_sharding")
    if flag is False or (flag is None and not _sharding_hook.eager):
        return
    found = _annotation(metadata)
    if found is None:
        return
    key, names = found
    strict = flag is True
    where = f"{variable._describe()} being created"
    mesh = _annotation_mesh(metadata)
    if mesh is None:
        mesh = _current_mesh()
    if mesh is None:
        # Nothing to place on. The annotation is checked when it is used
        # (get_partition_spec & co.), where the error can name the Variable's path.
        if strict:
            raise _cannot_place(where, "no mesh is set and the Variable has no mesh metadata")
        return
    value = variable._raw_value
    spec = _resolve(
        key,
        names,
        rules=_rules_for(metadata, where),
        mesh=mesh,
        rank=_value_rank(value),
        where=where,
    )
    object.__setattr__(
        variable, "_raw_value", _place(value, spec, mesh, strict=strict, where=where)
    )


_sharding_hook.callback = _place_on_creation
_sharding_hook.eager = True  # Flax NNX 0.12 default: place annotated Variables


# --------------------------------------------------------------------------- abstract


def _abstract_leaf(where: str, leaf: tp.Any, mesh: AnyMesh | None) -> tp.Any:
    """An annotated Variable whose value is a ShapeDtypeStruct without a sharding gets
    a NamedSharding from its annotation; everything else is returned unchanged."""
    if not isinstance(leaf, Variable):
        return leaf
    value = leaf._raw_value
    if not isinstance(value, jax.ShapeDtypeStruct) or value.sharding is not None:
        return leaf
    if _annotation(leaf._var_metadata) is None:
        return leaf
    leaf_mesh = _annotation_mesh(leaf._var_metadata)
    if leaf_mesh is None:
        leaf_mesh = mesh
    if leaf_mesh is None:
        raise ShardingError(
            f"{where}: cannot attach a sharding to the abstract value: no mesh is known.\n"
            "Expected: `mesh` metadata on the Variable or a mesh set with jax.set_mesh.\n"
            f"Found: {_fmt_names(*tp.cast(tuple[str, tp.Any], _annotation(leaf._var_metadata)))}"
            " and no mesh.\n"
            "Fix: call it under `with jax.set_mesh(mesh):`, or use "
            "nnx.get_abstract_model(init_fn, mesh)."
        )
    spec = _variable_spec(leaf, leaf_mesh, where)
    assert spec is not None
    return leaf.replace(
        _ShapeDtypeStruct(
            value.shape,
            value.dtype,
            sharding=NamedSharding(leaf_mesh, spec),
            weak_type=value.weak_type,
        )
    )


def as_abstract(tree: A, graph: bool | None = None) -> A:
    """Attach shardings to the abstract Variables of an ``eval_shape``-d model.

    Every Variable whose value is a ``jax.ShapeDtypeStruct`` with no sharding yet and
    that has a sharding annotation gets a ``NamedSharding`` built from the annotation
    and its ``mesh`` metadata, else the mesh set with ``jax.set_mesh``.

    Arguments:
        tree: a Module (or other graph node), a State or a pytree of Variables.
        graph: how a graph node is traversed (as in :func:`nnx.map`): ``True`` or
            ``None`` (the default, graph mode) keeps shared Variables shared;
            ``False`` (tree mode) raises on a Variable reachable twice.

    Returns:
        A new tree whose annotated abstract values carry their shardings.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> value = jax.ShapeDtypeStruct((2, 4), jax.numpy.float32)
        >>> abstract = nnx.State({"w": nnx.Param(value, sharding_names=(None, "model"))})
        >>> with jax.set_mesh(jax.make_mesh((1,), ("model",))):
        ...     abstract = nnx.as_abstract(abstract)
        >>> abstract["w"].value.sharding.spec
        P(None, 'model')
    """
    mesh = _current_mesh()
    if is_graph_node(tree) and not isinstance(tree, State):
        # the graph map keeps shared Variables shared
        return graph_map(
            lambda path, leaf: _abstract_leaf(format_path(path), leaf, mesh), tree, graph=graph
        )
    return tp.cast(A, _map_leaves(lambda where, leaf: _abstract_leaf(where, leaf, mesh), tree))


def abstract_with_sharding(tree: A, graph: bool | None = None) -> A:
    """Deprecated alias of :func:`as_abstract` (as in Flax NNX 0.12).

    Example::

        >>> import warnings, jax, nnx_graph as nnx
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     nnx.abstract_with_sharding(nnx.State({})) == nnx.State({})
        True
    """
    warnings.warn(
        "nnx.abstract_with_sharding: This function is deprecated. Use as_abstract instead.",
        DeprecationWarning,
        stacklevel=2,
    )
    return as_abstract(tree, graph=graph)


def _abstract_split(init_fn: tp.Callable[[], tp.Any], graph: bool | None) -> tuple[tp.Any, tp.Any]:
    """``split`` of the model ``init_fn`` builds, without allocating its arrays."""
    # nnx.eval_shape is a transform, two layers above this module
    import nnx_graph

    eval_shape = getattr(nnx_graph, "eval_shape", None)
    if eval_shape is not None:  # the nnx transform: handles outer Rngs correctly
        graphdef, state = split(eval_shape(init_fn, graph=graph), graph=graph)
        return graphdef, state
    captured: list[tp.Any] = []

    def build_state() -> tp.Any:
        graphdef, state = split(init_fn(), graph=graph)
        captured.append(graphdef)
        return state

    state = jax.eval_shape(build_state)
    return captured[0], state


def get_abstract_model(
    init_fn: tp.Callable[[], tp.Any], mesh: Mesh, *, graph: bool | None = None
) -> tuple[tp.Any, tp.Any]:
    """The GraphDef and abstract State of the model ``init_fn`` builds, with shardings.

    Nothing is allocated: ``init_fn`` runs under ``eval_shape`` with ``mesh`` set.
    Each leaf of the State is a Variable holding a ``jax.ShapeDtypeStruct`` whose
    ``sharding`` is the ``NamedSharding`` its annotation gives on ``mesh``
    (replicated when unannotated): what a checkpoint restore or a sharded ``jax.jit``
    initialisation needs.

    Arguments:
        init_fn: builds the model, e.g. ``lambda: MLP(rngs=nnx.Rngs(0))``. Create
            the ``Rngs`` inside it: an outer one would be advanced by the abstract
            run and left holding tracers.
        mesh: the mesh to shard on.
        graph: passed to ``nnx.eval_shape`` and ``nnx.split``: ``False`` (tree mode)
            raises when the model reaches a Variable twice; the default keeps
            shared Variables shared.

    Returns:
        ``(graphdef, abstract_state)``.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> class Linear(nnx.Module):
        ...     def __init__(self, rngs):
        ...         init = nnx.with_partitioning(jax.nn.initializers.ones, (None, "model"))
        ...         self.kernel = nnx.Param(init(rngs.params(), (2, 4)))
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> graphdef, abstract = nnx.get_abstract_model(lambda: Linear(nnx.Rngs(0)), mesh)
        >>> abstract["kernel"].value.shape, abstract["kernel"].value.sharding.spec
        ((2, 4), P(None, 'model'))
    """
    with jax.set_mesh(mesh):
        graphdef, abstract = _abstract_split(init_fn, graph)
    shardings = get_named_sharding(abstract, mesh)

    def with_sharding(value: tp.Any, sharding: tp.Any) -> tp.Any:
        if sharding is None or not hasattr(value, "shape"):
            return value
        weak_type = getattr(value, "weak_type", False)
        return _ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding, weak_type=weak_type)

    abstract = jax.tree.map(with_sharding, abstract, shardings, is_leaf=lambda x: x is None)
    return graphdef, abstract


# ------------------------------------------------------------- transform axis helpers


def _partition_name(transform_metadata: Mapping[str, tp.Any]) -> tuple[tp.Any, dict[str, tp.Any]]:
    other = dict(transform_metadata)
    return other.pop(PARTITION_NAME, None), other


def add_axis(tree: A, index: int, transform_metadata: Mapping[str, tp.Any]) -> A:
    """Insert an axis into the sharding annotation of every Variable in ``tree``.

    For transforms that add an axis to state (``nnx.vmap``/``nnx.scan`` outputs):
    the new entry is ``transform_metadata[PARTITION_NAME]`` (``None`` when absent,
    so the annotation keeps one entry per axis). Other tuple-valued metadata named in
    ``transform_metadata`` get its value inserted too. Variables are updated in place.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._sharding import add_axis
        >>> w = nnx.Param(jnp.ones((2, 4)), sharding_names=(None, "model"))
        >>> _ = add_axis([w], 0, {nnx.PARTITION_NAME: "layers"})  # the value gets stacked
        >>> w.sharding_names
        ('layers', None, 'model')
    """
    axis_name, other = _partition_name(transform_metadata)

    def insert(fields: tp.Any, value: tp.Any) -> tuple[tp.Any, ...]:
        items = list(_entries(fields))
        while len(items) < index:
            items.append(None)
        items.insert(index, value)
        return tuple(items)

    def visit(leaf: tp.Any) -> tp.Any:
        if isinstance(leaf, Variable):
            metadata = leaf._var_metadata
            found = _annotation(metadata)
            if found is not None:
                leaf.set_metadata(found[0], insert(found[1], axis_name))
            for key, value in other.items():
                current = metadata.get(key)
                if isinstance(current, tuple) and current:
                    leaf.set_metadata(key, insert(current, value))
            leaf.add_axis(index, axis_name)  # the Variable's on_add_axis hooks
        return leaf

    return tp.cast(A, jax.tree.map(visit, tree, is_leaf=lambda x: isinstance(x, Variable)))


def remove_axis(tree: A, index: int, transform_metadata: Mapping[str, tp.Any]) -> A:
    """Remove the axis :func:`add_axis` inserted (transform inputs); in place.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph._sharding import remove_axis
        >>> w = nnx.Param(jnp.ones((3, 4)), sharding_names=("layers", "model"))
        >>> _ = remove_axis([w], 0, {nnx.PARTITION_NAME: "layers"})
        >>> w.sharding_names
        ('model',)
    """
    axis_name, other = _partition_name(transform_metadata)

    def drop(where: str, key: str, fields: tp.Any, expected: tp.Any) -> tuple[tp.Any, ...]:
        items = list(_entries(fields))
        removed = items.pop(index) if index < len(items) else None
        if removed != expected:
            raise ShardingError(
                f"{where}: cannot remove axis {index} of {key}={tuple(_entries(fields))!r}.\n"
                f"Expected: {expected!r} at position {index} (the transform's "
                f"{PARTITION_NAME}).\nFound: {removed!r}.\n"
                "Fix: use the same transform_metadata for the transform's inputs and outputs."
            )
        return tuple(items)

    def visit(where: str, leaf: tp.Any) -> tp.Any:
        if isinstance(leaf, Variable):
            metadata = leaf._var_metadata
            found = _annotation(metadata)
            if found is not None:
                leaf.set_metadata(found[0], drop(where, found[0], found[1], axis_name))
            for key, value in other.items():
                current = metadata.get(key)
                if isinstance(current, tuple) and current:
                    leaf.set_metadata(key, drop(where, key, current, value))
            leaf.remove_axis(index, axis_name)  # the Variable's on_remove_axis hooks
        return leaf

    return tp.cast(A, _map_leaves(visit, tree))
