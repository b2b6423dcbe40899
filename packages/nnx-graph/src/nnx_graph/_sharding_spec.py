"""Sharding annotations: the metadata keys, the logical-axis-rules and eager-sharding
settings, :func:`with_partitioning`, and turning one Variable's annotation into a
``PartitionSpec`` (checked against its rank, the mesh and the rules).

The public entry point is :mod:`nnx_graph._sharding`, which re-exports these names.
"""

from __future__ import annotations

import functools
import threading
import typing as tp
from collections.abc import Mapping, Sequence

import jax
from jax.experimental.layout import Format
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

from nnx_graph._values import _sharding_hook
from nnx_graph._variables import Variable, VariableMetadata, with_metadata

__all__ = [
    "PARTITION_NAME",
    "SHARDING_METADATA_KEYS",
    "ShardingError",
    "get_logical_axis_rules",
    "logical_axis_rules",
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

SHARDING_METADATA_KEYS = ("out_sharding", "sharding_names", "sharding")
"""Variable metadata keys read as sharding annotations, first present wins:
``out_sharding`` (Flax NNX 0.12's key), then the aliases ``sharding_names`` (older
Flax, kept as written) and ``sharding`` (stored as ``out_sharding`` at creation, as
Flax does, so ``v.sharding`` stays the value's ``jax`` sharding)."""


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

    def __init__(self, rules: LogicalRules) -> None:
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
    back on exit; as a decorator it applies only during calls of the function. A
    Variable's own ``eager_sharding=`` overrides the switch. The settings form a
    stack (:meth:`get_stack`); :meth:`current_value` is its top, or
    :meth:`get_default` (``True``) when it is empty.

    Arguments:
        value: ``True`` to place annotated Variables at creation, ``False`` not to.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.using_eager_sharding()
        True
        >>> with nnx.use_eager_sharding(False):
        ...     nnx.using_eager_sharding()
        False
        >>> nnx.using_eager_sharding(), nnx.use_eager_sharding.get_stack()
        (True, [])
    """

    def __init__(self, value: bool, /) -> None:
        stack = self.get_stack()
        self.prev_value: bool | None = stack[-1] if stack else None
        if stack:
            stack[-1] = bool(value)
        else:
            stack.append(bool(value))
        self.new_value = bool(value)
        _sync_eager()

    @classmethod
    def get_default(cls) -> bool:
        """The setting when none is in effect: ``True``."""
        return True

    @classmethod
    def get_stack(cls) -> list[bool]:
        """The settings in effect, innermost last (the list itself)."""
        return _EAGER_STACK

    @classmethod
    def current_value(cls) -> bool:
        """The setting in effect now."""
        stack = cls.get_stack()
        return stack[-1] if stack else cls.get_default()

    def __enter__(self) -> use_eager_sharding:
        if self.prev_value is not None:
            self.get_stack().insert(-1, self.prev_value)
        return self

    def __exit__(self, *exc: object) -> None:
        self.get_stack().pop()
        _sync_eager()

    def __call__(self, f: tp.Callable[..., A]) -> tp.Callable[..., A]:
        stack = self.get_stack()
        stack.pop()  # decorating changes nothing until the function is called
        if self.prev_value is not None:
            stack.append(self.prev_value)
        _sync_eager()
        new_value = self.new_value

        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> A:
            stack.append(new_value)
            _sync_eager()
            try:
                return f(*args, **kwargs)
            finally:
                stack.pop()
                _sync_eager()

        return wrapper

    def __repr__(self) -> str:
        return f"use_eager_sharding({self.new_value})"


_EAGER_STACK: list[bool] = []


def _sync_eager() -> None:
    """Variables read the switch from ``_sharding_hook.eager``: keep it current."""
    _sharding_hook.eager = use_eager_sharding.current_value()


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
        if isinstance(names, Format):  # a layout plus a sharding: place by the sharding
            if not isinstance(names.sharding, NamedSharding):
                continue
            return key, names.sharding
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
    if rank is not None and len(entries) > rank:
        # As in JAX and Flax, a shorter annotation leaves the remaining axes
        # unsharded, and extra trailing None entries are dropped; an extra axis
        # that would be sharded cannot be honoured.
        if any(e is not None for e in entries[rank:]):
            raise ShardingError(
                f"{where}: the sharding annotation has {len(entries)} "
                f"entr{'y' if len(entries) == 1 else 'ies'} but the value has rank {rank}, "
                f"and entries past axis {rank - 1} are not None.\n"
                f"Expected: at most one entry per axis ({rank} in all): a mesh axis or "
                "logical name, or None for an axis that is not sharded.\n"
                f"Found: {shown}.\n"
                "Fix: give one entry per axis, e.g. "
                f"{tuple([None] * max(rank - 1, 0) + ['model'])!r} for a rank-{rank} value "
                "sharded on its last axis."
            )
        entries = entries[:rank]
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
