"""State helpers that need no State class: path-sorted leaf iteration over nested
mappings, pure dicts (:func:`to_pure_dict`, :func:`replace_by_pure_dict`) and the
State repr. :mod:`nnx_graph._state` builds the State methods on them."""

from __future__ import annotations

import typing as tp
from collections.abc import Iterator, Mapping, MutableMapping

import numpy as np

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._paths import MISSING, Key, PathParts, match_key, pure_paths, sorted_keys
from nnx_graph._variables import Variable, value_repr, variable_repr

__all__ = ["replace_by_pure_dict", "state_repr", "to_pure_dict"]


def _iter_flat(
    mapping: Mapping[Key, tp.Any], prefix: PathParts
) -> Iterator[tuple[PathParts, tp.Any]]:
    """Leaves in path-sorted order, iteratively (States may be deeply nested)."""
    stack: list[Iterator[tuple[PathParts, tp.Any]]] = [
        iter([((*prefix, k), mapping[k]) for k in sorted_keys(mapping)])
    ]
    while stack:
        for path, value in stack[-1]:
            if not isinstance(value, Variable) and isinstance(value, Mapping):
                if len(value) != 0:
                    stack.append(iter([((*path, k), value[k]) for k in sorted_keys(value)]))
                    break
            else:
                yield path, value
        else:
            stack.pop()


def _raw(value: tp.Any) -> tp.Any:
    return value.get_value() if isinstance(value, Variable) else value


def to_pure_dict(
    state: Mapping[Key, tp.Any], extract_fn: tp.Callable[[tp.Any], tp.Any] | None = None
) -> dict[Key, tp.Any]:
    """Nested plain ``dict``s of raw values: the format checkpoint libraries store.

    ``extract_fn(leaf)`` turns each leaf into the stored value; by default a
    Variable gives its value and any other leaf is kept as it is.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> nnx.to_pure_dict(nnx.State({0: {"w": nnx.Param(jnp.ones(1))}}))[0]["w"].shape
        (1,)
    """
    out: dict[Key, tp.Any] = {}
    for path, value in _iter_flat(state, ()):
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = extract_fn(value) if extract_fn is not None else _raw(value)
    return out


def _shape(value: tp.Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)  # arrays and ShapeDtypeStructs
    return tuple(shape) if shape is not None else np.shape(value)


def replace_by_pure_dict(
    state: MutableMapping[Key, tp.Any],
    pure_dict: Mapping[tp.Any, tp.Any],
    replace_fn: tp.Callable[[tp.Any, tp.Any], tp.Any] | None = None,
    *,
    allow_missing: bool = True,
) -> None:
    """Replace ``state``'s leaves with the values of a pure dict (e.g. a checkpoint).

    Each Variable leaf is replaced in ``state`` by ``variable.replace(value)``: a new
    Variable with the same type and metadata. The Variables it replaces (and so the
    model the State was taken from) are left unchanged; write the result back with
    ``nnx.update(model, state)``. ``replace_fn(leaf, value)``, when given, computes the
    new leaf instead. Integer keys that a checkpoint format turned into strings
    (``"0"``) are matched to integer paths.

    A key of ``pure_dict`` that is not in ``state`` raises ``ValueError`` ("key in
    pure_dict not available in state"), as does (without ``replace_fn``) a value
    whose shape differs from the leaf's; every offending path is named and nothing
    is replaced. Leaves missing from ``pure_dict`` are kept unless
    ``allow_missing=False``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> s = nnx.State({"w": nnx.Param(jnp.zeros(2))})
        >>> s.replace_by_pure_dict({"w": jnp.ones(2)})
        >>> s["w"].value.tolist()
        [1.0, 1.0]
    """
    flat = list(_iter_flat(state, ()))
    matched: set[tuple[tp.Any, ...]] = set()  # pure-dict paths (as spelled there) used
    updates: list[tuple[PathParts, tp.Any]] = []
    missing: list[PathParts] = []
    problems: list[str] = []
    for path, leaf in flat:
        node: tp.Any = pure_dict
        spelled: list[tp.Any] = []
        found = True
        for key in path:
            if not isinstance(node, Mapping):
                found = False
                break
            k = match_key(node, key)
            if k is MISSING:
                found = False
                break
            spelled.append(k)
            node = node[k]
        if not found:
            missing.append(path)
            continue
        matched.add(tuple(spelled))
        if replace_fn is None:
            old_shape, new_shape = _shape(_raw(leaf)), _shape(node)
            if old_shape != new_shape:
                problems.append(
                    f"{format_path(path, 'state')}: expected shape {old_shape}, found {new_shape}"
                )
        updates.append((path, node))
    extra = [p for p in pure_paths(pure_dict, ()) if p not in matched]
    for p in extra:
        problems.append(
            f"{format_path(p, 'state')}: key in pure_dict not available in state {tuple(p)!r}"
        )
    if missing and not allow_missing:
        problems.extend(f"{format_path(p, 'state')}: missing from the pure dict" for p in missing)
    if problems:
        raise GraphStructureError(
            "replace_by_pure_dict found a pure dict that does not match the State:\n  - "
            + "\n  - ".join(problems)
            + "\nFix: build the State from the same model definition the dict was saved from."
        )
    by_path = dict(flat)
    for path, value in updates:
        leaf = by_path[path]
        if replace_fn is not None:
            new = replace_fn(leaf, value)
        elif isinstance(leaf, Variable):
            new = leaf.replace(value)
        else:
            new = value
        _set_path(state, path, new)


def _set_path(state: MutableMapping[Key, tp.Any], path: PathParts, value: tp.Any) -> None:
    node: tp.Any = state
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def state_repr(state: Mapping[Key, tp.Any]) -> str:
    """One entry per line, nested States indented."""
    lines: list[str] = []
    stack: list[tuple[Iterator[tuple[Key, tp.Any]], int]] = [(iter(state.items()), 1)]
    while stack:
        items, depth = stack[-1]
        pad = "  " * depth
        for key, value in items:
            if isinstance(value, Mapping):
                lines.append(f"{pad}{key!r}: {{")
                stack.append((iter(value.items()), depth + 1))
                break
            text = variable_repr(value) if isinstance(value, Variable) else value_repr(value)
            lines.append(f"{pad}{key!r}: {text},")
        else:
            stack.pop()
            if stack:
                lines.append(f"{'  ' * (depth - 1)}}},")
    if not lines:
        return "State({})"
    return "State({\n" + "\n".join(lines) + "\n})"
