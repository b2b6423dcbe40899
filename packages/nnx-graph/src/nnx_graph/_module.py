"""Module: the base class for layers and models."""

from __future__ import annotations

import inspect
import typing as tp
from collections.abc import Iterator

from nnx_graph._filters import to_predicate
from nnx_graph._graph import merge, split
from nnx_graph._graph_iter import iter_graph
from nnx_graph._graph_modes import is_tree_mode, not_a_pytree_error
from nnx_graph._module_base import AttributesNotFoundError as AttributesNotFoundError
from nnx_graph._module_base import _not_found, assign_attributes
from nnx_graph._paths import sorted_keys
from nnx_graph._pytree import Dict, List, Module, Pytree, is_graph_node
from nnx_graph._variables import Variable

__all__ = [
    "M",
    "Module",
    "iter_children",
    "iter_modules",
    "view",
    "view_info",
    "with_attributes",
]

M = tp.TypeVar("M", bound="Module")
A = tp.TypeVar("A")
Path = tuple[tp.Any, ...]


def iter_modules(module: tp.Any, /, *, graph: bool | None = None) -> Iterator[tuple[Path, Module]]:
    """``(path, module)`` for every Module in the graph (sub-Modules first, the root
    last, each shared Module once). An explicit nnx.List/nnx.Dict is a Module; a
    plain list/dict attribute (held as an nnx.List/nnx.Dict) is not, as in Flax.

    Example::

        >>> import nnx_graph as nnx
        >>> class A(nnx.Module): pass
        >>> class B(nnx.Module):
        ...     def __init__(self):
        ...         self.a = A()
        >>> [p for p, _ in nnx.iter_modules(B())]
        [('a',), ()]
    """
    for path, value in iter_graph(module):
        # (a List/Dict made from a plain list/dict is a plain container, as in Flax)
        if isinstance(value, Module) and not value._nnx_auto:
            yield path, value


def iter_children(node: tp.Any, /, *, graph: bool | None = None) -> Iterator[tuple[tp.Any, tp.Any]]:
    """``(key, child)`` for the immediate children of ``node`` that are graph nodes
    (Modules, nnx.List/nnx.Dict, ...) or Variables, in traversal order; a plain
    list/dict attribute (held as an nnx.List/nnx.Dict) is not one, as in Flax. Unlike
    :func:`iter_graph` it does not recurse, and an object held twice is yielded
    twice. In tree mode (``graph=False``) a ``pytree=False`` node raises ValueError.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class A(nnx.Module): pass
        >>> class B(nnx.Module):
        ...     def __init__(self):
        ...         self.a = A(); self.w = nnx.Param(jnp.ones(1)); self.n = 3
        >>> [(k, type(v).__name__) for k, v in nnx.iter_children(B())]
        [('a', 'A'), ('w', 'Param')]
    """
    items: tp.Iterable[tuple[tp.Any, tp.Any]]
    if isinstance(node, Pytree) and not node._nnx_is_pytree and is_tree_mode(graph):
        raise not_a_pytree_error("iter_children", type(node), None)
    if isinstance(node, List):  # (List and Dict are Pytrees holding items)
        items = enumerate(node)
    elif isinstance(node, Dict):
        items = [(k, dict.__getitem__(node, k)) for k in sorted_keys(node)]
    elif isinstance(node, Pytree):
        items = [(k, v) for k, v in node._nnx_attributes() if node._nnx_is_data_attr(k, v)]
    else:
        raise TypeError(
            f"nnx.iter_children expected a graph node (a Module, Pytree, nnx.List or "
            f"nnx.Dict), found {type(node).__name__}. Fix: pass the Module itself."
        )
    for key, child in items:
        if isinstance(child, Variable) or (is_graph_node(child) and not _is_auto(child)):
            yield key, child


def _is_auto(node: tp.Any) -> bool:
    """A List/Dict made from a plain list/dict (Flax's Module queries skip it)."""
    return isinstance(node, Module) and node._nnx_auto


