"""Sharding: partition annotations on Variables and everything derived from them.

A Variable is annotated with one name per axis in its ``sharding_names`` metadata
(``with_partitioning`` adds it). A name is a mesh axis (``'model'``), ``None`` for an
axis that is not sharded, a tuple of mesh axes, or a *logical* name (``'embed'``) that
:class:`logical_axis_rules` maps onto a mesh axis. Two older spellings are read too:
``out_sharding`` (what Flax >= 0.12 writes) and ``sharding``.

From those annotations this module derives ``PartitionSpec`` trees
(:func:`get_partition_spec`), ``NamedSharding`` trees for ``jax.jit``
(:func:`get_named_sharding`) and abstract models whose ``ShapeDtypeStruct`` values
carry their shardings (:func:`get_abstract_model`, :func:`as_abstract`).

Placement at creation ("eager sharding", on by default as in Flax NNX 0.12): when a
Variable with an annotation is created and a mesh is known -- the Variable's ``mesh``
metadata or the mesh set with ``jax.set_mesh`` -- its value is placed right away
(``jax.device_put`` outside transforms; ``jax.sharding.reshard`` for Explicit mesh
axes or ``jax.lax.with_sharding_constraint`` for Auto axes inside them). Unlike Flax,
creating an annotated Variable with no mesh anywhere is not an error: the value stays
where it is and the annotation still drives ``get_named_sharding`` later, so the same
model code runs on one device. A Variable created with ``eager_sharding=True``
metadata insists on placement and raises when it cannot be placed.

The switch is process-wide (it is ``_sharding_hook.eager`` in ``_variables.py``); the
logical axis rules are per thread, like Flax's.
"""

from __future__ import annotations

import threading
import typing as tp
import warnings
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AbstractMesh, AxisType, Mesh, NamedSharding, PartitionSpec

from nnx_graph._errors import format_path
from nnx_graph._graph import map as graph_map
from nnx_graph._graph import split
from nnx_graph._pytree import is_graph_node
from nnx_graph._state import State
from nnx_graph._variables import Variable, VariableMetadata, _sharding_hook, with_metadata

__all__ = [
    "PARTITION_NAME",
    "SHARDING_METADATA_KEYS",
    "ShardingError",
    "abstract_with_sharding",
    "add_axis",
    "as_abstract",
    "get_abstract_model",
    "get_logical_axis_rules",
    "get_named_sharding",
    "get_partition_spec",
    "logical_axis_rules",
    "remove_axis",
    "use_eager_sharding",
    "using_eager_sharding",
    "with_partitioning",
]

A = tp.TypeVar("A")
AnyMesh = Mesh | AbstractMesh
MeshAxes = str | tuple[str, ...] | None
LogicalRules = Sequence[tuple[str, MeshAxes]] | Mapping[str, MeshAxes]
Path = tuple[tp.Any, ...]

# JAX leaves these constructors unannotated; typed aliases keep mypy --strict useful.
_P = tp.cast(tp.Callable[..., PartitionSpec], PartitionSpec)
_ShapeDtypeStruct = tp.cast(tp.Callable[..., jax.ShapeDtypeStruct], jax.ShapeDtypeStruct)
_with_sharding_constraint = tp.cast(tp.Callable[..., tp.Any], jax.lax.with_sharding_constraint)
_reshard = tp.cast(tp.Callable[..., tp.Any], jax.sharding.reshard)

PARTITION_NAME = "partition_name"
"""Key of ``transform_metadata`` (``nnx.vmap``/``nnx.scan``) naming the mesh axis of
the axis the transform adds to each Variable; see :func:`add_axis`."""

SHARDING_METADATA_KEYS = ("sharding_names", "out_sharding", "sharding")
"""Variable metadata keys read as sharding annotations, first present wins."""


class ShardingError(ValueError):
    """A sharding annotation does not fit its Variable, the mesh or the axis rules."""


# --------------------------------------------------------------------------- settings


class _AxisRulesContext(threading.local):
    rules: tuple[tuple[str, MeshAxes], ...] = ()


_axis_rules = _AxisRulesContext()


