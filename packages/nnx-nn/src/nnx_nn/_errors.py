"""Errors raised by the layers, and the cheap checks that raise them.

Two kinds of mistakes get a dedicated message:

- a bad configuration (``Linear(0, 4)``, ``padding="SAMEE"``, ``Dropout(1.5)``)
  raises :class:`LayerConfigError` in the constructor;
- an input whose shape does not fit the layer raises :class:`InputShapeError`
  when the layer is called (at trace time under ``jax.jit``: the checks look at
  static shapes only, so they cost nothing in compiled code).

Both name the layer (``Linear(in_features=3, out_features=4)``), what was expected,
what was found and the fix. Layers that call sub-layers (``Sequential``,
``MultiHeadAttention``, ``RNN``, ``LoRA``, ...) prepend the attribute path of the
failing child, so the message reads ``model.layers[1] (Linear(...)): ...``.
"""

from __future__ import annotations

import contextlib
import typing as tp
from collections.abc import Iterator

import jax
import numpy as np

import nnx_graph
from nnx_graph.internal import format_path

__all__ = [
    "InputShapeError",
    "LayerConfigError",
    "LayerInputError",
    "RngsArgumentError",
    "check_axis_size",
    "check_in_choices",
    "check_positive_int",
    "child_path",
    "describe",
    "missing_mode_error",
    "params_key",
    "rng_stream",
]


class LayerConfigError(ValueError):
    """A layer was constructed with an invalid configuration."""


class LayerInputError(ValueError):
    """An input does not fit the layer (wrong shape, dtype or missing argument).

    ``layer`` describes the layer, ``path`` is the attribute path of the layer
    inside the module that was called (empty when the layer itself was called).
    """

    def __init__(self, layer: str, message: str, path: tuple[tp.Any, ...] = ()) -> None:
        super().__init__(layer, message, path)
        self.layer = layer
        self.message = message
        self.path = path

    def __str__(self) -> str:
        where = f"{format_path(self.path)} ({self.layer})" if self.path else self.layer
        return f"{where}: {self.message}"


class InputShapeError(LayerInputError):
    """An input does not have the shape the layer expects."""


class RngsArgumentError(TypeError, AttributeError):
    """A layer that draws random keys got something other than an ``nnx.Rngs``
    (``None``, a seed, a raw key).

    It is a ``TypeError`` (a wrong argument type) and also an ``AttributeError``,
    the type Flax NNX raises in that case, so ``except AttributeError`` still works.
    """


def _found(value: tp.Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"the int {value!r}"
    return f"a {type(value).__name__}"


def rng_stream(rngs: tp.Any, stream: str, layer: object) -> nnx_graph.RngStream:
    """``rngs.<stream>`` (the ``params``, ``dropout`` or ``carry`` stream), or a
    :class:`RngsArgumentError` naming ``layer`` when ``rngs`` is not an ``nnx.Rngs``."""
    if isinstance(rngs, nnx_graph.Rngs):
        return tp.cast(nnx_graph.RngStream, getattr(rngs, stream))
    name = layer if isinstance(layer, str) else type(layer).__name__
    if isinstance(rngs, (int, np.integer)) and not isinstance(rngs, bool):
        fix = f"rngs=nnx.Rngs({rngs})"
    elif isinstance(rngs, jax.Array):
        fix = "rngs=nnx.Rngs(key) (an Rngs can be seeded with a key)"
    else:
        fix = "rngs=nnx.Rngs(0)"
    raise RngsArgumentError(
        f"{name}: rngs must be an nnx.Rngs to draw the {stream!r} keys that "
        f"initialise the layer, found {_found(rngs)}. Fix: pass {fix}, e.g. "
        f"{name}(..., rngs=nnx.Rngs(0))."
    )


def params_key(rngs: tp.Any, layer: object) -> jax.Array:
    """A fresh key from ``rngs.params`` (see :func:`rng_stream`)."""
    return rng_stream(rngs, "params", layer)()


def new_param(
    rngs: tp.Any,
    layer: object,
    init: tp.Callable[..., jax.Array],
    shape: tp.Sequence[int],
    dtype: tp.Any,
    metadata: tp.Mapping[str, tp.Any],
) -> nnx_graph.Param[jax.Array]:
    """A ``Param`` holding ``init(key, shape, dtype)`` with a fresh ``params`` key
    (see :func:`params_key`) and ``metadata``."""
    return nnx_graph.Param(init(params_key(rngs, layer), shape, dtype), **metadata)


@contextlib.contextmanager
def child_path(*parts: tp.Any) -> Iterator[None]:
    """Prefix the path of a :class:`LayerInputError` raised inside the block."""
    try:
        yield
    except LayerInputError as error:
        error.path = (*parts, *error.path)
        raise


def describe(layer: object) -> str:
    """``Linear(in_features=3, out_features=4)``: the layer type and the
    configuration attributes its class lists in ``_config_fields``.

    A string is returned unchanged (callers may pre-format the description).
    """
    if isinstance(layer, str):
        return layer
    fields: tuple[str, ...] = getattr(type(layer), "_config_fields", ())
    items = ", ".join(f"{name}={getattr(layer, name, '?')!r}" for name in fields)
    return f"{type(layer).__name__}({items})"


def _shape(x: tp.Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


def check_axis_size(
    layer: object,
    inputs: tp.Any,
    axis: int,
    expected: int,
    what: str,
    *,
    name: str = "inputs",
    min_ndim: int = 1,
) -> None:
    """Raise :class:`InputShapeError` unless ``inputs.shape[axis] == expected``."""
    shape = _shape(inputs)
    needed = max(min_ndim, axis + 1 if axis >= 0 else -axis)
    if len(shape) < needed:
        raise InputShapeError(
            describe(layer),
            f"expected {name} with at least {needed} dimension(s) and {expected} "
            f"features on axis {axis} ({what}), found {name} of shape {shape}. "
            f"Fix: add the missing axes (e.g. x[None]) or reshape the {name}.",
        )
    found = shape[axis]
    if found != expected:
        raise InputShapeError(
            describe(layer),
            f"expected {name} with {expected} features on axis {axis} ({what}={expected}), "
            f"found {name} of shape {shape} ({found} features). Fix: pass {name} whose axis "
            f"{axis} has size {expected}, or build the layer with {what}={found}.",
        )


def missing_mode_error(layer: object, flag: str) -> LayerInputError:
    """The error for a mode flag (``deterministic``, ``use_running_average``, ...)
    left ``None`` both on the layer and in the call."""
    return LayerInputError(
        describe(layer),
        f"No `{flag}` argument was provided to {type(layer).__name__}: {flag} is None "
        "on the layer and was not passed to the call, so the layer cannot "
        f"tell training from evaluation. Fix: call model.train() or model.eval(), or pass "
        f"{flag}=True/False to the constructor or to the call.",
    )


def check_positive_int(layer: str, **values: tp.Any) -> None:
    """Raise :class:`LayerConfigError` unless every value is an ``int > 0``."""
    for name, value in values.items():
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0
        if not ok:
            raise LayerConfigError(
                f"{layer}: {name} must be a positive integer, found {value!r}. "
                f"Fix: pass {name}=<number of features, at least 1>."
            )


def check_in_choices(
    layer: str, name: str, value: tp.Any, choices: tp.Sequence[str], fix: str
) -> None:
    """Raise :class:`LayerConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise LayerConfigError(
            f"{layer}: unknown {name} {value!r}; expected one of "
            f"{', '.join(repr(c) for c in choices)}. Fix: {fix}"
        )
