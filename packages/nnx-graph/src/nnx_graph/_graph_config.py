"""The graph-mode switches ``set_graph_mode`` / ``set_graph_updates`` and their
cheap getters ``graph_mode_default()`` / ``graph_updates_default()``.

Each switch keeps a per-thread stack of values. Constructing one sets the current
value right away (so ``nnx.set_graph_mode(False)`` as a plain statement changes the
default for the rest of the thread); used as a context manager it restores the
previous value on exit; used as a decorator it applies the value only while the
decorated function runs."""

from __future__ import annotations

import functools
import threading
import typing as tp

__all__ = [
    "graph_mode_default",
    "graph_updates_default",
    "set_graph_mode",
    "set_graph_updates",
]

F = tp.TypeVar("F", bound=tp.Callable[..., tp.Any])

# Process-wide defaults used when a thread has pushed no value.
_GRAPH_MODE_DEFAULT = True
_GRAPH_UPDATES_DEFAULT = True


class _Stacks(threading.local):
    def __init__(self) -> None:
        self.graph_mode: list[bool] = []
        self.graph_updates: list[bool] = []


_STACKS = _Stacks()


def graph_mode_default() -> bool:
    """The graph-mode value transforms and graph functions use when called with
    ``graph=None``: the innermost :class:`set_graph_mode` value, else ``True``.

    Example::

        >>> from nnx_graph._graph_config import graph_mode_default
        >>> import nnx_graph as nnx
        >>> with nnx.set_graph_mode(False):
        ...     graph_mode_default()
        False
        >>> graph_mode_default()
        True
    """
    stack = _STACKS.graph_mode
    return stack[-1] if stack else _GRAPH_MODE_DEFAULT


def graph_updates_default() -> bool:
    """The ``graph_updates`` value transforms use when called with
    ``graph_updates=None``: the innermost :class:`set_graph_updates` value, else ``True``.

    Example::

        >>> from nnx_graph._graph_config import graph_updates_default
        >>> graph_updates_default()
        True
    """
    stack = _STACKS.graph_updates
    return stack[-1] if stack else _GRAPH_UPDATES_DEFAULT


class _ConfigSwitch:
    """Shared machinery of the two switches (a per-thread stack of bools)."""

    prev_value: bool | None
    new_value: bool

    @classmethod
    def get_default(cls) -> bool:
        raise NotImplementedError

    @classmethod
    def get_stack(cls) -> list[bool]:
        raise NotImplementedError

    def __init__(self, value: bool, /) -> None:
        stack = self.get_stack()
        if stack:
            # Replace the current value; remember it so __enter__/__call__ can restore.
            self.prev_value = stack[-1]
            stack[-1] = value
        else:
            self.prev_value = None
            stack.append(value)
        self.new_value = value

    @classmethod
    def current_value(cls) -> bool:
        """The value in effect now (innermost setting, else the default)."""
        stack = cls.get_stack()
        return stack[-1] if stack else cls.get_default()

    def __enter__(self) -> None:
        # The constructor overwrote the previous value in place: put it back below
        # the new one so __exit__ (a pop) restores it.
        if self.prev_value is not None:
            self.get_stack().insert(-1, self.prev_value)

    def __exit__(self, *exc: object) -> None:
        self.get_stack().pop()

    def __call__(self, f: F) -> F:
        # Used as a decorator: undo the immediate effect of the constructor and
        # apply the value only while ``f`` runs.
        stack = self.get_stack()
        stack.pop()
        if self.prev_value is not None:
            stack.append(self.prev_value)
        new_value = self.new_value
        get_stack = self.get_stack

        @functools.wraps(f)
        def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
            inner = get_stack()
            inner.append(new_value)
            try:
                return f(*args, **kwargs)
            finally:
                inner.pop()

        return tp.cast(F, wrapper)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.new_value!r})"


class set_graph_mode(_ConfigSwitch):
    """Set whether graph functions and transforms default to graph mode
    (``graph=None`` means the current setting; ``True`` at start-up).

    ``nnx.set_graph_mode(False)`` as a statement changes the setting for the rest of
    the current thread; ``with nnx.set_graph_mode(False): ...`` restores the previous
    setting on exit; ``@nnx.set_graph_mode(False)`` applies it while the decorated
    function runs. ``set_graph_mode.current_value()`` reads the setting.

    Example::

        >>> import nnx_graph as nnx
        >>> with nnx.set_graph_mode(False):
        ...     nnx.set_graph_mode.current_value()
        False
        >>> nnx.set_graph_mode.current_value()
        True
    """

    @classmethod
    def get_default(cls) -> bool:
        return _GRAPH_MODE_DEFAULT

    @classmethod
    def get_stack(cls) -> list[bool]:
        return _STACKS.graph_mode


class set_graph_updates(_ConfigSwitch):
    """Set whether transforms default to propagating graph updates (new/replaced
    attributes, changed sharing) back out (``graph_updates=None`` means the current
    setting; ``True`` at start-up). Same call / context manager / decorator forms as
    :class:`set_graph_mode`.

    Example::

        >>> import nnx_graph as nnx
        >>> @nnx.set_graph_updates(False)
        ... def f():
        ...     return nnx.set_graph_updates.current_value()
        >>> f(), nnx.set_graph_updates.current_value()
        (False, True)
    """

    @classmethod
    def get_default(cls) -> bool:
        return _GRAPH_UPDATES_DEFAULT

    @classmethod
    def get_stack(cls) -> list[bool]:
        return _STACKS.graph_updates