def _normalize_rules(rules: LogicalRules | None) -> tuple[tuple[str, MeshAxes], ...]:
    if rules is None:
        return ()
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    out: list[tuple[str, MeshAxes]] = []
    for item in items:
        ok = isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
        target = item[1] if ok else None
        ok = ok and (
            target is None
            or isinstance(target, str)
            or (isinstance(target, (tuple, list)) and all(isinstance(t, str) for t in target))
        )
        if not ok:
            raise TypeError(
                f"logical_axis_rules: each rule must be a pair (logical_name, mesh_axes); "
                f"found {item!r}.\nExpected: a str logical name and a mesh axis name, a "
                "tuple of mesh axis names, or None (not sharded).\n"
                "Fix: nnx.logical_axis_rules([('batch', 'data'), ('embed', None)])."
            )
        out.append((item[0], tuple(target) if isinstance(target, list) else target))
    return tuple(out)


class logical_axis_rules:  # lower case: used like a function, as in Flax
    """Set the rules mapping logical axis names to mesh axes.

    Calling it sets the rules for the current thread; used in a ``with`` statement it
    restores the previous rules on exit. A rule maps a logical name to a mesh axis, a
    tuple of mesh axes, or ``None`` (replicated). Rules are applied whenever
    ``sharding_names`` are resolved (:func:`get_partition_spec`, placement at
    creation, ...). A Variable's own ``sharding_rules`` metadata adds to them.

    Arguments:
        rules: pairs ``(logical_name, mesh_axes)`` or a mapping of them.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> init = nnx.with_partitioning(jax.nn.initializers.ones, ("embed", "hidden"))
        >>> w = nnx.Param(init(jax.random.key(0), (4, 8)))
        >>> with nnx.logical_axis_rules([("embed", None), ("hidden", "model")]):
        ...     nnx.get_partition_spec(w).value
        P(None, 'model')
    """

    def __init__(self, rules: LogicalRules, /) -> None:
        self._previous = _axis_rules.rules
        _axis_rules.rules = _normalize_rules(rules)

    def __enter__(self) -> logical_axis_rules:
        return self

    def __exit__(self, *exc: object) -> None:
        _axis_rules.rules = self._previous

    def __repr__(self) -> str:
        return f"logical_axis_rules({list(_axis_rules.rules)!r})"


def get_logical_axis_rules() -> tuple[tuple[str, MeshAxes], ...]:
    """The logical axis rules in effect in this thread.

    Example::

        >>> import nnx_graph as nnx
        >>> from nnx_graph._sharding import get_logical_axis_rules
        >>> with nnx.logical_axis_rules({"batch": "data"}):
        ...     get_logical_axis_rules()
        (('batch', 'data'),)
    """
    return _axis_rules.rules


class use_eager_sharding:  # lower case: used like a function, as in Flax
    """Switch placement at creation on or off (process-wide; on by default).

    When on, a Variable created with a sharding annotation is placed on the mesh
    right away if a mesh is known (its ``mesh`` metadata, or ``jax.set_mesh``).
    Calling it sets the switch; in a ``with`` statement the previous setting comes
    back on exit. A Variable's own ``eager_sharding`` metadata overrides the switch.

    Arguments:
        value: ``True`` to place annotated Variables at creation, ``False`` not to.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.using_eager_sharding()
        True
        >>> with nnx.use_eager_sharding(False):
        ...     nnx.using_eager_sharding()
        False
        >>> nnx.using_eager_sharding()
        True
    """

    def __init__(self, value: bool, /) -> None:
        self._previous = _sharding_hook.eager
        _sharding_hook.eager = bool(value)

    def __enter__(self) -> use_eager_sharding:
        return self

    def __exit__(self, *exc: object) -> None:
        _sharding_hook.eager = self._previous

    def __repr__(self) -> str:
        return f"use_eager_sharding({_sharding_hook.eager})"


def using_eager_sharding() -> bool:
    """Whether annotated Variables are placed on the mesh at creation.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.use_eager_sharding(False); nnx.using_eager_sharding()
        use_eager_sharding(False)
        False
        >>> nnx.use_eager_sharding(True); nnx.using_eager_sharding()
        use_eager_sharding(True)
        True
    """
    return bool(_sharding_hook.eager)


