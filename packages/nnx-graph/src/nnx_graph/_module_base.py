"""Module (the base class of layers) and the graph containers nnx.List/nnx.Dict,
which are Modules holding their items (as in Flax) while staying ``list``/``dict``
subclasses.

Imported by ``nnx_graph._pytree`` (which re-exports these names) right after it
defines Pytree; import them from there.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator

import jax
import jax.numpy as jnp

from nnx_graph import _epoch
from nnx_graph._containers_jax import (
    _dict_flatten,
    _dict_flatten_with_keys,
    _dict_unflatten,
    _list_flatten,
    _list_flatten_with_keys,
    _list_unflatten,
)
from nnx_graph._filters import to_predicate
from nnx_graph._kinds import data_types, has_data
from nnx_graph._markers import _DataMarker, _Marker, static_marker_message
from nnx_graph._pytree import Pytree, _convert_container, _node_repr
from nnx_graph._traces import _trace_now, check_trace
from nnx_graph._variable_names import variable_type_from_name
from nnx_graph._variables import Perturbation, Variable

__all__ = ["Dict", "List", "Module"]

A = tp.TypeVar("A")
Path = tuple[tp.Any, ...]


class AttributesNotFoundError(ValueError, AttributeError):
    """An attribute name given to ``set_attributes``/``with_attributes``/``view``
    that no selected Module has (a ValueError, as in Flax, and an AttributeError)."""


def _not_found(fn: str, owner: str, names: tp.Iterable[str]) -> AttributesNotFoundError:
    return AttributesNotFoundError(
        f"{fn}: Could not find at least one instance of the following attributes: "
        f"{sorted(names)} (no selected Module in {owner} has them). Fix: check the "
        "spelling or pass raise_if_not_found=False."
    )


def assign_attributes(
    modules: tp.Iterable[tuple[tp.Any, tp.Any]],
    predicate: tp.Callable[[tp.Any, tp.Any], bool] | None,
    attributes: dict[str, tp.Any],
) -> set[str]:
    """Set each of ``attributes`` on every selected Module (``(path, module)`` pairs)
    that already has it as a non-method attribute; the names no Module had."""
    remaining = set(attributes)
    for path, module in modules:
        if predicate is not None and not predicate(path, module):
            continue
        for name, value in attributes.items():
            if hasattr(module, name) and not callable(getattr(type(module), name, None)):
                if getattr(module, name) is not value:
                    setattr(module, name, value)
                remaining.discard(name)
    return remaining


def _tuple_reduce(xs: tuple[tp.Any, ...], x: tp.Any) -> tuple[tp.Any, ...]:
    return (*xs, x)


def _tuple_init() -> tuple[tp.Any, ...]:
    return ()


def _set_mode(module: Module, training: bool, attributes: dict[str, tp.Any]) -> None:
    """``Module.train``/``Module.eval``: the mode flags on every sub-Module that has
    them, explicit ``attributes`` overriding them."""
    flags = {"deterministic": not training, "use_running_average": not training}
    module.set_attributes(raise_if_not_found=False, **{**flags, **attributes})


class Module(Pytree):
    """Base class for layers and models: a mutable Python object holding its
    Variables and sub-Modules as attributes.

    Example::

        >>> import jax, jax.numpy as jnp, nnx_graph as nnx
        >>> class Linear(nnx.Module):
        ...     def __init__(self, din, dout, *, rngs):
        ...         self.w = nnx.Param(jax.random.uniform(rngs.params(), (din, dout)))
        ...         self.b = nnx.Param(jnp.zeros(dout))
        ...     def __call__(self, x):
        ...         return x @ self.w + self.b
        >>> Linear(2, 3, rngs=nnx.Rngs(0))(jnp.ones((1, 2))).shape
        (1, 3)
    """

    # True for an nnx.List/nnx.Dict made from a plain list/dict on assignment
    _nnx_auto: bool = False

    def sow(
        self,
        variable_type: type[Variable[tp.Any]] | str,
        name: str,
        value: A,
        reduce_fn: tp.Callable[[tp.Any, A], tp.Any] = _tuple_reduce,
        init_fn: tp.Callable[[], tp.Any] = _tuple_init,
    ) -> bool:
        """Store ``value`` in a Variable attribute ``name`` of type ``variable_type``
        (by default appending to a tuple), to be read or popped later.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> class M(nnx.Module):
            ...     def __call__(self, x):
            ...         self.sow(nnx.Intermediate, "h", x * 2)
            ...         return x
            >>> m = M(); _ = m(jnp.ones(2)); _ = m(jnp.ones(2))
            >>> len(m.h.value)
            2
        """
        if isinstance(variable_type, str):
            variable_type = variable_type_from_name(variable_type, allow_register=True)
        entries: tp.Any = self if isinstance(self, dict) else self.__dict__
        if name in entries:
            existing = entries[name]
            if not isinstance(existing, Variable):
                raise ValueError(
                    f"Expected {name!r} to be a Variable, got {type(existing).__name__}: "
                    f"sow on {type(self).__name__} found a non-Variable attribute "
                    f"{name!r}. Fix: sow under another name."
                )
            if not isinstance(existing, variable_type):
                raise ValueError(
                    f"Expected {name!r} to be of type {variable_type.__name__!r}, got "
                    f"{type(existing).__name__!r}: attribute {name!r} of "
                    f"{type(self).__name__} holds a {type(existing).__name__}. Fix: sow "
                    "under another name or pop the old value first."
                )
            existing.set_value(reduce_fn(existing.get_value(), value))
        else:
            setattr(self, name, variable_type(reduce_fn(init_fn(), value)))
        return True

    def perturb(
        self, name: str, value: tp.Any, variable_type: type[Variable[tp.Any]] | str = Perturbation
    ) -> tp.Any:
        """Add a zero-valued ``Perturbation`` named ``name`` to ``value``: taking the
        gradient w.r.t. it gives the gradient w.r.t. this intermediate value.

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx
            >>> class M(nnx.Module):
            ...     def __call__(self, x):
            ...         return self.perturb("h", x) * 3
            >>> m = M(); _ = m(jnp.ones(2))
            >>> m.h.value.tolist()
            [0.0, 0.0]
        """
        if isinstance(variable_type, str):
            variable_type = variable_type_from_name(variable_type, allow_register=True)
        if not hasattr(self, name):
            setattr(self, name, variable_type(jnp.zeros_like(value)))
        return value + getattr(self, name).get_value()

    def iter_modules(self) -> Iterator[tuple[Path, Module]]:
        """``(path, module)`` for this Module and every sub-Module (see
        :func:`iter_modules`)."""
        from nnx_graph._module import iter_modules  # the graph layer sits above

        return iter_modules(self)

    def iter_children(self) -> Iterator[tuple[tp.Any, Module]]:
        """``(name, module)`` for the Modules held directly by this Module's
        attributes (:func:`iter_children` also yields Variables and containers)."""
        from nnx_graph._module import iter_children  # the graph layer sits above

        for key, child in iter_children(self):
            if isinstance(child, Module):
                yield key, child

    def set_attributes(
        self,
        *filters: tp.Any,
        raise_if_not_found: bool = True,
        graph: bool | None = None,
        **attributes: tp.Any,
    ) -> None:
        """Set attributes on this Module and every sub-Module that has them
        (optionally only Modules matching ``filters``).

        Example::

            >>> import nnx_graph as nnx
            >>> class Drop(nnx.Module):
            ...     def __init__(self):
            ...         self.deterministic = False
            >>> class Net(nnx.Module):
            ...     def __init__(self):
            ...         self.drop = Drop()
            >>> net = Net(); net.set_attributes(deterministic=True)
            >>> net.drop.deterministic
            True
        """
        from nnx_graph._module import iter_modules  # the graph layer sits above

        predicate = to_predicate(filters) if filters else None
        remaining = assign_attributes(iter_modules(self), predicate, attributes)
        if remaining and raise_if_not_found:
            raise _not_found("set_attributes", type(self).__name__, remaining)

    def train(self, **attributes: tp.Any) -> None:
        """Training mode: ``deterministic=False`` (Dropout) and
        ``use_running_average=False`` (BatchNorm) on every sub-Module that has them.

        Example::

            >>> import nnx_graph as nnx
            >>> class Net(nnx.Module):
            ...     def __init__(self):
            ...         self.deterministic = True
            >>> net = Net(); net.train(); net.deterministic
            False
        """
        _set_mode(self, training=True, attributes=attributes)

    def eval(self, **attributes: tp.Any) -> None:
        """Evaluation mode: ``deterministic=True`` and ``use_running_average=True``
        on every sub-Module that has them.

        Example::

            >>> import nnx_graph as nnx
            >>> class Net(nnx.Module):
            ...     def __init__(self):
            ...         self.deterministic = False
            ...         self.use_running_average = False
            >>> net = Net(); net.eval(); (net.deterministic, net.use_running_average)
            (True, True)
        """
        _set_mode(self, training=False, attributes=attributes)


def _is_settable_descriptor(cls: type, name: str) -> bool:
    """True when ``cls`` declares ``name`` as a data descriptor (a property with a
    setter, a slot): setting it runs the class's own code."""
    return hasattr(getattr(cls, name, None), "__set__")


