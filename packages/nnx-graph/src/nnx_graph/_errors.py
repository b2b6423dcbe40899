"""Exception types raised by nnx.  Each message names the object path, what was
expected, what was found, and how to fix it."""

from __future__ import annotations

__all__ = [
    "FilterError",
    "GraphStructureError",
    "RngStreamError",
    "TraceContextError",
    "TraceLeakError",
    "format_path",
]


class TraceLeakError(RuntimeError):
    """A JAX tracer was stored on an object that outlived its transform."""


class TraceContextError(TraceLeakError):
    """A transform would store its tracers on an object from a different trace level
    (one it was not given as an argument), or a Module/Pytree created in one trace
    is mutated inside another (a plain ``jax.jit`` closing over it): raised at the
    call or assignment, with the object left exactly as it was.

    Example::

        >>> import jax, nnx_graph as nnx
        >>> class Counter(nnx.Module):
        ...     def __init__(self):
        ...         self.n = 0
        >>> c = Counter()
        >>> @jax.jit  # a plain jax transform closing over `c`
        ... def f(x):
        ...     c.n = 1
        ...     return x
        >>> try:
        ...     f(1)
        ... except nnx.TraceContextError as e:
        ...     print("from different trace level" in str(e), c.n)
        True 0
    """


class GraphStructureError(ValueError):
    """A State, GraphDef or object graph does not have the structure expected."""


class RngStreamError(AttributeError, KeyError):
    """An RNG stream was requested that the Rngs object does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FilterError(TypeError):
    """An object was used as a filter that cannot be turned into one."""


def format_path(path: tuple[object, ...], root: str = "model", *, digits: bool = False) -> str:
    """Render a path tuple as Python access syntax: ``model.blocks[2].kernel``.

    With ``root=""`` the first attribute has no leading dot (``blocks[2].kernel``);
    ``digits=True`` renders string keys made of digits (as checkpoint formats store
    integer keys) as indices: ``("layers", "0")`` -> ``model.layers[0]``.

    Example::

        >>> from nnx_graph._errors import format_path
        >>> format_path(("blocks", 2, "kernel")), format_path(("a", "b c"), "")
        ('model.blocks[2].kernel', "a['b c']")
    """
    out = root
    for part in path:
        if isinstance(part, int) or (digits and isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