# ------------------------------------------------------------------------ annotations


def with_partitioning(
    initializer: tp.Callable[..., tp.Any],
    sharding: tp.Any,
    mesh: AnyMesh | None = None,
    **metadata: tp.Any,
) -> tp.Callable[..., VariableMetadata[tp.Any]]:
    """Wrap an initializer so the Variable built from its result is annotated.

    The result carries ``sharding_names=sharding`` and ``mesh=mesh`` (plus any
    ``metadata``). With eager sharding on (the default) and a mesh known -- ``mesh``
    or the one set with ``jax.set_mesh`` -- the Variable's value is placed on it when
    the Variable is created (``device_put`` eagerly, a sharding constraint under
    ``jax.jit``).

    Arguments:
        initializer: any ``init(key, shape, dtype=...) -> array``.
        sharding: one entry per axis of the value: a mesh axis name, a logical name,
            a tuple of mesh axes, or ``None``; a ``PartitionSpec`` or ``NamedSharding``
            also works.
        mesh: the mesh to place on; default: the current one (``jax.set_mesh``).
        **metadata: extra Variable metadata (e.g. ``sharding_rules``).

    Returns:
        An initializer returning a :class:`VariableMetadata`; pass it to ``Param``.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> init = nnx.with_partitioning(jax.nn.initializers.lecun_normal(), (None, "model"))
        >>> kernel = nnx.Param(init(jax.random.key(0), (3, 4)))
        >>> kernel.sharding_names, kernel.shape
        ((None, 'model'), (3, 4))
        >>> mesh = jax.make_mesh((1,), ("model",))
        >>> with jax.set_mesh(mesh):
        ...     kernel = nnx.Param(init(jax.random.key(0), (3, 4)))
        >>> kernel.value.sharding.spec
        P(None, 'model')
    """
    if isinstance(sharding, list):
        sharding = tuple(sharding)
    return with_metadata(initializer, sharding_names=sharding, mesh=mesh, **metadata)


def _annotation(metadata: Mapping[str, tp.Any]) -> tuple[str, tp.Any] | None:
    """``(key, names)`` of the first sharding annotation present and non-empty."""
    for key in SHARDING_METADATA_KEYS:
        names = metadata.get(key)
        if names is None:
            continue
        if isinstance(names, NamedSharding):
            return key, names
        if isinstance(names, str):
            # A bare name on a rank-1 value is a common slip; treat it as one entry.
            return key, (names,)
        if len(names) == 0:
            return None
        return key, names
    return None


def _entries(names: tp.Any) -> tuple[tp.Any, ...]:
    if isinstance(names, NamedSharding):
        return tuple(names.spec)
    return tuple(names)


def _annotation_mesh(metadata: Mapping[str, tp.Any]) -> AnyMesh | None:
    mesh = metadata.get("mesh")
    if isinstance(mesh, (Mesh, AbstractMesh)) and not mesh.empty:
        return mesh
    found = _annotation(metadata)
    if found is not None and isinstance(found[1], NamedSharding):
        mesh = found[1].mesh
        return mesh if isinstance(mesh, (Mesh, AbstractMesh)) else None
    return None


def _current_mesh() -> AnyMesh | None:
    """The mesh set with ``jax.set_mesh``: concrete outside transforms, else abstract."""
    try:
        concrete = jax.sharding.get_mesh()
    except ValueError:  # inside jax.jit only the abstract mesh is available
        concrete = None
    if concrete is not None and not concrete.empty:
        return concrete
    abstract = jax.sharding.get_abstract_mesh()
    return None if abstract.empty else abstract


def _value_rank(value: tp.Any) -> int | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        return len(tuple(shape))
    except TypeError:
        return None


def _fmt_names(key: str, names: tp.Any) -> str:
    if isinstance(names, NamedSharding):
        return f"{key}={names.spec!r}"
    return f"{key}={tuple(names)!r}"


