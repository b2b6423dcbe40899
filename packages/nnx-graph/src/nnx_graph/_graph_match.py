"""Matching States against a GraphDef or an object: path lookup (integer keys
may have become strings), missing/extra paths, and the errors that name them."""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

from nnx_graph._errors import GraphStructureError, format_path
from nnx_graph._graph_state import GraphState
from nnx_graph._kinds import has_data
from nnx_graph._paths import restore_int_path
from nnx_graph._pytree import Pytree
from nnx_graph._state import FlatState, flat_dict
from nnx_graph._variables import Variable

__all__ = ["alias", "flat_lookup", "match_leaves", "mismatch_error", "shape_error"]

Path = tuple[tp.Any, ...]
_MISSING = object()


def flat_lookup(states: tp.Sequence[tp.Any]) -> dict[Path, tp.Any]:
    flat: dict[Path, tp.Any] = {}
    for s in states:
        if isinstance(s, GraphState):
            s = s._state
        if isinstance(s, FlatState):
            items: tp.Iterable[tuple[Path, tp.Any]] = s
        elif isinstance(s, Mapping):
            items = flat_dict(s).items()
        elif isinstance(s, Variable):  # a bare Variable is the State of a Variable root
            items = (((), s),)
        else:
            raise TypeError(
                f"Expected a State (or a mapping / FlatState), found {type(s).__name__}. "
                "Fix: pass the states returned by nnx.split/nnx.state."
            )
        for path, value in items:
            flat[path] = value
    return flat


def alias(path: Path, table: Mapping[Path, tp.Any]) -> Path | None:
    """The key of ``table`` that ``path`` names once integer keys are allowed to
    have become strings (``0`` -> ``"0"``, as checkpoint formats store them) or
    back; None when there is none."""
    as_strings = tuple(str(k) if type(k) is int else k for k in path)
    if as_strings in table:
        return as_strings
    as_ints = restore_int_path(path)
    if as_ints in table:
        return as_ints
    return None


def match_leaves(
    paths: tp.Sequence[Path], flat: Mapping[Path, tp.Any]
) -> tuple[list[tp.Any], list[Path], list[Path]]:
    """``(leaves in paths order, missing paths, extra paths of flat)``."""
    leaves: list[tp.Any] = []
    missing: list[Path] = []
    aliased: list[Path] = []
    get = flat.get
    for p in paths:
        value = get(p, _MISSING)
        if value is not _MISSING:
            leaves.append(value)
            continue
        q = alias(p, flat)
        if q is None:
            missing.append(p)
        else:
            leaves.append(flat[q])
            aliased.append(q)
    extra: list[Path] = []
    if missing or aliased or len(flat) != len(paths):
        used = {*paths, *aliased}
        extra = [p for p in flat if p not in used]
    return leaves, missing, extra


def shape_error(what: str, found: tp.Sequence[tuple[Path, tp.Any, tp.Any]]) -> GraphStructureError:
    """The error for values whose shape differs from the one the target holds."""
    lines = [
        f"  {format_path(p, 'model')}: expected shape {tuple(old)}, found shape {tuple(new)}"
        for p, old, new in found[:20]
    ]
    if len(found) > 20:
        lines.append(f"  ... and {len(found) - 20} more")
    return GraphStructureError(
        f"{what}: {len(found)} value(s) do not have the shape of the Variable or array they "
        "replace:\n" + "\n".join(lines) + "\nFix: take the State from a model built with "
        "the same sizes (or rebuild the model with the new sizes). Nothing was changed."
    )


def mismatch_error(
    what: str,
    missing: list[Path],
    extra: list[Path],
    *,
    expected: int | None = None,
    fix: str | None = None,
) -> GraphStructureError:
    lines = []
    for p in missing[:20]:
        lines.append(
            f"  missing: {format_path(p, 'state')} (the GraphDef needs it; the State "
            "has no such path)"
        )
    for p in extra[:20]:
        lines.append(
            f"  extra:   {format_path(p, 'state')} (in the State; the object has no "
            "such Variable or array)"
        )
    more = len(missing) + len(extra) - len(lines)
    if more > 0:
        lines.append(f"  ... and {more} more")
    counts = f"{len(missing)} missing, {len(extra)} extra"
    head = f"{what}: "
    if expected is not None:
        counts = f"expected the {expected} leaf path(s) of the GraphDef; found {counts}"
        found = expected - len(missing) + len(extra)
        if found != expected:  # (Flax's phrase for this case)
            head += f"Incorrect number of leaves (expected {expected}, found {found}); "
    return GraphStructureError(
        f"{head}the State's paths do not match the object structure ({counts}):\n"
        + "\n".join(lines)
        + "\n"
        + (
            fix
            or "Fix: pass the States produced by nnx.split on the same structure (all "
            "of them, e.g. `nnx.merge(graphdef, params, rest)`)."
        )
    )


_MISSING = object()


def _child(parent: tp.Any, key: tp.Any) -> tp.Any:
    if isinstance(parent, (list, tuple, dict)):  # (nnx.List/nnx.Dict too)
        try:
            return parent[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    if isinstance(parent, Pytree) and isinstance(key, str):
        return vars(parent).get(key, _MISSING)
    return _MISSING


def static_overwrites(
    root: tp.Any, extra: list[tuple[Path, tp.Any]]
) -> tuple[list[tuple[tp.Any, tp.Any, tp.Any]], list[tuple[Path, tp.Any]]]:
    """For State paths naming an existing static entry (a Module's static attribute,
    a plain value in a list or dict) and holding a plain value: ``(parent, key,
    value)`` to overwrite it, as Flax's ``update`` does; the other paths after."""
    writes: list[tuple[tp.Any, tp.Any, tp.Any]] = []
    rest: list[tuple[Path, tp.Any]] = []
    for path, value in extra:
        parent = root
        for key in path[:-1]:
            parent = _child(parent, key)
        old = _child(parent, path[-1]) if path and parent is not _MISSING else _MISSING
        placeable = isinstance(parent, (list, dict)) or (
            isinstance(parent, Pytree) and not str(path[-1]).startswith("_")
        )
        if old is _MISSING or not placeable or has_data(old) or has_data(value):
            rest.append((path, value))
        else:
            writes.append((parent, path[-1], value))
    return writes, rest