def view(
    node: A,
    /,
    *,
    only: tp.Any = ...,
    raise_if_not_found: bool = True,
    graph: tp.Any = None,
    **kwargs: tp.Any,
) -> A:
    """A new object graph sharing ``node``'s Variables, switched to a different
    view (e.g. ``deterministic=True``); ``node`` itself is unchanged.

    Each selected Module with a ``set_view`` method receives the keywords its
    signature names (all of them when it takes ``**kwargs``); a Module without
    ``set_view`` gets the keywords it has as attributes set directly. A keyword
    that no Module used raises ``ValueError`` unless ``raise_if_not_found=False``.

    Example::

        >>> import nnx_graph as nnx
        >>> class Drop(nnx.Module):
        ...     def __init__(self):
        ...         self.deterministic = False
        >>> d = Drop(); e = nnx.view(d, deterministic=True)
        >>> d.deterministic, e.deterministic
        (False, True)
    """
    new = merge(*split(node))
    predicate = to_predicate(only)
    unused = set(kwargs)
    for path, module in iter_modules(new):
        if not predicate(path, module):
            continue
        set_view = getattr(module, "set_view", None)
        if set_view is None:
            for name, value in kwargs.items():
                if hasattr(module, name) and not callable(getattr(type(module), name, None)):
                    setattr(module, name, value)
                    unused.discard(name)
            continue
        params = inspect.signature(set_view).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            set_view(**kwargs)
            unused.clear()
            continue
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        set_view(**{k: v for k, v in kwargs.items() if k in named})
        unused -= named
    if unused and raise_if_not_found:
        raise ValueError(
            f"Unused keys found in nnx.view: {sorted(unused)}. No selected Module in "
            f"{type(node).__name__} has a set_view parameter or attribute with these "
            "names. Fix: check the spelling or pass raise_if_not_found=False."
        )
    return new


def with_attributes(
    node: A,
    /,
    *,
    only: tp.Any = ...,
    raise_if_not_found: bool = True,
    graph: bool | None = None,
    **attributes: tp.Any,
) -> A:
    """A new object graph sharing ``node``'s Variables, with ``attributes`` set on
    the (sub-)Modules that have them; ``node`` itself is unchanged (unlike
    :meth:`Module.set_attributes`).

    Example::

        >>> import nnx_graph as nnx
        >>> class Drop(nnx.Module):
        ...     def __init__(self):
        ...         self.deterministic = False
        >>> d = Drop(); e = nnx.with_attributes(d, deterministic=True)
        >>> d.deterministic, e.deterministic
        (False, True)
    """
    new = merge(*split(node))
    unused = assign_attributes(iter_modules(new), to_predicate(only), attributes)
    if unused and raise_if_not_found:
        raise _not_found("nnx.with_attributes", type(node).__name__, unused)
    return new


def view_info(node: tp.Any, /, *, only: tp.Any = ..., graph: bool | None = None) -> str:
    """Text describing what :func:`view` can switch in ``node``: for each Module
    class with a ``set_view`` method (sorted by qualified name), the class name,
    then each ``set_view`` parameter as ``name: annotation = default`` followed by
    its description from the docstring's ``Args:`` section.

    Example::

        >>> import nnx_graph as nnx
        >>> class Drop(nnx.Module):
        ...     def __init__(self):
        ...         self.deterministic = False
        ...     def set_view(self, deterministic: bool | None = None):
        ...         \"\"\"Turn the random mask off or on.
        ...
        ...         Args:
        ...           deterministic: skip the random mask.
        ...         \"\"\"
        >>> print(nnx.view_info(Drop()))
        Drop:
          deterministic: bool | None = None
            skip the random mask.
    """
    classes: dict[type, None] = {}
    predicate = to_predicate(only)
    for path, module in iter_modules(node, graph=graph):
        if hasattr(module, "set_view") and predicate(path, module):
            classes[type(module)] = None
    lines: list[str] = []
    for cls in sorted(classes, key=lambda c: c.__qualname__):
        lines.extend(_set_view_lines(cls))
    return "\n".join(lines)


def _set_view_lines(cls: type) -> list[str]:
    method = cls.set_view  # type: ignore[attr-defined]
    docs = _arg_docs(inspect.getdoc(method) or "")
    lines = [f"{cls.__qualname__}:"]
    for name, p in inspect.signature(method).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation
        text = ann if isinstance(ann, str) else inspect.formatannotation(ann)
        lines.append(f"  {name}: {text}" + ("" if p.default is p.empty else f" = {p.default}"))
        if name in docs:
            lines.append(docs[name])
    return lines


def _arg_docs(doc: str) -> dict[str, str]:
    """``{name: description}`` from a docstring's ``Args:`` section, each
    description line indented by four spaces."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Args:"), None)
    if start is None:
        return {}
    block: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith(" "):
            break
        if line.strip():
            block.append(line)
    if not block:
        return {}
    base = min(len(line) - len(line.lstrip()) for line in block)
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in block:
        indent = len(line) - len(line.lstrip())
        if indent == base and ":" in line:
            current, _, rest = line.strip().partition(":")
            out[current] = ["    " + rest.strip()]
        elif current is not None:
            out[current].append("    " + line.strip())
    return {k: "\n".join(v) for k, v in out.items()}
