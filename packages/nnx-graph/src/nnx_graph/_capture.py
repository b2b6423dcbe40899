"""``nnx.capture``: run a function and pop the Variables it sowed (or perturbed) on
its Modules into States."""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing as tp
from collections.abc import Iterator

from nnx_graph._graph_iter import iter_graph, pop
from nnx_graph._module import Module, iter_modules
from nnx_graph._pytree import Dict, List, Pytree, is_graph_node
from nnx_graph._state import to_flat_state
from nnx_graph._variables import Intermediate, Perturbation, Variable

__all__ = ["capture"]

Path = tuple[tp.Any, ...]


def capture(
    fn: tp.Any, *var_types: tp.Any, init: tp.Any = None, method_outputs: tp.Any = None
) -> tp.Any:
    """Wrap ``fn`` so it also returns the Variables of ``var_types`` (e.g. values
    stored with :meth:`Module.sow` / :meth:`Module.perturb`) that the call left on
    its Module, popped into States: ``(output, state)`` for one type,
    ``(output, *states)`` for several, just ``output`` for none.

    Arguments:
      fn: a Module (its ``__call__`` is wrapped), a bound method of a Module, or a
        function taking the Module(s) among its arguments. A Variable type instead
        of ``fn`` returns a decorator (``nnx.capture(nnx.Intermediate)(fn)``).
      var_types: the Variable types (filters) to capture.
      init: a State of values placed on the Module before the call (e.g.
        perturbations, to take gradients w.r.t. intermediate values).
      method_outputs: a Variable type: during the call, the output of every public
        method (and ``__call__``) of the Modules is sown under the method's name
        as that type, and captured with the others.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __call__(self, x):
        ...         self.sow(nnx.Intermediate, "h", x + 1)
        ...         return x
        >>> m = M()
        >>> y, inter = nnx.capture(m, nnx.Intermediate)(jnp.ones(2))
        >>> inter["h"].value[0].tolist(), hasattr(m, "h")
        ([2.0, 2.0], False)
    """
    if isinstance(fn, type) and issubclass(fn, Variable):
        chosen = (fn, *var_types)
        return lambda actual: capture(actual, *chosen, init=init, method_outputs=method_outputs)
    bound = getattr(fn, "__self__", None)
    owner: Module | None = (
        fn if isinstance(fn, Module) else (bound if isinstance(bound, Module) else None)
    )

    def place_initial_values(target: tp.Any) -> None:
        for path, value in to_flat_state(init):
            parent: tp.Any = target
            name: tp.Any = path[-1]
            for key in path[:-1]:
                parent = getattr(parent, str(key)) if _has_attributes(parent) else parent[key]
            new = value.copy() if isinstance(value, Variable) else Perturbation(value)
            if _has_attributes(parent):
                setattr(parent, name, new)
            else:
                parent[name] = new

    @functools.wraps(fn)
    def wrapper(*args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        if owner is not None:
            nodes: list[tp.Any] = [owner]
        else:
            nodes = [a for a in (*args, *kwargs.values()) if is_graph_node(a)]
        if not nodes:
            raise TypeError(
                f"nnx.capture({getattr(fn, '__name__', fn)}): expected a Module among the "
                "arguments to capture from, found none. Fix: pass the Module as an argument "
                "of the wrapped function, or wrap the Module (or its bound method) itself."
            )
        target: tp.Any = nodes[0] if len(nodes) == 1 else tuple(nodes)
        before = {id(v) for _, v in iter_graph(target) if isinstance(v, Variable)}
        if init is not None:
            place_initial_values(target)
        if method_outputs is None:
            out = fn(*args, **kwargs)
        else:
            with _sowing_method_outputs(target, method_outputs):
                out = fn(*args, **kwargs)
        extra = () if method_outputs is None else (method_outputs,)
        types = tuple(dict.fromkeys((*var_types, *extra)))  # one State per type
        if not types:
            return out

        # each State holds its type exactly (capturing Intermediate leaves out the
        # Perturbations); values sown during the call that no State takes are dropped,
        # so the Module is left as it was before the call
        def made_here(path: Path, value: tp.Any) -> bool:
            return isinstance(value, Intermediate) and id(value) not in before

        *popped, _ = pop(target, *(_exact_type(t) for t in types), made_here)
        return (out, popped[0]) if len(types) == 1 else (out, *popped)

    return wrapper


def _has_attributes(node: tp.Any) -> bool:
    """A Pytree holding attributes (nnx.List/nnx.Dict are Pytrees holding items)."""
    return isinstance(node, Pytree) and not isinstance(node, (list, dict))


def _exact_type(var_type: tp.Any) -> tp.Any:
    """A filter matching Variables of exactly ``var_type`` (other filters as given)."""
    if isinstance(var_type, type) and issubclass(var_type, Variable):
        return lambda path, value: type(value) is var_type
    return var_type


@contextlib.contextmanager
def _sowing_method_outputs(target: tp.Any, variable_type: tp.Any) -> Iterator[None]:
    """While active, every call of a public method (or ``__call__``) of a Module in
    ``target`` sows its output under the method's name as ``variable_type``."""
    modules = {id(m) for _, m in iter_modules(target)}
    patched: list[tuple[type, str, tp.Any]] = []
    classes = {type(m) for _, m in iter_modules(target)}
    for cls in classes:
        for name in _own_methods(cls):
            original = cls.__dict__.get(name) if name in cls.__dict__ else None
            method = getattr(cls, name)
            patched.append((cls, name, original))
            setattr(cls, name, _sowing(method, name, modules, variable_type))
    try:
        yield
    finally:
        for cls, name, original in reversed(patched):
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def _own_methods(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        if klass in (List, Dict, Module, Pytree, object):
            break
        for name, value in vars(klass).items():
            if inspect.isfunction(value) and (name == "__call__" or not name.startswith("_")):
                names.append(name)
    return sorted(set(names))


def _sowing(method: tp.Any, name: str, modules: set[int], variable_type: tp.Any) -> tp.Any:
    @functools.wraps(method)
    def wrapper(self: tp.Any, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        out = method(self, *args, **kwargs)
        if id(self) in modules:
            self.sow(variable_type, name, out)
        return out

    return wrapper