def _list_attribute_message(obj: tp.Any, name: str, action: str) -> str:
    return (
        f"{type(obj).__name__!r} object attribute {name!r} cannot be {action}: an "
        "nnx.List holds its items only (like a plain list, it has no attributes), so "
        "an attribute would be lost by split/merge, state and the transforms. Fix: "
        "store the value as an item, or hold the List and the value together on a "
        "Module."
    )


def _instance_state(obj: tp.Any) -> dict[str, tp.Any] | None:
    """What copy/pickle keep of a List/Dict besides its items (the creation trace
    and the cache flag are process-local)."""
    state = {k: v for k, v in obj.__dict__.items() if k not in ("_nnx_trace", "_nnx_observed")}
    return state or None


def _container_changed(obj: tp.Any) -> None:
    """Before a List/Dict mutation: the trace rule (as for Modules), then the epoch.
    Containers rebuilt by merge/unflatten have no creation trace and skip the check."""
    created = getattr(obj, "_nnx_trace", None)
    if created is not None and created is not _trace_now():
        check_trace(obj, created, "changing its items")
    if getattr(obj, "_nnx_observed", False):
        _epoch.bump()


class List(Module, list[A]):
    """A list that is a graph node: ``self.layers = nnx.List([...])``.

    Plain lists holding data assigned to a Module attribute are converted to this
    type automatically, so ``append`` after assignment works and is tracked.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.items = []
        >>> m = M(); m.items.append(nnx.Param(jnp.ones(1)))
        >>> list(nnx.state(m)["items"])
        [0]
    """

    def __new__(cls, *args: tp.Any, **kwargs: tp.Any) -> tp.Self:
        obj = list.__new__(cls)
        obj.__dict__["_nnx_trace"] = _trace_now()
        return obj

    # the kind nnx.data(...)/nnx.static(...) declared for each item (None: decided
    # by value), kept in step with the items; absent until an item is marked
    _nnx_item_kinds: list[bool | None] | None = None

    def __init__(self, it: tp.Iterable[A] | None = None, /) -> None:
        pairs = [self._nnx_unmark(v, i) for i, v in enumerate(it or ())]
        list.__init__(self, (v for v, _ in pairs))
        if any(k is not None for _, k in pairs):
            self._nnx_item_kinds = [k for _, k in pairs]

    @classmethod
    def _nnx_register_pytree(cls) -> None:
        jax.tree_util.register_pytree_with_keys(
            cls, _list_flatten_with_keys, _list_unflatten(cls), _list_flatten
        )

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name[:5] == "_nnx_" or _is_settable_descriptor(type(self), name):
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(_list_attribute_message(self, name, "set"))

    def __delattr__(self, name: str) -> None:
        if name[:5] == "_nnx_" or _is_settable_descriptor(type(self), name):
            object.__delattr__(self, name)
        else:
            raise AttributeError(_list_attribute_message(self, name, "delete"))

    def _nnx_unmark(self, value: tp.Any, index: tp.Any) -> tuple[tp.Any, bool | None]:
        """An item and its declared kind: ``nnx.data(x)``/``nnx.static(x)`` unwrapped."""
        if not isinstance(value, _Marker):
            return _convert_container(value), None
        inner = value.value
        if isinstance(value, _DataMarker):
            return _convert_container(inner), True
        if has_data(inner):
            raise ValueError(static_marker_message(self, str(index), inner, data_types(inner)))
        return inner, False

    def _nnx_kinds(self) -> list[bool | None]:
        kinds = self._nnx_item_kinds
        if kinds is None:
            kinds = self._nnx_item_kinds = [None] * len(self)
        return kinds

    def _nnx_changed(self) -> None:
        _container_changed(self)

    def append(self, value: A) -> None:
        item, kind = self._nnx_unmark(value, len(self))
        self._nnx_changed()
        if kind is not None or self._nnx_item_kinds is not None:
            self._nnx_kinds().append(kind)
        list.append(self, item)

    def extend(self, values: tp.Iterable[A]) -> None:
        pairs = [self._nnx_unmark(v, len(self) + i) for i, v in enumerate(values)]
        self._nnx_changed()
        if self._nnx_item_kinds is not None or any(k is not None for _, k in pairs):
            self._nnx_kinds().extend(k for _, k in pairs)
        list.extend(self, (v for v, _ in pairs))

    def insert(self, index: tp.SupportsIndex, value: A) -> None:
        item, kind = self._nnx_unmark(value, index)
        self._nnx_changed()
        if kind is not None or self._nnx_item_kinds is not None:
            self._nnx_kinds().insert(index, kind)
        list.insert(self, index, item)

    def pop(self, index: tp.SupportsIndex = -1) -> A:
        self._nnx_changed()
        item = list.pop(self, index)
        if self._nnx_item_kinds is not None:
            self._nnx_item_kinds.pop(index)
        return item

    def remove(self, value: A) -> None:
        del self[self.index(value)]

    def clear(self) -> None:
        self._nnx_changed()
        self.__dict__.pop("_nnx_item_kinds", None)
        list.clear(self)

    def sort(self, *, key: tp.Any = None, reverse: bool = False) -> None:
        self._nnx_changed()
        kinds = self._nnx_item_kinds
        if kinds is None:
            list.sort(self, key=key, reverse=reverse)
            return
        by = (lambda p: key(p[0])) if key is not None else (lambda p: p[0])
        pairs = sorted(zip(self, kinds), key=by, reverse=reverse)
        list.__init__(self, (v for v, _ in pairs))
        self._nnx_item_kinds = [k for _, k in pairs]

    def reverse(self) -> None:
        self._nnx_changed()
        list.reverse(self)
        if self._nnx_item_kinds is not None:
            self._nnx_item_kinds.reverse()

    def __setitem__(self, index: tp.Any, value: tp.Any) -> None:
        if isinstance(index, slice):
            pairs = [self._nnx_unmark(v, index) for v in value]
            self._nnx_changed()
            if self._nnx_item_kinds is not None or any(k is not None for _, k in pairs):
                self._nnx_kinds()[index] = [k for _, k in pairs]
            list.__setitem__(self, index, [v for v, _ in pairs])
        else:
            item, kind = self._nnx_unmark(value, index)
            self._nnx_changed()
            list.__setitem__(self, index, item)
            if kind is not None or self._nnx_item_kinds is not None:
                self._nnx_kinds()[index] = kind

    def __delitem__(self, index: tp.Any) -> None:
        self._nnx_changed()
        list.__delitem__(self, index)
        if self._nnx_item_kinds is not None:
            del self._nnx_item_kinds[index]

    def __iadd__(self, values: tp.Iterable[A]) -> tp.Self:  # type: ignore[override,misc]
        self.extend(values)
        return self

    def __imul__(self, n: tp.SupportsIndex) -> tp.Self:
        self._nnx_changed()
        if self._nnx_item_kinds is not None:
            self._nnx_item_kinds *= n
        return list.__imul__(self, n)

    @property
    def _nnx_explicit(self) -> dict[tp.Any, bool]:  # type: ignore[override]
        """The declared item kinds by index, as a Pytree's by attribute name."""
        kinds = self._nnx_item_kinds
        out: dict[tp.Any, bool] = {"_nnx_auto": True} if self._nnx_auto else {}
        if kinds is not None:
            out.update((i, k) for i, k in enumerate(kinds) if k is not None)
        return out

    def __repr__(self) -> str:
        return _node_repr(self)

    def __reduce__(self) -> tp.Any:
        # items after construction (not as an argument): copy/pickle register the
        # new List before its items, so a List reachable from its own items works
        return (type(self), (), _instance_state(self), iter(self))


