"""Exception types raised by nnx.  Each message names the object path, what was
expected, what was found, and how to fix it."""

from __future__ import annotations

__all__ = [
    "FilterError",
    "GraphStructureError",
    "RngStreamError",
    "TraceLeakError",
    "format_path",
]


class TraceLeakError(RuntimeError):
    """A JAX tracer was stored on an object that outlived its transform."""


class GraphStructureError(ValueError):
    """A State, GraphDef or object graph does not have the structure expected."""


class RngStreamError(AttributeError, KeyError):
    """An RNG stream was requested that the Rngs object does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FilterError(TypeError):
    """An object was used as a filter that cannot be turned into one."""


def format_path(path: tuple[object, ...], root: str = "model") -> str:
    """Render a path tuple as Python access syntax: ``model.blocks[2].kernel``."""
    out = root
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out
