"""Readable plain-text ``repr`` for Modules, Variables, States and GraphDefs."""

from __future__ import annotations

import typing as tp

import numpy as np

__all__ = ["graphdef_repr", "node_repr", "state_repr", "variable_repr"]

_INDENT = "  "
_BRACKETS: dict[type, tuple[str, str]] = {tuple: ("(", ")"), list: ("[", "]"), dict: ("{", "}")}


def _array_summary(value: tp.Any) -> str | None:
    if isinstance(value, type):  # e.g. a filter such as nnx.Param stored on a module
        return None
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return None
    kind = "Array" if not isinstance(value, np.ndarray) else "ndarray"
    if tuple(shape) == () and not str(dtype).startswith("key"):
        try:
            return f"{kind}({np.asarray(value).item()!r}, dtype={dtype})"
        except Exception:
            pass
    return f"{kind}(shape={tuple(shape)}, dtype={dtype})"


def _value_repr(value: tp.Any) -> str:
    summary = _array_summary(value)
    if summary is not None:
        return summary
    if isinstance(value, tuple) and any(_array_summary(v) for v in value):
        inner = ", ".join(_value_repr(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _holds_nodes(value: tp.Any) -> bool:
    from nnx_graph._pytree import is_graph_node
    from nnx_graph._variables import Variable

    if isinstance(value, Variable) or is_graph_node(value):
        return True
    if type(value) in (tuple, list):
        return any(_holds_nodes(v) for v in value)
    if type(value) is dict:
        return any(_holds_nodes(v) for v in value.values())
    return False


def variable_repr(var: tp.Any) -> str:
    parts = [f"value={_value_repr(var._raw_value)}"]
    parts += [f"{k}={v!r}" for k, v in sorted(var._var_metadata.items())]
    return f"{type(var).__name__}({', '.join(parts)})"


def node_repr(node: tp.Any) -> str:
    from nnx_graph._errors import format_path

    seen: dict[int, tuple[tp.Any, ...]] = {}
    lines: list[str] = []

    def render(value: tp.Any, path: tuple[tp.Any, ...], depth: int, prefix: str) -> None:
        from nnx_graph._pytree import Dict, List, Pytree
        from nnx_graph._variables import Variable

        pad = _INDENT * depth
        if isinstance(value, (Pytree, List, Dict, Variable)):
            if id(value) in seen:
                lines.append(f"{pad}{prefix}<shared: {format_path(seen[id(value)], 'self')}>,")
                return
            seen[id(value)] = path
        if isinstance(value, Variable):
            lines.append(f"{pad}{prefix}{variable_repr(value)},")
            return
        if isinstance(value, Pytree):
            items = value._nnx_attributes()
            if not items:
                lines.append(f"{pad}{prefix}{type(value).__name__}(),")
                return
            lines.append(f"{pad}{prefix}{type(value).__name__}(")
            for name, child in items:
                render(child, (*path, name), depth + 1, f"{name}=")
            lines.append(f"{pad}),")
            return
        if isinstance(value, (List, Dict)):
            opener, closer = ("List([", "])") if isinstance(value, List) else ("Dict({", "})")
            keyed = (
                enumerate(value)
                if isinstance(value, List)
                else ((k, dict.__getitem__(value, k)) for k in value)
            )
            entries = list(keyed)
            if not entries:
                lines.append(f"{pad}{prefix}{opener}{closer},")
                return
            lines.append(f"{pad}{prefix}{opener}")
            for key, child in entries:
                render(
                    child, (*path, key), depth + 1, "" if isinstance(value, List) else f"{key!r}: "
                )
            lines.append(f"{pad}{closer},")
            return
        if type(value) in (tuple, list, dict) and _holds_nodes(value):
            # plain containers of Modules/Variables: one entry per line, like List/Dict
            opener, closer = _BRACKETS[type(value)]
            lines.append(f"{pad}{prefix}{opener}")
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in pairs:
                render(
                    child, (*path, key), depth + 1, f"{key!r}: " if isinstance(value, dict) else ""
                )
            lines.append(f"{pad}{closer},")
            return
        lines.append(f"{pad}{prefix}{_value_repr(value)},")

    render(node, (), 0, "")
    text = "\n".join(lines)
    return text[:-1] if text.endswith(",") else text


def state_repr(state: tp.Any) -> str:
    lines: list[str] = []

    def render(mapping: tp.Any, depth: int) -> None:
        pad = _INDENT * depth
        for key, value in mapping.items():
            if isinstance(value, tp.Mapping):
                lines.append(f"{pad}{key!r}: {{")
                render(value, depth + 1)
                lines.append(f"{pad}}},")
            else:
                from nnx_graph._variables import Variable

                text = variable_repr(value) if isinstance(value, Variable) else _value_repr(value)
                lines.append(f"{pad}{key!r}: {text},")

    render(state, 1)
    if not lines:
        return "State({})"
    return "State({\n" + "\n".join(lines) + "\n})"


def graphdef_repr(graphdef: tp.Any) -> str:
    from nnx_graph._graphdef import CONTAINER, LEAF, NODE, REF, STATIC, VAR

    def render(record: tuple[tp.Any, ...]) -> str:
        tag = record[0]
        if tag == NODE:
            inner = ", ".join(f"{k}={render(c)}" for k, c in record[4])
            return f"{record[1].__name__}({inner})"
        if tag == VAR:
            return str(record[1].__name__)
        if tag == REF:
            return f"<ref {record[1]}>"
        if tag == LEAF:
            return "Array"
        if tag == STATIC:
            return _value_repr(record[1].value)
        if tag == CONTAINER:
            inner = ", ".join(f"{k}={render(c)}" for k, c in zip(record[2], record[3]))
            return f"{record[1].__name__}({inner})"
        return "?"

    text = render(graphdef._record)
    if len(text) > 400:
        text = text[:397] + "..."
    return f"GraphDef({text})"
