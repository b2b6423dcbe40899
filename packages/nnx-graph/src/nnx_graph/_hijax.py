"""hijax Variables: ``Variable(x, hijax=True)`` keeps its value in a JAX hi-type box.

A hijax Variable holds its value in a ``Box``, the mutable "hi-type" of JAX's
``jax.experimental.hijax`` machinery. JAX itself threads a box through plain
``jax.jit``, ``jax.grad``, ``jax.eval_shape`` and ``lax`` control flow: a box passed
in (or closed over) is updated in place, and the update is visible after the
transform returns. The Variable flattens (as a pytree) to its box, so a hijax
Variable given to ``jax.jit`` comes back inside the trace as a Variable of the same
type and metadata around the traced box; ``v[...] = y`` there writes through the box.

Everything else about the Variable is unchanged: its class is still its collection
(``Param``, ``BatchStat``, ...), its metadata records ``hijax=True``, and
``isinstance(v, HijaxVariable)`` tells a hijax Variable apart.

Example::

    >>> import jax, jax.numpy as jnp, nnx_graph as nnx
    >>> v = nnx.Param(jnp.array(1.0), hijax=True)
    >>> @jax.jit
    ... def bump(v):
    ...     v[...] += 1.0
    >>> bump(v)
    >>> float(v[...]), v.hijax
    (2.0, True)
"""

from __future__ import annotations

import typing as tp

import jax
import numpy as np

from nnx_graph._traces import _is_top_level, current_trace

_Box: tp.Any
try:  # JAX's mutable hi-type box (jax.experimental.hijax's worked example)
    from jax._src.hijax import Box as _Box
except ImportError:  # pragma: no cover - older/newer JAX without it
    _Box = None

__all__ = ["HijaxVariable", "hijax_supported", "is_box"]


def hijax_supported() -> bool:
    """Whether the running JAX provides the hi-type box hijax Variables need."""
    return _Box is not None


def is_box(value: object) -> bool:
    """Whether ``value`` is a hi-type box (concrete, or traced inside a transform)."""
    return _Box is not None and isinstance(value, _Box)


def new_box(value: tp.Any) -> tp.Any:
    """A fresh box holding ``value`` (works outside and inside JAX transforms)."""
    if _Box is None:  # pragma: no cover
        raise ValueError(
            "hijax=True needs jax._src.hijax.Box, which this JAX version does not "
            f"provide (found jax {jax.__version__}). Fix: use ref=True, or a JAX with "
            "jax.experimental.hijax."
        )
    if not _is_top_level(current_trace()):
        # inside a transform: a box made from constants fails to lower (JAX 0.10),
        # so stage each concrete leaf into the running trace first
        value = jax.tree.map(_staged, value)
    return _Box(value)


def _staged(leaf: tp.Any) -> tp.Any:
    if not isinstance(leaf, (jax.Array, np.ndarray)):
        return leaf
    return jax.numpy.copy(leaf)


def unbox(value: tp.Any) -> tp.Any:
    """The value held by a box; anything else is returned as is."""
    return value.get() if is_box(value) else value


def wrap(value: tp.Any, metadata: tp.Mapping[str, tp.Any]) -> tp.Any:
    """``value`` as a Variable with ``metadata`` stores it: in a new box when
    ``metadata['hijax']`` is true (a box given is kept), unchanged otherwise. With
    ``ref=True`` as well the ``jax.Ref`` is kept unboxed (JAX cannot trace a Ref
    inside a box; the Ref is already updated in place under ``jax.jit``), and so
    is a shape-only value (from ``eval_shape``)."""
    if (
        metadata.get("hijax")
        and not metadata.get("ref")
        and not is_box(value)
        and not is_abstract(value)
    ):
        return new_box(value)
    return value


def is_abstract(value: object) -> bool:
    """Whether ``value`` is a shape-only stand-in (e.g. from ``eval_shape``): it
    cannot go in a box, and a hijax Variable holding it keeps it as is."""
    return isinstance(value, jax.ShapeDtypeStruct)


def lower_boxes(values: list[tp.Any]) -> list[tp.Any]:
    """``values`` leaving a transform, with each box replaced by its content: a box
    cannot be a transform's output. Outside, a Variable rebuilt from the content
    puts it in a new box, and an existing one writes it into its own box."""
    return [v.get() if is_box(v) else v for v in values]


def reject_differentiated(
    name: str, values: tp.Sequence[tp.Any], describe: tp.Callable[[int], str]
) -> None:
    """Raise a ValueError naming the first differentiated value that is a box (a
    hijax Variable's): called after a JAX differentiation failed, to explain it."""
    for i, value in enumerate(values):
        if is_box(value):
            raise ValueError(
                f"nnx.{name}: {describe(i)} is a hijax Variable, and JAX cannot "
                "differentiate through the hi-type box holding its value (jax "
                f"{jax.__version__} has no derivative rules for box reads and writes).\n"
                "Expected: differentiated Variables with hijax=False.\n"
                "Found: hijax=True.\n"
                "Fix: differentiate a plain view, e.g. graphdef, params, rest = "
                "nnx.split(model, nnx.Param, ...); grads = jax.grad(lambda p: "
                "loss(nnx.merge(graphdef, p, rest)))(nnx.vars_as(params, hijax=False)); "
                "or create the parameters without hijax=True."
            )


class _HijaxMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        from nnx_graph._variables import Variable

        return isinstance(instance, Variable) and instance.hijax

    def __subclasscheck__(cls, subclass: type) -> bool:
        return subclass is cls


class HijaxVariable(metaclass=_HijaxMeta):
    """Marker type for hijax Variables: ``isinstance(v, HijaxVariable)`` is true
    for a Variable made with ``hijax=True`` (whatever its collection class).

    Example::

        >>> import nnx_graph as nnx
        >>> from nnx_graph.variablelib import HijaxVariable
        >>> isinstance(nnx.Param(1.0, hijax=True), HijaxVariable)
        True
        >>> isinstance(nnx.Param(1.0), HijaxVariable)
        False
    """

    def __new__(cls, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        from nnx_graph._variables import Variable

        kwargs["hijax"] = True
        return Variable(*args, **kwargs)
