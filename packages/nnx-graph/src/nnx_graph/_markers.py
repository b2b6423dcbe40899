"""Declaring attribute kinds: ``nnx.data(...)`` / ``nnx.static(...)`` markers,
``nnx.Data[...]`` / ``nnx.Static[...]`` annotations, their per-class table, and
``nnx.dataclass``. The Pytree layer reads these; they depend on nothing above."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing as tp

__all__ = ["Data", "Static", "data", "dataclass", "static"]

A = tp.TypeVar("A")
T = tp.TypeVar("T")


class _Marker:
    __slots__ = ("value",)

    def __init__(self, value: tp.Any) -> None:
        self.value = value


class _DataMarker(_Marker):
    pass


class _StaticMarker(_Marker):
    pass


_NO_VALUE = object()


def data(value: A = _NO_VALUE, /, **field_kwargs: tp.Any) -> A:  # type: ignore[assignment]
    """Mark a value as data when assigning it: ``self.layers = nnx.data([...])``.

    Without a value (in a class body or ``nnx.dataclass`` field), returns a dataclass
    field marked as data.

    Example::

        >>> import nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.count = nnx.data(0)
        >>> nnx.state(M())["count"]
        0
    """
    if value is _NO_VALUE:
        metadata = {**field_kwargs.pop("metadata", {}), "nnx_data": True}
        return dataclasses.field(metadata=metadata, **field_kwargs)  # type: ignore[no-any-return]
    return _DataMarker(value)  # type: ignore[return-value]


def static(value: A = _NO_VALUE, /, **field_kwargs: tp.Any) -> A:  # type: ignore[assignment]
    """Mark a value as static (part of the structure, never traced). The value
    must not hold arrays or Variables (ValueError).

    Example::

        >>> import nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.shape = nnx.static((2, 3))
        >>> len(nnx.state(M()))
        0
    """
    if value is _NO_VALUE:
        metadata = {**field_kwargs.pop("metadata", {}), "nnx_data": False}
        return dataclasses.field(metadata=metadata, **field_kwargs)  # type: ignore[no-any-return]
    return _StaticMarker(value)  # type: ignore[return-value]


if tp.TYPE_CHECKING:
    Data = tp.Annotated[T, "nnx_data"]
    Static = tp.Annotated[T, "nnx_static"]
else:

    class _AnnotationMarker:
        def __init__(self, name: str) -> None:
            self.name = name

        def __getitem__(self, item: tp.Any) -> tp.Any:
            return tp.Annotated[item, self.name]

        def __repr__(self) -> str:
            return f"nnx.{self.name.split('_')[1].title()}"

    Data = _AnnotationMarker("nnx_data")
    Static = _AnnotationMarker("nnx_static")


_DATA_ANNOTATION = re.compile(r"(?<![\w])Data\[")
_STATIC_ANNOTATION = re.compile(r"(?<![\w])Static\[")


def _annotation_kind(annotation: tp.Any) -> bool | None:
    """True (``nnx.Data[...]``) / False (``nnx.Static[...]``) / None (neither)."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    if "nnx_data" in text or _DATA_ANNOTATION.search(text):
        return True
    if "nnx_static" in text or _STATIC_ANNOTATION.search(text):
        return False
    return None


def _class_kinds(cls: type) -> dict[str, bool]:
    """Attribute kinds a class declares: ``x: nnx.Data[...]`` / ``nnx.Static[...]``
    annotations and ``x = nnx.data()`` / ``nnx.static()`` class-body markers.

    Computed once per class (attribute classification is on the traversal hot path).
    Subclasses override their bases.
    """
    kinds: dict[str, bool] = {}
    for klass in reversed(cls.__mro__):
        for name, annotation in inspect.get_annotations(klass).items():
            kind = _annotation_kind(annotation)
            if kind is None:
                kinds.pop(name, None)
            else:
                kinds[name] = kind
        for name, value in klass.__dict__.items():
            if isinstance(value, dataclasses.Field) and "nnx_data" in value.metadata:
                kinds[name] = bool(value.metadata["nnx_data"])
    return kinds


# ------------------------------------------------------------------ dataclass
@tp.dataclass_transform(field_specifiers=(dataclasses.field, data, static))
def dataclass(
    cls: type[T] | None = None,
    /,
    *,
    init: bool = True,
    eq: bool = True,
    order: bool = False,
    unsafe_hash: bool = False,
    match_args: bool = True,
    kw_only: bool = False,
    slots: bool = False,
    weakref_slot: bool = False,
) -> tp.Any:
    """``dataclasses.dataclass`` for Pytree subclasses (the Pytree repr is kept);
    ``nnx.data()`` / ``nnx.static()`` mark fields. Works with and without arguments.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> @nnx.dataclass
        ... class Pair(nnx.Pytree):
        ...     a: jnp.ndarray
        ...     label: str = nnx.static(default="x")
        >>> Pair(jnp.ones(1)).label
        'x'
    """
    options = {
        "init": init,
        "eq": eq,
        "order": order,
        "unsafe_hash": unsafe_hash,
        "match_args": match_args,
        "kw_only": kw_only,
        "slots": slots,
        "weakref_slot": weakref_slot,
    }

    def wrap(klass: type[T]) -> type[T]:
        out: tp.Any = dataclasses.dataclass(repr=False, **options)(klass)
        explicit = {
            f.name: f.metadata["nnx_data"]
            for f in dataclasses.fields(out)
            if "nnx_data" in f.metadata
        }
        if explicit:
            original_init: tp.Callable[..., None] = out.__init__

            def __init__(self: tp.Any, *args: tp.Any, **kw: tp.Any) -> None:
                object.__setattr__(self, "_nnx_explicit", {**self._nnx_explicit, **explicit})
                original_init(self, *args, **kw)

            out.__init__ = __init__
        return tp.cast("type[T]", out)

    return wrap if cls is None else wrap(cls)


