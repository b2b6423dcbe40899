"""Which JAX trace an object belongs to (Flax's ``TraceContextError`` rule).

An object records :func:`current_trace` when created; mutating it while another
JAX trace is active (say a plain ``jax.jit`` closing over a Module made outside)
raises :class:`~nnx_graph._errors.TraceContextError`. nnx transforms rebuild the
objects they are given inside their trace, so mutation there is allowed. The
check is one identity comparison on the hot path; :func:`check_trace` runs only
when the identities differ.
"""

from __future__ import annotations

import functools
import typing as tp

from nnx_graph._errors import TraceContextError

__all__ = ["check_trace", "current_trace"]

from jax._src.core import EvalTrace as _EvalTrace
from jax._src.core import trace_state as _trace_state


def current_trace() -> tp.Any:
    """An identity token of the innermost active JAX trace (the active trace's weak
    reference: stable while that trace is active; the top level is an eval trace).
    One attribute read, the same token ``jax.extend.core.get_opaque_trace_state``
    wraps.

    Example::

        >>> import jax
        >>> from nnx_graph._traces import current_trace
        >>> outside = current_trace()
        >>> bool(jax.jit(lambda x: current_trace() is outside)(1))  # traced: another
        False
    """
    return _trace_state.value


# the same token read by a C-level call, for the hot paths (Module.__setattr__)
_trace_now: tp.Callable[[], tp.Any] = functools.partial(getattr, _trace_state, "value")


def _is_top_level(token: tp.Any) -> bool:
    trace = token() if callable(token) else None
    return trace is None or isinstance(trace, _EvalTrace)


def check_trace(obj: object, created: tp.Any, what: str) -> None:
    """Raise TraceContextError when ``obj``, created in trace ``created``, is
    mutated (``what``) inside another JAX trace. Top-level (eval) traces count as one.

    Example::

        >>> import jax
        >>> from nnx_graph._traces import check_trace, current_trace
        >>> token = current_trace()
        >>> check_trace(object(), token, "setting x")  # same trace: no error
    """
    now = current_trace()
    if now is created or now == created or (_is_top_level(now) and _is_top_level(created)):
        return
    name = type(obj).__name__
    raise TraceContextError(
        f"Cannot mutate '{name}' from different trace level: {what} was attempted inside "
        f"a JAX transform (jax.jit, jax.grad, jax.vmap, ...) on a {name} created outside "
        "it, which would leave the object holding that transform's tracers after it "
        f"returns. Expected: a {name} is changed in the trace it was created in. Fix: "
        "pass it through an nnx transform (nnx.jit, nnx.grad, nnx.vmap, ...) instead of "
        "the jax one, or split it with nnx.split and nnx.merge it inside the transform."
    )