def _rules_for(metadata: Mapping[str, tp.Any], where: str) -> dict[str, MeshAxes]:
    """Context rules composed with the Variable's own ``sharding_rules``."""
    rules: dict[str, MeshAxes] = dict(_axis_rules.rules)
    local = _normalize_rules(metadata.get("sharding_rules"))
    for name, target in local:
        if name in rules and rules[name] != target:
            raise ShardingError(
                f"{where}: logical axis {name!r} has two different rules.\n"
                f"Expected: one mesh axis per logical name.\n"
                f"Found: {rules[name]!r} from nnx.logical_axis_rules and {target!r} from "
                "the Variable's sharding_rules metadata.\n"
                "Fix: make them agree, or drop one of them."
            )
        rules[name] = target
    return rules


def _resolve(
    key: str,
    names: tp.Any,
    *,
    rules: Mapping[str, MeshAxes],
    mesh: AnyMesh | None,
    rank: int | None,
    where: str,
) -> PartitionSpec:
    """Turn an annotation into a PartitionSpec, checking it against rank and mesh."""
    entries = _entries(names)
    shown = _fmt_names(key, names)
    if rank is not None and len(entries) != rank:
        raise ShardingError(
            f"{where}: the sharding annotation has {len(entries)} "
            f"entr{'y' if len(entries) == 1 else 'ies'} but the value has rank {rank}.\n"
            f"Expected: one entry per axis ({rank} in all): a mesh axis or logical name, "
            "or None for an axis that is not sharded.\n"
            f"Found: {shown}.\n"
            "Fix: give one entry per axis, e.g. "
            f"{tuple([None] * max(rank - 1, 0) + ['model'])!r} for a rank-{rank} value "
            "sharded on its last axis."
        )
    mesh_axes: tuple[str, ...] | None = (
        tuple(str(a) for a in mesh.axis_names) if mesh is not None else None
    )

    def unknown(axis: str, via: str) -> ShardingError:
        assert mesh_axes is not None
        if rules:
            return ShardingError(
                f"{where}: {via}mesh axis {axis!r} is not an axis of the mesh.\n"
                f"Expected: one of the mesh axes {mesh_axes!r}.\n"
                f"Found: {axis!r} in {shown}; the logical axis rules are "
                f"{dict(rules)!r}.\n"
                f"Fix: correct the name or the rule, or add a rule mapping it onto a "
                "mesh axis."
            )
        return ShardingError(
            f"{where}: mesh axis {axis!r} is not an axis of the mesh.\n"
            f"Expected: one of the mesh axes {mesh_axes!r}, or None.\n"
            f"Found: {axis!r} in {shown}.\n"
            f"Fix: correct the name; if {axis!r} is a logical axis name, map it with "
            f"nnx.logical_axis_rules([({axis!r}, {mesh_axes[0] if mesh_axes else 'axis'!r})])."
        )

    def no_rule(axis: str) -> ShardingError:
        return ShardingError(
            f"{where}: logical axis {axis!r} has no rule and is not a mesh axis.\n"
            f"Expected: a logical name covered by the rules {sorted(rules)!r}, or one of "
            f"the mesh axes {mesh_axes!r}.\n"
            f"Found: {axis!r} in {shown}.\n"
            f"Fix: add a rule, e.g. nnx.logical_axis_rules([..., ({axis!r}, "
            f"{mesh_axes[0] if mesh_axes else 'axis'!r})]), or ({axis!r}, None) to leave "
            "that axis unsharded."
        )

    def map_name(name: str) -> tuple[str, ...]:
        if name in rules:
            target = rules[name]
            targets = () if target is None else (target,) if isinstance(target, str) else target
            if mesh_axes is not None:
                for t in targets:
                    if t not in mesh_axes:
                        raise unknown(t, f"the rule {name!r} -> {target!r} names ")
            return tuple(targets)
        if mesh_axes is not None and name not in mesh_axes:
            raise no_rule(name) if rules else unknown(name, "")
        return (name,)

    resolved: list[tp.Any] = []
    used: list[str] = []
    for entry in entries:
        if entry is None or entry is PartitionSpec.UNCONSTRAINED:
            resolved.append(entry)
            continue
        parts = (entry,) if isinstance(entry, str) else entry
        if not isinstance(parts, (tuple, list)) or not all(isinstance(p, str) for p in parts):
            raise ShardingError(
                f"{where}: sharding entry {entry!r} is not a name.\n"
                "Expected: a str (mesh axis or logical name), a tuple of str, or None.\n"
                f"Found: {shown}.\nFix: use names such as ('data', None)."
            )
        axes = tuple(axis for part in parts for axis in map_name(part))
        used.extend(axes)
        resolved.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    duplicated = sorted({a for a in used if used.count(a) > 1})
    if duplicated:
        raise ShardingError(
            f"{where}: mesh axis {duplicated[0]!r} shards more than one axis of the value.\n"
            "Expected: each mesh axis used at most once per value.\n"
            f"Found: {shown} (after rules: {_P(*resolved)!r}).\n"
            "Fix: shard the other axes on different mesh axes, or leave them None."
        )
    return _P(*resolved)