class Dict(Module, dict[tp.Any, A]):
    """A dict that is a graph node; entries are also readable as attributes.

    Plain dicts holding data assigned to a Module attribute become ``Dict``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> d = nnx.Dict(w=nnx.Param(jnp.ones(2)))
        >>> d.w.shape
        (2,)
    """

    def __new__(cls, *args: tp.Any, **kwargs: tp.Any) -> tp.Self:
        obj = dict.__new__(cls)
        obj.__dict__["_nnx_trace"] = _trace_now()
        return obj

    def __init__(self, *args: tp.Any, **kwargs: A) -> None:
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, _convert_container(value))

    @classmethod
    def _nnx_register_pytree(cls) -> None:
        jax.tree_util.register_pytree_with_keys(
            cls, _dict_flatten_with_keys, _dict_unflatten(cls), _dict_flatten
        )

    def _nnx_changed(self) -> None:
        _container_changed(self)

    def __setitem__(self, key: tp.Any, value: A) -> None:
        self._nnx_changed()
        super().__setitem__(key, _convert_container(value))

    def __delitem__(self, key: tp.Any) -> None:
        self._nnx_changed()
        super().__delitem__(key)

    def update(self, *args: tp.Any, **kwargs: tp.Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def pop(self, key: tp.Any, *default: tp.Any) -> tp.Any:
        self._nnx_changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[tp.Any, A]:
        self._nnx_changed()
        return super().popitem()

    def clear(self) -> None:
        self._nnx_changed()
        super().clear()

    def setdefault(self, key: tp.Any, default: tp.Any = None) -> tp.Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: tp.Any) -> tp.Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __getattr__(self, name: str) -> A:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"nnx.Dict has no key {name!r}; its keys are {list(self)}. Fix: check the "
                f"spelling, or add it with d[{name!r}] = value."
            ) from None

    def __setattr__(self, name: str, value: tp.Any) -> None:
        if name.startswith("_nnx_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        del self[name]

    @property
    def _nnx_explicit(self) -> dict[tp.Any, bool]:  # type: ignore[override]
        """Made from a plain dict (see List._nnx_explicit)."""
        return {"_nnx_auto": True} if self._nnx_auto else {}

    def __repr__(self) -> str:
        return _node_repr(self)

    def __reduce__(self) -> tp.Any:
        return (type(self), (), _instance_state(self), None, iter(dict.items(self)))
