"""The Variable's metadata rules, kept out of ``_variables.py``: constructor
arguments (``hijax``/``ref``/``eager_sharding``, :class:`VariableMetadata`, the
sharding-key spellings), reads and writes through references and hooks, metadata
get/set/delete, copies, and the trace-level check on mutation."""

from __future__ import annotations

import typing as tp

import jax

from nnx_graph import _errors
from nnx_graph._hijax import hijax_supported, is_box, new_box, unbox, wrap
from nnx_graph._traces import _is_top_level, _trace_now, current_trace
from nnx_graph._values import (
    HOOK_KEYS,
    VariableMetadata,
    _sharding_hook,
    is_array_ref,
    run_value_hooks,
    var_flags,
)

__all__ = ["MISSING", "REQUIRED_KEYS", "current_trace", "trace_now", "unbox", "wrap"]

trace_now = _trace_now  # the current trace token by a C-level call (hot paths)

REQUIRED_KEYS = ("hijax", "ref", "eager_sharding")
"""Metadata every Variable carries (Flax NNX 0.12's ``required_metadata``)."""

SHARDING_ALIASES = ("sharding", "sharding_names")
"""Older spellings of ``out_sharding``; stored as ``out_sharding`` (as Flax does)."""

_HOOKS = frozenset(HOOK_KEYS)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: tp.Any = _Missing()


