"""The cells of :func:`nnx_viz.tabulate`, laid out as Flax NNX lays them out.

Structured values are written in block form, one entry a line (``- item`` for
sequences, ``key: value`` for mappings, nested entries indented), arrays as
``float32[1,8]``. A Variable column of a row lists the Variables the module holds
directly (``kernel: float32[2,3]``, with their metadata when they carry any), a
blank line, then the total of the module's whole subtree.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax

import nnx_graph
from nnx_viz._sizes import SizeTotal, size_group

__all__ = ["inputs_cell", "value_cell", "variables_cell"]

_HIDDEN_METADATA = frozenset(
    {"hijax", "ref", "eager_sharding", "on_get_value", "on_set_value", "on_create_value"}
    | {"on_add_axis", "on_remove_axis"}
)


def _array(value: tp.Any) -> str | None:
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None or isinstance(value, type):
        return None
    return f"{dtype}[{','.join(str(d) for d in shape)}]"


def _as_container(value: tp.Any) -> tp.Any:
    """Mappings and sequences as they are; a NamedTuple or another pytree node
    (dataclass, State, ...) as a mapping of its fields; anything else None."""
    if isinstance(value, Mapping):
        return value
    if _array(value) is not None:
        return None
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return dict(value._asdict())
    if isinstance(value, (list, tuple)):
        return value
    if value is None or isinstance(value, (str, bytes, int, float, complex, type)):
        return None
    if jax.tree_util.treedef_is_leaf(jax.tree.structure(value)):
        return None
    children, _ = jax.tree_util.tree_flatten_with_path(value, is_leaf=lambda x: x is not value)
    return {jax.tree_util.keystr(path).lstrip(".") or "_": child for path, child in children}


def _scalar(value: tp.Any) -> str:
    array = _array(value)
    if array is not None:
        return array
    if isinstance(value, type):
        return f"type[{value.__name__}]"
    return repr(value).replace("'", "")


def _sorted_items(mapping: Mapping[tp.Any, tp.Any]) -> list[tuple[tp.Any, tp.Any]]:
    try:
        return sorted(mapping.items(), key=lambda item: item[0])
    except TypeError:
        return list(mapping.items())


def _lines(value: tp.Any) -> list[str]:
    """``value`` in block form, one line per entry."""
    container = _as_container(value)
    if not container:
        if isinstance(container, Mapping):
            return ["{}"]
        return ["[]"] if container is not None else [_scalar(value)]
    out: list[str] = []
    if isinstance(container, Mapping):
        for key, item in _sorted_items(container):
            sub = _as_container(item)
            if not sub:
                out.append(f"{key}: {_lines(item)[0]}")
            elif isinstance(sub, Mapping):
                out += [f"{key}:", *("  " + line for line in _lines(item))]
            else:  # a sequence under a key is not indented (as YAML writes it)
                out += [f"{key}:", *_lines(item)]
        return out
    for item in container:
        first, *rest = _lines(item)
        out += [f"- {first}", *("  " + line for line in rest)]
    return out


def value_cell(value: tp.Any) -> str:
    """A cell for an input or output: ``''`` for None or an empty container.

    Example::

        >>> import jax.numpy as jnp
        >>> print(value_cell((jnp.ones((1, 8)), {"sum": jnp.ones(())})))
        - float32[1,8]
        - sum: float32[]
    """
    container = _as_container(value)
    if value is None or (container is not None and not container):
        return ""
    return "\n".join(_lines(value))


def inputs_cell(args: tuple[tp.Any, ...], kwargs: Mapping[str, tp.Any]) -> str:
    """The inputs cell: the one positional argument alone, several as a list, then
    the keyword arguments as a mapping.

    Example::

        >>> import jax.numpy as jnp
        >>> print(inputs_cell((jnp.ones(2), {}), {"scale": 0.5}))
        - float32[2]
        - {}
        scale: 0.5
    """
    parts = []
    if args:
        parts.append(value_cell(args[0] if len(args) == 1 and not kwargs else list(args)))
    if kwargs:
        parts.append(value_cell(dict(kwargs)))
    return "\n".join(parts)


def variables_cell(module: tp.Any, group: str, total: SizeTotal | None) -> str:
    """A Variable column's cell for ``module``: its own Variables of ``group``
    (name, value shape, metadata beyond the required entries), then the subtree's
    ``total``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx
        >>> class M(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.ones((2, 3)), tag="t")
        >>> print(variables_cell(M(), "Param", SizeTotal(6, 24)))
        w:
          tag: t
          value: float32[2,3]
        <BLANKLINE>
        6 (24 B)
    """
    own: dict[str, tp.Any] = {}
    attributes = vars(module) if isinstance(module, nnx_graph.Pytree) else {}
    for name, variable in attributes.items():
        if not isinstance(variable, nnx_graph.Variable) or size_group(variable) != group:
            continue
        value = _array(variable.get_raw_value())
        value = value if value is not None else _array(variable.get_value())
        metadata = {k: v for k, v in variable.get_metadata().items() if k not in _HIDDEN_METADATA}
        if metadata:
            own[str(name)] = {"value": value or "", **metadata}
        elif value is not None:
            own[str(name)] = value
    text = "\n".join(_lines(own)) + "\n\n" if own else ""
    return text + (str(total) if total is not None else "")