# ------------------------------------------------------------ attribute-kind errors
# Messages of the data/static checks of ``Pytree.__setattr__`` and ``check_pytree``.
# Each carries Flax 0.12's key phrase, then the object path, what was expected, what
# was found and the fix.
def _where(obj: object, name: str) -> str:
    return f"{type(obj).__name__}.{name}"


def static_to_data_message(obj: object, name: str, value: object) -> str:
    if isinstance(value, (list, tuple, dict)):  # a container holding data (Flax's wording)
        from nnx_graph._kinds import data_types  # _kinds imports this module

        return data_in_static_message(obj, name, value, data_types(value))
    return (
        f"Cannot assign data value of type '{type(value).__name__}' to static attribute "
        f"'{name}' of Pytree type '{type(obj).__name__}': {_where(obj, name)} holds a "
        "static value (no arrays or Variables), so it is part of the structure; an "
        "attribute does not change kind static -> data on assignment. Expected a static "
        f"value, found a {type(value).__name__}. Fix: declare it data when assigning, "
        f"`self.{name} = nnx.data(...)`, or delete it first (`del self.{name}`)."
    )


def data_in_static_message(obj: object, name: str, value: object, found: list[str]) -> str:
    if not isinstance(value, (list, tuple, dict)):  # an array/Variable itself (Flax's wording)
        return unexpected_data_message(obj, name, value)
    base = next((b.__name__ for b in type(obj).__mro__[1:] if hasattr(b, "_nnx_is_pytree")), "")
    return (
        f"Found data on value of type '{type(value).__name__}' assigned to static "
        f"attribute '{name}' of Pytree type '{type(obj).__name__}': {_where(obj, name)} is "
        "declared static (nnx.Static[...] / nnx.static()), but the value holds "
        f"{', '.join(sorted(found))}. Expected a value without arrays or Variables. Fix: "
        f"remove the data from it, assign `self.{name} = nnx.data(...)`, declare the "
        f"class attribute data (`{name}: nnx.Data[...]`), or opt out with "
        f"`class {type(obj).__name__}({base}, pytree=False)`."
    )


def opaque_pytree_message(obj: object, name: str, value: object, found: list[str]) -> str:
    typ = type(value).__name__
    return (
        f"Cannot store the JAX pytree of type '{typ}' holding {', '.join(found)} as a "
        f"static attribute: {_where(obj, name)} would keep its arrays out of nnx.state, "
        f"nnx.split and the transforms (nnx does not traverse types registered with JAX "
        f"only). Expected a graph node, a Variable, an array or a list/tuple/dict of them. "
        f"Fix: make '{typ}' an nnx.Pytree, or register it with "
        f"nnx.graphlib.register_pytree_node_type({typ}, flatten, unflatten) and assign "
        f"`self.{name} = nnx.data(value)`."
    )


def static_marker_message(obj: object, name: str, value: object, found: list[str]) -> str:
    return (
        f"Found data in value of type '{type(value).__name__}' annotated with "
        f"nnx.static(...) when setting attribute '{name}' of Pytree type "
        f"'{type(obj).__name__}': {_where(obj, name)} would be static, but the value holds "
        f"{', '.join(sorted(found))}. Expected nnx.static(...) to wrap a value without "
        f"arrays or Variables. Fix: drop nnx.static(...) (or use nnx.data(...)) for "
        "values holding state."
    )


def nested_marker_message(obj: object, name: str, value: object) -> str:
    return (
        f"Found unexpected tags on attribute '{_where(obj, name)}': nnx.data(...) / "
        "nnx.static(...) must be assigned to a Pytree attribute directly, found one "
        f"inside a {type(value).__name__}. Expected `self.{name} = nnx.data(value)`. Fix: "
        f"wrap the whole value (`self.{name} = nnx.data([...])`) instead of its items."
    )


def unexpected_data_message(obj: object, name: str, value: object) -> str:
    return (
        f"Found unexpected data on value of type {type(value).__name__} in static "
        f"attribute '{name}' of Pytree type '{type(obj).__name__}': {_where(obj, name)} is "
        "static but holds arrays or Variables. Expected static attributes to hold no "
        f"data. Fix: assign it with `self.{name} = nnx.data(...)`, declare it "
        f"`{name}: nnx.Data[...]`, or remove the data from it."
    )
