"""Sequential: chain callables (layers and plain functions) into one Module."""

from __future__ import annotations

import inspect
import typing as tp

import nnx_graph
from nnx_nn._errors import child_path

__all__ = ["Sequential"]


def _takes_rngs(fn: tp.Callable[..., tp.Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("rngs")
    return parameter is not None and parameter.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


class Sequential(nnx_graph.Module):
    """Apply callables in order, feeding each one's output to the next: a tuple
    output is splatted as positional arguments, a dict as keyword arguments.

    Modules among ``fns`` are sub-Modules (``layers[i]``) with their own state;
    plain functions such as ``nnx.relu`` are static. ``rngs`` given to the call
    is forwarded to every callable that accepts an ``rngs`` argument.

    Args:
        *fns: the callables, applied first to last.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> rngs = nnx_graph.Rngs(0)
        >>> model = nnx_nn.Sequential(
        ...     nnx_nn.Linear(3, 4, rngs=rngs), nnx_nn.relu, nnx_nn.Linear(4, 3, rngs=rngs))
        >>> model(jnp.ones((2, 3))).shape
        (2, 3)
        >>> type(model.layers[0]).__name__
        'Linear'
    """

    def __init__(self, *fns: tp.Callable[..., tp.Any]) -> None:
        for i, fn in enumerate(fns):
            if not callable(fn):
                raise TypeError(
                    f"Sequential: element {i} is not callable: {fn!r} "
                    f"({type(fn).__name__}). Fix: pass layers or functions."
                )
        self.layers = nnx_graph.List(fns)

    def __call__(
        self, *args: tp.Any, rngs: nnx_graph.Rngs | None = None, **kwargs: tp.Any
    ) -> tp.Any:
        """Run the chain on ``*args, **kwargs``."""
        if not self.layers:
            if len(args) == 1:
                return args[0]
            if args:
                return args
            return kwargs or None
        output: tp.Any = None
        for i, fn in enumerate(self.layers):
            if not callable(fn):
                raise TypeError(f"Sequential: layers[{i}] is not callable: {fn!r}.")
            if i > 0:
                if isinstance(output, tuple):
                    args, kwargs = output, {}
                elif isinstance(output, dict):
                    args, kwargs = (), output
                else:
                    args, kwargs = (output,), {}
            if rngs is not None and _takes_rngs(fn):
                kwargs = {**kwargs, "rngs": rngs}
            with child_path("layers", i):
                output = fn(*args, **kwargs)
        return output
