"""``EMA``: an exponential moving average of a model's Variables."""

from __future__ import annotations

import typing as tp
from collections.abc import Mapping

import jax.numpy as jnp

import nnx_graph
from nnx_graph.internal import format_path, node_repr
from nnx_optim._optimizer import filter_repr

__all__ = ["EMA"]

A = tp.TypeVar("A")
Filter = tp.Any


def _selected_state(node: tp.Any, only: Filter, what: str) -> tp.Any:
    if isinstance(node, (nnx_graph.Pytree, nnx_graph.List, nnx_graph.Dict, tuple, list)):
        return nnx_graph.state(node, only)
    if isinstance(node, Mapping):
        return nnx_graph.filter_state(node, only)
    raise TypeError(
        f"EMA.{what} expected a Module or a State, found {type(node).__name__}. "
        "Fix: pass the model itself, e.g. ema.update(model)."
    )


class EMA(nnx_graph.Pytree):
    """A shadow copy of the Variables of ``params`` selected by ``only``, moved
    towards the model on each :meth:`update`::

        average = decay * average + (1 - decay) * current

    Arguments:
        params: the model (any graph node) or a State whose Variables to average.
        decay: the decay rate, e.g. ``0.999``.
        only: filter choosing the Variables (default ``...``: every Variable,
            as in Flax; pass ``nnx.Param`` to average only the parameters).
        graph: accepted for Flax compatibility and kept as ``ema.graph``; graph
            semantics (shared Variables tracked once) always apply.

    Floating-point Variables are averaged. Variables of other dtypes (integer
    counters, RNG keys, booleans) have no meaningful average: ``update`` copies
    the current value into them, so ``apply_to`` sees the latest counter or key.

    Attributes:
        params: an ``nnx.Dict`` of the averaged Variables, laid out like the model's
            State (``ema.params.linear.kernel``).
        decay, filter, graph: the constructor arguments.

    Example::

        >>> import jax.numpy as jnp, nnx_graph as nnx, nnx_optim
        >>> class Model(nnx.Module):
        ...     def __init__(self):
        ...         self.w = nnx.Param(jnp.zeros(2))
        >>> model = Model()
        >>> ema = nnx_optim.EMA(model, decay=0.5)
        >>> model.w.value = jnp.ones(2)
        >>> ema.update(model)
        >>> ema.params.w.value.tolist()
        [0.5, 0.5]
        >>> averaged = ema.apply_to(model)   # a model reading the averages
        >>> averaged.w is ema.params.w
        True
    """

    def __init__(
        self,
        params: tp.Any,
        decay: float,
        *,
        only: Filter = ...,
        graph: bool | None = None,
    ) -> None:
        state = _selected_state(params, only, "__init__")
        copies: list[tuple[tuple[tp.Any, ...], tp.Any]] = []
        for path, value in state.flat_state():
            if not isinstance(value, nnx_graph.Variable):
                raise TypeError(
                    "EMA only supports Variable leaves: "
                    f"{format_path(path)} is a "
                    f"{type(value).__name__}.\nFix: hold arrays in Variables "
                    "(nnx.Param(...)) or exclude them with `only=`."
                )
            copies.append((path, value.copy()))
        self.graph = graph
        self.decay = decay
        self.filter = only
        self.params = nnx_graph.to_pure_dict(
            nnx_graph.from_flat_state(copies), lambda variable: variable
        )

    def __repr__(self) -> str:
        return node_repr(self)

    def update(self, updates: tp.Any) -> None:
        """Move the averages towards ``updates`` (the model, or its State).

        Example::

            >>> import jax.numpy as jnp, nnx_graph as nnx, nnx_optim
            >>> class Model(nnx.Module):
            ...     def __init__(self):
            ...         self.w = nnx.Param(jnp.array(0.0))
            >>> model = Model(); ema = nnx_optim.EMA(model, decay=0.9)
            >>> model.w.value = jnp.array(1.0); ema.update(model)
            >>> round(float(ema.params.w.value), 3)
            0.1
        """
        current = dict(_selected_state(updates, self.filter, "update").flat_state())
        averages = list(nnx_graph.state(self.params).flat_state())
        missing = [path for path, _ in averages if path not in current]
        if missing:
            raise nnx_graph.GraphStructureError(
                "EMA.update found no value for:\n"
                + "\n".join(f"  - {format_path(p)}" for p in missing)
                + f"\nExpected: the Variables matching only={filter_repr(self.filter)} that "
                "the EMA was created from.\nFix: pass the same model (after surgery, "
                "create a new EMA)."
            )
        decay = self.decay
        for path, average in averages:
            new = current[path]
            new = new.raw_value if isinstance(new, nnx_graph.Variable) else new
            old = average.raw_value
            if not jnp.issubdtype(jnp.result_type(old), jnp.inexact):
                # counters and RNG keys: no average exists; keep the latest value
                new = jnp.asarray(new)
                same = new.dtype == old.dtype
                average.raw_value = new if same else new.astype(old.dtype)
                continue
            value = decay * old + (1.0 - decay) * new
            average.raw_value = jnp.asarray(value).astype(jnp.result_type(old))

    def apply_to(self, model: A) -> A:
        """A new model with ``model``'s structure whose tracked Variables are the
        EMA's own (so it follows later updates) and whose other Variables are
        ``model``'s."""
        graphdef, state = nnx_graph.split(model)
        merged = nnx_graph.merge_state(state, nnx_graph.state(self.params))
        return nnx_graph.merge(graphdef, merged)
