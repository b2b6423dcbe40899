"""Collection names of Variable types (``Param`` <-> ``'params'``) and the
compatibility ``var_defaults`` flags."""

from __future__ import annotations

import dataclasses
import typing as tp

from nnx_graph._variables import BatchStat, Cache, Intermediate, Param, Perturbation, Variable

__all__ = [
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


@dataclasses.dataclass
class _VarDefaults:
    hijax: bool = False
    has_ref: bool = False


_VAR_DEFAULTS = _VarDefaults()


def var_defaults(**settings: bool) -> _VarDefaults:
    """Compatibility: read (or set) default Variable flags such as ``hijax``.

    This library has one Variable implementation; the flags are recorded and
    otherwise have no effect.

    Example::

        >>> import nnx_graph as nnx
        >>> nnx.var_defaults().hijax
        False
    """
    for key, value in settings.items():
        if not hasattr(_VAR_DEFAULTS, key):
            raise TypeError(
                f"var_defaults got unknown setting {key!r}; expected one of "
                f"{[f.name for f in dataclasses.fields(_VarDefaults)]}. Fix: use one of those."
            )
        setattr(_VAR_DEFAULTS, key, value)
    return _VAR_DEFAULTS
