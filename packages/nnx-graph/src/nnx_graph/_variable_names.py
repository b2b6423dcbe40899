"""Collection names of Variable types (``Param`` <-> ``'params'``) and the
compatibility ``var_defaults`` flags."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing as tp

from nnx_graph._values import var_flags
from nnx_graph._variable_meta import MISSING
from nnx_graph._variables import BatchStat, Cache, Intermediate, Param, Perturbation, Variable

A = tp.TypeVar("A")
V = tp.TypeVar("V", bound="Variable[tp.Any]")

__all__ = [
    "AbstractVariable",
    "VarDefaults",
    "VarDefaultsContext",
    "register_variable_name",
    "var_defaults",
    "variable_name_from_type",
    "variable_type_from_name",
]


_NAME_TO_TYPE: dict[str, type[Variable[tp.Any]]] = {}
_TYPE_TO_NAME: dict[type[Variable[tp.Any]], str] = {}


@tp.overload
def register_variable_name(name: str, typ: type[V], *, overwrite: bool = False) -> type[V]: ...
@tp.overload
def register_variable_name(
    name: str, *, overwrite: bool = False
) -> tp.Callable[[type[V]], type[V]]: ...
def register_variable_name(name: str, typ: tp.Any = MISSING, *, overwrite: bool = False) -> tp.Any:
    """Associate a collection name (e.g. ``'params'``) with a Variable type and
    return the type; without ``typ`` it is a class decorator.

    Example::

        >>> import nnx_graph as nnx
        >>> @nnx.register_variable_name("stats")
        ... class Stat(nnx.Variable): pass
        >>> nnx.variable_type_from_name("stats") is Stat
        True
    """
    if typ is MISSING:
        return functools.partial(register_variable_name, name, overwrite=overwrite)
    if not overwrite and name in _NAME_TO_TYPE:
        raise ValueError(
            f"Name {name} already mapped to type {_NAME_TO_TYPE[name].__name__}: "
            f"register_variable_name({name!r}, {typ.__name__}) found the name taken.\n"
            "Fix: pick another name, or call register_variable_name() with "
            "`overwrite=True`."
        )
    _NAME_TO_TYPE[name] = typ
    _TYPE_TO_NAME[typ] = name
    return typ


def variable_name_from_type(typ: type[Variable[tp.Any]], /, *, allow_register: bool = False) -> str:
    """The collection name of a Variable type (``Param`` -> ``'params'``).

    Unregistered types raise ValueError, or are registered under their class name
    with ``allow_register=True``.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.variable_name_from_type(nnx.BatchStat)
        'batch_stats'
    """
    if typ in _TYPE_TO_NAME:
        return _TYPE_TO_NAME[typ]
    if not allow_register:
        raise ValueError(
            f"Type {typ.__name__} is not registered in the registry: no collection "
            "name maps to it.\n"
            f"Fix: nnx.register_variable_name('name', {typ.__name__}), or pass "
            "allow_register=True to register it under its class name."
        )
    name = typ.__name__
    if name in _NAME_TO_TYPE:
        raise ValueError(
            f"Name {name} is already registered in the registry as "
            f"{_NAME_TO_TYPE[name].__name__}; it cannot also name {typ.__name__} "
            f"(another class with the same name).\nFix: register {typ.__name__} "
            "under another name with nnx.register_variable_name."
        )
    register_variable_name(name, typ)
    return name


def variable_type_from_name(
    name: str,
    /,
    *,
    base: type[Variable[tp.Any]] = Variable,
    allow_register: bool = False,
) -> type[Variable[tp.Any]]:
    """The Variable type registered under a collection name (``'params'`` -> ``Param``);
    with ``allow_register=True`` an unknown name gets a new subclass of ``base``.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.variable_type_from_name("params") is nnx.Param
        True
        >>> t = nnx.variable_type_from_name("scales", base=nnx.Param, allow_register=True)
        >>> issubclass(t, nnx.Param), t.__name__
        (True, 'scales')
    """
    if name in _NAME_TO_TYPE:
        return _NAME_TO_TYPE[name]
    if allow_register:
        typ = type(name, (base,), {"__slots__": ()})
        return register_variable_name(name, typ)
    raise ValueError(
        f"Name {name} is not registered in the registry: no Variable type is "
        f"registered under {name!r} (known names: {sorted(_NAME_TO_TYPE)}).\n"
        f"Fix: nnx.register_variable_name({name!r}, YourType), or set "
        "allow_register=True."
    )


for _n, _t in {
    "params": Param,
    "batch_stats": BatchStat,
    "cache": Cache,
    "intermediates": Intermediate,
    "perturbations": Perturbation,
}.items():
    register_variable_name(_n, _t)


@dataclasses.dataclass(frozen=True)
class VarDefaults(tp.Mapping[str, tp.Any]):
    """The default Variable flags, as :func:`var_defaults` reports them; also a
    read-only mapping (``dict(var_defaults())``).

    Example::

        >>> import nnx_graph as nnx
        >>> dict(nnx.var_defaults())
        {'hijax': False, 'ref': False}
    """

    hijax: bool
    ref: bool

    def __getitem__(self, key: str) -> tp.Any:
        if key not in ("hijax", "ref"):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> tp.Iterator[str]:
        return iter(("hijax", "ref"))

    def __len__(self) -> int:
        return 2

    @property
    def has_ref(self) -> bool:
        """Older name of ``ref``."""
        return self.ref


def _current() -> VarDefaults:
    return VarDefaults(
        hijax=var_flags.hijax[-1] if var_flags.hijax else False,
        ref=var_flags.ref[-1] if var_flags.ref else False,
    )


def _push(stack: list[bool], value: bool | None) -> bool | None:
    """Set ``value`` as the current setting; returns the one it replaces."""
    if value is None:
        return None
    previous = stack[-1] if stack else None
    if stack:
        stack[-1] = value
    else:
        stack.append(value)
    return previous


class VarDefaultsContext:
    """Returned by ``var_defaults(...)`` with settings: the settings apply at once;
    used with ``with`` they are undone on exit; used as a decorator they apply only
    during calls of the decorated function."""

    def __init__(self, changes: dict[str, tuple[bool | None, bool]]) -> None:
        self.changes = changes  # flag -> (previous, new)

    def __enter__(self) -> VarDefaults:
        for key, (previous, _) in self.changes.items():
            if previous is not None:
                getattr(var_flags, key).insert(-1, previous)
        return _current()

    def __exit__(self, *exc: tp.Any) -> None:
        for key in self.changes:
            getattr(var_flags, key).pop()

    def __call__(self, f: tp.Callable[..., tp.Any]) -> tp.Callable[..., tp.Any]:
        for key, (previous, _) in self.changes.items():  # decorating changes nothing
            stack = getattr(var_flags, key)
            stack.pop()
            if previous is not None:
                stack.append(previous)
        changes = self.changes

        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            for key, (_, new) in changes.items():
                getattr(var_flags, key).append(new)
            try:
                return f(*args, **kwargs)
            finally:
                for key in changes:
                    getattr(var_flags, key).pop()

        return wrapper


def var_defaults(*, hijax: bool | None = None, ref: bool | None = None, **legacy: bool) -> tp.Any:
    """Read or set the default Variable flags, as a function, a context manager or
    a decorator. ``ref=True`` makes new Variables hold their values in JAX
    references; ``hijax=True`` makes them hold their values in JAX hi-type boxes
    (updated in place through plain ``jax.jit``/``jax.grad``).

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.var_defaults().ref
        False
        >>> with nnx.var_defaults(ref=True):
        ...     print(nnx.var_defaults().ref)
        True
        >>> nnx.var_defaults().ref
        False
    """
    unknown = set(legacy) - {"has_ref"}
    if unknown:
        raise TypeError(
            f"var_defaults got unknown setting {sorted(unknown)[0]!r}; expected one of "
            "['hijax', 'ref']. Fix: use one of those."
        )
    if "has_ref" in legacy and ref is None:
        ref = legacy["has_ref"]
    if hijax is None and ref is None:
        return _current()
    changes: dict[str, tuple[bool | None, bool]] = {}
    for key, value in (("hijax", hijax), ("ref", ref)):
        if value is not None:
            changes[key] = (_push(getattr(var_flags, key), bool(value)), bool(value))
    return VarDefaultsContext(changes)


class AbstractVariable(tp.Generic[A]):
    """The abstract type of a Variable: its class plus, optionally, the pytree
    structure and abstract leaves (``jax.ShapeDtypeStruct``/avals) of its value.

    In Flax this is the JAX type of a hijax Variable inside a trace; an nnx hijax
    Variable is traced as a Variable around a JAX box instead, so here it is a
    plain, hashable description, e.g. for caching by Variable type and shape.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> from nnx_graph.variablelib import AbstractVariable
        >>> v = nnx.Param(jnp.ones((2, 3)))
        >>> leaves, treedef = jax.tree.flatten(v[...])
        >>> a = AbstractVariable(nnx.Param, treedef, tuple(map(jax.typeof, leaves)), False)
        >>> a, a.ref
        (Param(), False)
    """

    __slots__ = ("_var_type", "_treedef", "_leaves", "has_qdd", "_ref")

    def __init__(
        self,
        var_type: type[Variable[A]],
        treedef: tp.Any,
        leaves: tuple[tp.Any, ...] | None,
        has_qdd: bool,
        *,
        ref: bool = False,
    ) -> None:
        if (treedef is None) != (leaves is None):
            raise ValueError(
                "treedef and leaves must be both provided or both None: "
                f"AbstractVariable({var_type.__name__}, ...) got treedef={treedef!r} and "
                f"leaves={leaves!r}.\nFix: pass both (jax.tree.flatten of the value) "
                "or neither."
            )
        self._var_type, self._treedef, self._leaves = var_type, treedef, leaves
        self.has_qdd, self._ref = has_qdd, ref

    @property
    def ref(self) -> bool:
        """Whether the described Variable holds its value in a JAX reference."""
        return self._ref

    @property
    def hijax(self) -> bool:
        """Always ``False``: a description, not a traced hijax Variable."""
        return False

    @property
    def type(self) -> type[Variable[A]]:
        """The described Variable class."""
        return self._var_type

    def from_metadata(self, value: A, metadata: dict[str, tp.Any]) -> Variable[A]:
        """A Variable of the described type holding ``value`` with ``metadata``."""
        return self._var_type.from_metadata(value, metadata)

    def _key(self) -> tuple[tp.Any, ...]:
        return (self._var_type, self._treedef, self._leaves, self.has_qdd, self._ref)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AbstractVariable) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def str_short(self, short_dtypes: bool = False, **_: tp.Any) -> str:
        return f"{self._var_type.__name__}()"

    __str__ = __repr__ = str_short


def _abstract_only(name: str) -> tp.Callable[..., tp.Any]:
    def method(self: AbstractVariable[tp.Any], *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        raise TypeError(
            f"AbstractVariable.{name}: {self!r} describes a Variable type; it holds no "
            f"value. In Flax, {name} acts on traced hijax Variables; in nnx those are "
            "Variables.\nExpected: a Variable.\nFix: call "
            f"{name} on a Variable (e.g. one built with abstract.from_metadata(value, "
            "metadata))."
        )

    method.__name__ = method.__qualname__ = name
    return method


def _no_array_attribute(name: str) -> property:
    def getter(self: AbstractVariable[tp.Any]) -> tp.Any:
        raise AttributeError(
            f"AbstractVariable has no {name}: it describes the Variable, not an array "
            "(its leaves are in the constructor's leaves argument)."
        )

    return property(getter)


# Flax's hijax-only members: present, and each says why it cannot act here.
for _name in [
    "__jax_array__",
    "add_axis",
    "copy",
    "copy_from",
    "create_value",
    "cur_qdd",
    "get_metadata",
    "get_raw_value",
    "get_value",
    "lo_ty_qdd",
    "new_from_loval",
    "read_loval",
    "remove_axis",
    "replace",
    "set_metadata",
    "set_raw_value",
    "set_value",
    "to_state",
    "to_tangent_aval",
    "update_from_loval",
    "update_from_state",
]:
    setattr(AbstractVariable, _name, _abstract_only(_name))
# The hijax-only members taking arguments show Flax's parameters; cur_qdd is a property.
for _name, _params in {
    "lo_ty_qdd": ("variable_state",),
    "new_from_loval": ("variable_state", "*lo_vals"),
    "read_loval": ("variable_state", "variable"),
    "update_from_loval": ("box_state", "variable", "*lo_vals"),
}.items():
    _P = inspect.Parameter
    getattr(AbstractVariable, _name).__signature__ = inspect.Signature(
        [_P("self", _P.POSITIONAL_OR_KEYWORD)]
        + [
            _P(p.lstrip("*"), _P.VAR_POSITIONAL if p.startswith("*") else _P.POSITIONAL_OR_KEYWORD)
            for p in _params
        ]
    )
setattr(AbstractVariable, "cur_qdd", property(_abstract_only("cur_qdd")))  # noqa: B010
for _name in ("dtype", "ndim", "shape", "size"):
    setattr(AbstractVariable, _name, _no_array_attribute(_name))
