"""Collection names of Variable types (``Param`` <-> ``'params'``) and the
compatibility ``var_defaults`` flags."""

from __future__ import annotations

import functools
import typing as tp

from nnx_graph._variables import BatchStat, Cache, Intermediate, Param, Perturbation, Variable

__all__ = [
    "VarDefaults",
    "VarDefaultsContext",
    "register_variable_name",
    "var_defaults",
    "variable_name_from_type",
    "variable_type_from_name",
]


_NAME_TO_TYPE: dict[str, type[Variable[tp.Any]]] = {}
_TYPE_TO_NAME: dict[type[Variable[tp.Any]], str] = {}


def register_variable_name(
    name: str, typ: type[Variable[tp.Any]], *, overwrite: bool = False
) -> None:
    """Associate a collection name (e.g. ``'params'``) with a Variable type.

    Example::

        >>> import nnx_graph as nnx
        >>> class Stat(nnx.Variable): pass
        >>> nnx.register_variable_name("stats", Stat)
        >>> nnx.variable_type_from_name("stats") is Stat
        True
    """
    if not overwrite and name in _NAME_TO_TYPE and _NAME_TO_TYPE[name] is not typ:
        raise ValueError(
            f"Variable name {name!r} is already registered to "
            f"{_NAME_TO_TYPE[name].__name__}; found a second type {typ.__name__}. "
            "Fix: pick another name or pass overwrite=True."
        )
    _NAME_TO_TYPE[name] = typ
    _TYPE_TO_NAME[typ] = name


def variable_name_from_type(typ: type[Variable[tp.Any]], /, *, allow_register: bool = False) -> str:
    """The collection name of a Variable type (``Param`` -> ``'params'``).

    Unregistered types use their class name.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.variable_name_from_type(nnx.BatchStat)
        'batch_stats'
    """
    for klass in typ.__mro__:
        if klass in _TYPE_TO_NAME and (klass is typ or not allow_register):
            return _TYPE_TO_NAME[klass] if klass is typ else typ.__name__
    if allow_register:
        register_variable_name(typ.__name__, typ)
    return typ.__name__


def variable_type_from_name(
    name: str, /, *, allow_register: bool = False
) -> type[Variable[tp.Any]]:
    """The Variable type registered under a collection name (``'params'`` -> ``Param``).

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.variable_type_from_name("params") is nnx.Param
        True
    """
    if name in _NAME_TO_TYPE:
        return _NAME_TO_TYPE[name]
    if allow_register:
        typ = type(name, (Variable,), {"__slots__": ()})
        register_variable_name(name, typ)
        return typ
    raise KeyError(
        f"No Variable type is registered under the name {name!r}; known names: "
        f"{sorted(_NAME_TO_TYPE)}. Fix: nnx.register_variable_name({name!r}, YourType)."
    )


for _n, _t in {
    "params": Param,
    "batch_stats": BatchStat,
    "cache": Cache,
    "intermediates": Intermediate,
    "perturbations": Perturbation,
}.items():
    register_variable_name(_n, _t)


class VarDefaults(tp.NamedTuple):
    """The default Variable flags (recorded for Flax compatibility; this library
    has one Variable implementation, so they change nothing else)."""

    hijax: bool = False
    ref: bool = False

    @property
    def has_ref(self) -> bool:
        """Older name of ``ref``."""
        return self.ref


_DEFAULTS: list[VarDefaults] = [VarDefaults()]


class VarDefaultsContext:
    """Returned by ``var_defaults(...)`` with settings: the settings apply at once;
    used with ``with`` they are undone on exit; used as a decorator they apply only
    during calls of the decorated function."""

    def __init__(self, previous: VarDefaults, new: VarDefaults) -> None:
        self.previous, self.new = previous, new

    def __enter__(self) -> VarDefaults:
        return self.new

    def __exit__(self, *exc: tp.Any) -> None:
        _DEFAULTS[0] = self.previous

    def __call__(self, f: tp.Callable[..., tp.Any]) -> tp.Callable[..., tp.Any]:
        _DEFAULTS[0] = self.previous  # decorating does not change the defaults
        new = self.new

        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            saved, _DEFAULTS[0] = _DEFAULTS[0], new
            try:
                return f(*args, **kwargs)
            finally:
                _DEFAULTS[0] = saved

        return wrapper


def var_defaults(*, hijax: bool | None = None, ref: bool | None = None, **legacy: bool) -> tp.Any:
    """Read or set the default Variable flags, as a function, a context manager or
    a decorator (Flax compatibility; the flags are recorded only).

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.var_defaults().hijax
        False
        >>> with nnx.var_defaults(hijax=True):
        ...     print(nnx.var_defaults().hijax)
        True
        >>> nnx.var_defaults().hijax
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
        return _DEFAULTS[0]
    previous = _DEFAULTS[0]
    new = previous._replace(
        **{k: v for k, v in {"hijax": hijax, "ref": ref}.items() if v is not None}
    )
    _DEFAULTS[0] = new
    return VarDefaultsContext(previous, new)