def _variable_spec(
    variable: Variable[tp.Any], mesh: AnyMesh | None, where: str
) -> PartitionSpec | None:
    """The Variable's PartitionSpec (``P()`` when unannotated, ``None`` for non-arrays)."""
    metadata = variable._var_metadata
    value = variable._raw_value
    if value is None:  # an absent value has no leaf to shard: keep the trees aligned
        return None
    rank = _value_rank(value)
    found = _annotation(metadata)
    if found is None:
        return _P() if rank is not None else None
    key, names = found
    return _resolve(
        key, names, rules=_rules_for(metadata, where), mesh=mesh, rank=rank, where=where
    )


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

        >>> import jax, nnx_graph as nnx
        >>> class Linear(nnx.Module):
        ...     def __init__(self, rngs):
        ...         init = nnx.with_partitioning(jax.nn.initializers.ones, (None, "model"))
        ...         self.kernel = nnx.Param(init(rngs.params(), (2, 4)))
        ...         self.bias = nnx.Param(jax.numpy.zeros(4))
        >>> specs = nnx.get_partition_spec(nnx.state(Linear(nnx.Rngs(0))))
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
        f"{where}: eager_sharding=True asks to place the value at creation, but "
        f"{reason}.\nExpected: a mesh to place on.\n"
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


def as_abstract(tree: A) -> A:
    """Attach shardings to the abstract Variables of an ``eval_shape``-d model.

    Every Variable whose value is a ``jax.ShapeDtypeStruct`` with no sharding yet and
    that has a sharding annotation gets a ``NamedSharding`` built from the annotation
    and its ``mesh`` metadata, else the mesh set with ``jax.set_mesh``.

    Arguments:
        tree: a Module (or other graph node), a State or a pytree of Variables.

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
        return graph_map(lambda path, leaf: _abstract_leaf(format_path(path), leaf, mesh), tree)
    return tp.cast(A, _map_leaves(lambda where, leaf: _abstract_leaf(where, leaf, mesh), tree))


def abstract_with_sharding(tree: A) -> A:
    """Deprecated alias of :func:`as_abstract` (as in Flax NNX 0.12).

    Example::

        >>> import warnings, jax, nnx_graph as nnx
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     nnx.abstract_with_sharding(nnx.State({})) == nnx.State({})
        True
    """
    warnings.warn(
        "nnx.abstract_with_sharding is deprecated; use nnx.as_abstract.",
        DeprecationWarning,
        stacklevel=2,
    )
    return as_abstract(tree)


def _abstract_split(init_fn: tp.Callable[[], tp.Any]) -> tuple[tp.Any, tp.Any]:
    """``split`` of the model ``init_fn`` builds, without allocating its arrays."""
    import nnx_graph

    eval_shape = getattr(nnx_graph, "eval_shape", None)
    if eval_shape is not None:  # the nnx transform: handles outer Rngs correctly
        graphdef, state = split(eval_shape(init_fn))
        return graphdef, state
    captured: list[tp.Any] = []

    def build_state() -> tp.Any:
        graphdef, state = split(init_fn())
        captured.append(graphdef)
        return state

    state = jax.eval_shape(build_state)
    return captured[0], state


def get_abstract_model(init_fn: tp.Callable[[], tp.Any], mesh: Mesh) -> tuple[tp.Any, tp.Any]:
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
        graphdef, abstract = _abstract_split(init_fn)
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
        return leaf

    return tp.cast(A, _map_leaves(visit, tree))