class MetadataKeyError(KeyError, AttributeError):
    """A metadata entry was requested that the Variable does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------- flags
def eager_default() -> bool:
    """The current default of ``eager_sharding`` (see ``use_eager_sharding``)."""
    return bool(_sharding_hook.eager)


def flag_default(key: str) -> bool:
    if key == "eager_sharding":
        return eager_default()
    stack: list[bool] = getattr(var_flags, key)
    return stack[-1] if stack else False


def hijax_error(where: str) -> ValueError:
    return ValueError(
        f"{where}: hijax=True is not supported by this JAX version (jax "
        f"{jax.__version__}): hijax Variables keep their value in the hi-type box of "
        "jax.experimental.hijax, which it does not provide.\n"
        "Expected: a JAX with jax._src.hijax.Box, or hijax=False.\n"
        "Found: hijax=True.\n"
        "Fix: drop hijax=True (and nnx.var_defaults(hijax=True)); for a value updated "
        "in place under jax.jit pass ref=True instead."
    )


def wrap_value(value: tp.Any, ref: bool, hijax: bool) -> tp.Any:
    """A new Variable's stored value: in a ``jax.new_ref`` when ``ref``, else in a
    hi-type box when ``hijax``."""
    if ref:  # (hijax and ref: the Ref stays unboxed, see _hijax.wrap)
        return jax.new_ref(value)
    return new_box(value) if hijax else value


def remap_sharding(metadata: dict[str, tp.Any]) -> None:
    """Store ``sharding=``/``sharding_names=`` under ``out_sharding``, as Flax does
    (an ``out_sharding`` given as well wins: Flax would silently drop it)."""
    for alias in SHARDING_ALIASES[::-1]:
        if alias in metadata:
            value = metadata.pop(alias)
            metadata.setdefault("out_sharding", value)


def unpack_value(
    var: tp.Any,
    value: tp.Any,
    metadata: dict[str, tp.Any],
    flags: dict[str, tp.Any],
    variable_type: type,
) -> tp.Any:
    """Unwrap a :class:`VariableMetadata` (or a Variable) given as the value: its
    metadata and hooks join ``metadata``, its flags join ``flags``."""
    if isinstance(value, VariableMetadata):
        aux = dict(value.metadata)
        for key in REQUIRED_KEYS:
            if key not in aux:
                continue
            given = flags[key]
            if given is not None and given != aux[key]:
                raise ValueError(
                    f"Cannot specify {key} both in VariableMetadata and as an argument to "
                    f"Variable constructor: {type(var).__name__}(..., {key}={given!r}) got "
                    f"a VariableMetadata with {key}={aux[key]!r}.\n"
                    f"Fix: give {key} in one place only."
                )
            flags[key] = aux.pop(key)
        metadata.update(aux)
        for key in HOOK_KEYS:
            hooks = getattr(value, key)
            if hooks and key not in metadata:
                metadata[key] = hooks
        return value.raw_value
    if isinstance(value, variable_type):
        value = tp.cast(tp.Any, value)
        # nnx extension: a Variable given as the value lends its value and metadata
        for key, item in value._var_metadata.items():
            if key == "eager_sharding":
                continue  # placement is decided afresh
            if key in flags:
                flags[key] = item if flags[key] is None else flags[key]
            else:
                metadata.setdefault(key, item)
        return value._raw_value
    return value


def resolve_flags(
    var: tp.Any, value: tp.Any, metadata: dict[str, tp.Any], flags: dict[str, tp.Any]
) -> tuple[bool, bool, bool | None]:
    """``(hijax, ref, eager_sharding-or-None)``; checks them, remaps sharding keys."""
    if metadata:  # (every Variable is built here: the common no-metadata case is short)
        for legacy, key in (("is_hijax", "hijax"), ("has_ref", "ref")):
            if legacy in metadata:  # older Flax spellings
                old = metadata.pop(legacy)
                flags[key] = old if flags[key] is None else flags[key]
        metadata.pop("is_mutable", None)
    hijax = flags["hijax"]
    if hijax is None:  # flag_default, inline
        stack = var_flags.hijax
        hijax = stack[-1] if stack else False
    if hijax and not hijax_supported():  # pragma: no cover
        raise hijax_error(f"{type(var).__name__}(...)")
    ref = flags["ref"]
    if ref is None:
        stack = var_flags.ref
        ref = stack[-1] if stack else False
    ref = bool(ref)
    if is_array_ref(value):
        raise ValueError(
            f"Cannot pass a Ref directly into Variable constructor: "
            f"{type(var).__name__}(...) got a jax Ref as its value.\n"
            "Expected: an array (the Variable makes the reference itself).\n"
            f"Fix: {type(var).__name__}(ref_value[...], ref=True)."
        )
    if metadata and (SHARDING_ALIASES[0] in metadata or SHARDING_ALIASES[1] in metadata):
        remap_sharding(metadata)
    eager = flags["eager_sharding"]
    return bool(hijax), ref, None if eager is None else bool(eager)


def is_special(metadata: dict[str, tp.Any]) -> bool:
    """Whether reads/writes must take the general path (a Ref, a box or hooks)."""
    return bool(metadata.get("ref") or metadata.get("hijax")) or not _HOOKS.isdisjoint(metadata)


def special_shape(value: tp.Any) -> tp.Any:
    """The shape of the value of a Variable taking the general path (a Ref, a box)."""
    value = unbox(value)
    return jax.typeof(value).shape if is_array_ref(value) else jax.numpy.shape(value)


def set_raw(var: tp.Any, value: tp.Any) -> None:
    """``set_raw_value`` of a Variable taking the general path: a hijax Variable
    given a plain value writes it into its box (a box given replaces the box)."""
    current = var._raw_value
    if is_box(current) and not is_box(value):
        current.set(value)
    else:
        object.__setattr__(var, "_raw_value", value)


# ------------------------------------------------------------------ value access
def set_at(current: tp.Any, index: tp.Any, value: tp.Any) -> tp.Any:
    """``current`` with ``current[index] = value``: a new array for JAX arrays (a
    same-shape, same-dtype array replaces it outright), in place otherwise."""
    if isinstance(current, jax.Array):
        if (
            index is Ellipsis
            and isinstance(value, jax.Array)
            and value.shape == current.shape
            and value.dtype == current.dtype
        ):
            return value
        return current.at[index].set(value)
    if index is Ellipsis:
        return value
    current[index] = value
    return current


def update_hijax(var: tp.Any, value: tp.Any) -> None:
    """``nnx.update`` of hijax Variable ``var`` from ``value`` (a Variable or a raw
    value): the value goes into ``var``'s box, other metadata is taken over, and
    ``var`` keeps ``hijax=True`` (and its ``ref`` flag)."""
    if not hasattr(value, "_var_metadata"):
        set_raw(var, unbox(value))
        return
    set_raw(var, unbox(value._raw_value))
    if value._var_metadata != var._var_metadata:
        metadata = dict(value._var_metadata)
        metadata["hijax"], metadata["ref"] = True, bool(var._var_metadata.get("ref"))
        object.__setattr__(var, "_var_metadata", metadata)
        var._metadata_changed()


def special_get(var: tp.Any, value: tp.Any, index: tp.Any) -> tp.Any:
    if is_box(value):
        value = value.get()
    if is_array_ref(value):
        value = value[...] if index is None else value[index]
    elif index is not None and index is not Ellipsis:
        value = value[index]
    hooks = var._var_metadata.get("on_get_value")
    if hooks:
        value = run_value_hooks(hooks, var, value)
    return value


def special_set(var: tp.Any, value: tp.Any, index: tp.Any) -> None:
    hooks = var._var_metadata.get("on_set_value")
    if hooks:
        value = run_value_hooks(hooks, var, value)
    current = box = var._raw_value
    if is_box(box):
        current = box.get()
    if is_array_ref(current):
        current[... if index is None else index] = value
    elif box is not current:  # a hijax Variable: write the new value into its box
        box.set(value if index is None else set_at(_copied(current), index, value))
    elif index is None:
        object.__setattr__(var, "_raw_value", value)
    else:
        object.__setattr__(var, "_raw_value", set_at(current, index, value))


def _copied(value: tp.Any) -> tp.Any:
    """A shallow copy of a container value read out of a box (mutated then set back:
    the box's own object must not change under a running trace)."""
    return type(value)(value) if isinstance(value, (dict, list)) else value


# ---------------------------------------------------------------------- metadata
def get_metadata(var: tp.Any, name: str | None, default: tp.Any, exclude: bool | None) -> tp.Any:
    metadata: dict[str, tp.Any] = var._var_metadata
    if name is None:
        if default is not MISSING:
            raise TypeError(
                f"{var._describe()}.get_metadata: cannot provide a default value when "
                f"'name' is not provided (found default={default!r}). Fix: "
                "get_metadata(name, default), or get_metadata() for all metadata."
            )
        out = dict(metadata)
        if exclude:
            for key in REQUIRED_KEYS:
                out.pop(key, None)
        return out
    if exclude is not None:
        raise TypeError(
            f"{var._describe()}.get_metadata: cannot specify both 'name' and "
            "'exclude_required' arguments. Fix: drop exclude_required when reading one "
            "entry."
        )
    if name in metadata:
        return metadata[name]
    if default is not MISSING:
        return default
    raise MetadataKeyError(
        f"{var._describe()} has no metadata {name!r}; its metadata: {sorted(metadata)}. "
        f"Fix: set it first (v.set_metadata({name}=...)) or pass a default: "
        f"v.get_metadata({name!r}, default)."
    )


def _check_fixed(var: tp.Any, key: str, value: tp.Any) -> None:
    current = var._var_metadata.get(key, flag_default(key))
    if value != current:
        raise ValueError(
            f"Cannot change `{key}` metadata, expected {current}, got {value}: "
            f"{var._describe()} was created with {key}={current!r}.\n"
            f"Fix: create a new Variable: v.copy({key}={value!r}) for ref, or "
            f"{type(var).__name__}(v[...], {key}={value!r})."
        )


def set_metadata(var: tp.Any, args: tuple[tp.Any, ...], kwargs: dict[str, tp.Any]) -> None:
    metadata: dict[str, tp.Any] = var._var_metadata
    if args and kwargs:
        raise TypeError(
            f"{var._describe()}.set_metadata: cannot mix positional and keyword "
            f"arguments (found {args!r} and {sorted(kwargs)}). Fix: "
            "v.set_metadata(name=value) or v.set_metadata(name, value)."
        )
    if len(args) == 1 and isinstance(args[0], tp.Mapping):
        new = dict(args[0])
        remap_sharding(new)
        for key in REQUIRED_KEYS:
            if key in new:
                _check_fixed(var, key, new[key])
            else:
                new[key] = metadata.get(key, flag_default(key))
        object.__setattr__(var, "_var_metadata", new)
        return
    if len(args) == 2 and isinstance(args[0], str):
        kwargs = {args[0]: args[1]}
    elif args or not kwargs:
        raise TypeError(
            f"{var._describe()}.set_metadata takes a mapping, (name, value), or at "
            f"least one keyword argument; found {args!r}. Fix: v.set_metadata(name=value)."
        )
    remap_sharding(kwargs)
    for key in ("hijax", "ref"):
        if key in kwargs:
            _check_fixed(var, key, kwargs[key])
    metadata.update(kwargs)


def del_metadata(var: tp.Any, name: str) -> None:
    metadata: dict[str, tp.Any] = var._var_metadata
    if name in ("hijax", "ref"):
        raise ValueError(
            f"Cannot delete `{name}` metadata: every Variable has it ({var._describe()}). "
            f"Fix: leave it; set other metadata with v.set_metadata(...)."
        )
    if name not in metadata:
        raise MetadataKeyError(
            f"{var._describe()} has no metadata {name!r}; its metadata: "
            f"{sorted(metadata)}. Fix: check has_metadata({name!r}) first."
        )
    del metadata[name]


def copy_variable(var: tp.Any, value: tp.Any, copy_ref: bool, updates: dict[str, tp.Any]) -> tp.Any:
    metadata = {**var._var_metadata, **updates}
    if value is MISSING or value is Ellipsis:
        value = metadata.pop("value", unbox(var._raw_value))
    metadata.pop("value", None)
    if SHARDING_ALIASES[0] in updates or SHARDING_ALIASES[1] in updates:
        remap_sharding(metadata)
    if copy_ref and is_array_ref(value):
        value = value[...]
    if copy_ref and metadata.get("ref"):
        value = jax.new_ref(value)
    return type(var).from_metadata(value, metadata)


def convert_mode(var: tp.Any, requested: dict[str, bool], where: str) -> tp.Any:
    """``var`` in the mode ``requested`` (``hijax``/``ref``/``mutable`` flags), as
    ``nnx.vars_as`` gives it: ``ref`` and ``hijax`` convert (a new Variable of the
    same type and metadata whose value is copied into, or read out of, a fresh
    ``jax.new_ref`` or hi-type box); ``mutable=False`` has no counterpart and raises."""
    if requested.get("mutable", True) is not True:
        raise ValueError(
            f"nnx.vars_as(mutable={requested['mutable']}): {where} "
            f"({type(var).__name__}) cannot be converted: expected a Variable type "
            "supporting mutable=False, found a Variable with mutable=True (the only "
            "mutable mode here; ref=True/False and hijax=True/False convert). Fix: drop "
            "mutable=, or ask for ref=True to hold the value in a jax.new_ref updated "
            "in place."
        )
    updates: dict[str, tp.Any] = {
        key: bool(requested[key])
        for key in ("hijax", "ref")
        if key in requested and bool(var._var_metadata.get(key)) != bool(requested[key])
    }
    return copy_variable(var, MISSING, True, updates) if updates else var


# ---------------------------------------------------------------------- errors
def leak_error(var: tp.Any) -> _errors.TraceLeakError:
    return _errors.TraceLeakError(
        f"{var._describe()} holds a JAX tracer from a trace that has finished "
        "(a value computed inside jax.jit/grad/vmap was stored on an object "
        "that outlives the transform).\n"
        "Expected: a concrete array outside of transforms.\n"
        "Fix: pass the object into the transform as an argument (nnx.jit, "
        "nnx.grad, ... carry updates back automatically) or return the value "
        "from the transformed function and assign it outside. To see where this "
        "Variable is stored, call nnx.state(model): that error names its path."
    )


def attribute_error(var: tp.Any, name: str) -> AttributeError:
    value = unbox(var._raw_value)
    return AttributeError(
        f"{type(var).__name__} has no attribute or metadata {name!r}, and its "
        f"value of type {type(value).__name__} has no attribute {name!r} either "
        f"(its metadata: {sorted(var._var_metadata)}). Fix: check the spelling, or set "
        f"metadata with v.set_metadata({name}=...)."
    )


# ---------------------------------------------------------------------- repr
_REPR_DEFAULTS = (("hijax", False), ("ref", False), ("eager_sharding", True))


def shown_metadata(var: tp.Any) -> dict[str, tp.Any]:
    """The metadata a display shows: without ``hijax``/``ref``/``eager_sharding``
    when they have their default values (as Flax's repr)."""
    metadata = dict(var._var_metadata)
    for key, default in _REPR_DEFAULTS:
        if key in metadata and metadata[key] is default:
            del metadata[key]
    return metadata


def variable_repr(var: tp.Any, value_repr: tp.Callable[[tp.Any], str]) -> str:
    """``Param(value=Array(shape=(2,), dtype=float32), tag='a')``."""
    value = unbox(var._raw_value)
    parts = [f"value={value_repr(value[...] if is_array_ref(value) else value)}"]
    parts += [f"{k}={v!r}" for k, v in sorted(shown_metadata(var).items())]
    return f"{type(var).__name__}({', '.join(parts)})"


# ---------------------------------------------------------------------- traces
def check_trace(var: tp.Any, action: str) -> None:
    """Raise TraceContextError when ``var`` is mutated inside a JAX transform it
    was not created in (Flax: "Cannot mutate ... from a different trace level").
    Called only when the trace tokens differ (see ``nnx_graph._traces``)."""
    created = var._nnx_trace
    if var._var_metadata.get("hijax"):
        return  # a box is written through JAX itself, under any trace
    now = current_trace()
    if created is None or now == created or (_is_top_level(now) and _is_top_level(created)):
        return  # e.g. another thread, or a finished top-level context
    raise _errors.TraceContextError(
        f"Cannot mutate {type(var).__name__} from a different trace level: tried to "
        f"{action} of {var._describe()} inside a JAX transform (jax.jit, jax.grad, "
        "jax.vmap, ...) it was not created in or passed to.\n"
        "Expected: Variables changed inside a transform are its inputs (or made inside).\n"
        "Found: a Variable the function closes over (a closure or global).\n"
        "Fix: pass the Module or Variable as an argument to the transformed function "
        "(nnx.jit, nnx.grad, ... carry updates back; with jax.jit, return the new "
        "value and assign it outside)."
    )
