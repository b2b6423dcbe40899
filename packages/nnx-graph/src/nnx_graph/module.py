"""Modules under Flax's module path (``flax.nnx.module``).

Every name here is the same object as ``nnx_graph.<name>``, plus ``first_from``.

Example::

    >>> import nnx_graph
    >>> from nnx_graph import module
    >>> module.Module is nnx_graph.Module
    True
"""

from __future__ import annotations

import typing as tp

from nnx_graph import (
    Module,
    capture,
    iter_children,
    iter_modules,
    view,
    view_info,
    with_attributes,
)
from nnx_graph.graphlib import iter_module_children

A = tp.TypeVar("A")


def first_from(*args: A | None, error_msg: str) -> A:
    """The first of ``args`` that is not None (a call-time argument before the
    attribute it overrides); raises ``ValueError(error_msg)`` when all are None.

    Example::

        >>> from nnx_graph.module import first_from
        >>> first_from(None, False, True, error_msg="no value")
        False
    """
    for arg in args:
        if arg is not None:
            return arg
    raise ValueError(error_msg)


__all__ = [
    "Module",
    "capture",
    "first_from",
    "iter_children",
    "iter_module_children",
    "iter_modules",
    "view",
    "view_info",
    "with_attributes",
]
