"""Dropout: zero a random fraction of the inputs in training, identity in
evaluation."""

from __future__ import annotations

import numbers
import typing as tp
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AxisType

import nnx_graph
from nnx_nn._errors import (
    LayerConfigError,
    LayerInputError,
    RngsArgumentError,
    describe,
    missing_mode_error,
)
from nnx_nn._typing import Array

__all__ = ["Dropout", "dropout_key"]

RngsLike = nnx_graph.Rngs | nnx_graph.RngStream | jax.Array


def dropout_key(rngs: RngsLike, stream: str) -> jax.Array:
    """A fresh key from ``rngs``: its ``stream`` (falling back to ``default``) for
    an ``Rngs``, the stream itself for an ``RngStream``, or the key as given."""
    if isinstance(rngs, nnx_graph.Rngs):
        return rngs[stream]()
    if isinstance(rngs, nnx_graph.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    raise TypeError(
        f"rngs must be a Rngs, RngStream or jax.Array (a key), found "
        f"{type(rngs).__name__}. Fix: pass rngs=nnx.Rngs(dropout=0) (or a key)."
    )


class Dropout(nnx_graph.Module):
    """Randomly zero a fraction ``rate`` of the inputs and scale the rest by
    ``1 / (1 - rate)`` (so the expectation is unchanged).

    ``deterministic=False`` (training, set by ``model.train()``) applies a fresh
    random mask on every call; ``deterministic=True`` (``model.eval()``) returns
    the inputs unchanged. The call argument overrides the attribute.

    Keys come from the ``rngs`` given to the call, otherwise from the stream the
    layer forked at construction: ``rngs[rng_collection]``, i.e. the ``dropout``
    stream, falling back to ``default``.

    Args:
        rate: the probability of dropping an element, in ``[0, 1]`` (``1`` drops
            everything: the output is all zeros).
        broadcast_dims: axes that share one mask value (e.g. ``(1,)`` drops whole
            time steps of ``(batch, time, features)``).
        deterministic: initial mode (default ``False``: dropout is active).
        rng_collection: the stream name to draw keys from (default ``"dropout"``).
        rngs: an ``Rngs`` or ``RngStream`` to fork the layer's stream from, or
            ``None`` to pass ``rngs`` to every call.

    Shapes: any; the output has the input's shape.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> drop = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
        >>> y1, y2 = drop(jnp.ones(8)), drop(jnp.ones(8))
        >>> set(y1.tolist()) <= {0.0, 2.0}, bool((y1 != y2).any())   # new mask per call
        (True, True)
        >>> drop.eval(); drop(jnp.ones(3)).tolist()
        [1.0, 1.0, 1.0]
    """

    _config_fields = ("rate",)

    rate: float
    broadcast_dims: tuple[int, ...]
    deterministic: bool | None
    rng_collection: str

    def __init__(
        self,
        rate: float,
        *,
        broadcast_dims: Sequence[int] = (),
        deterministic: bool | None = False,
        rng_collection: str = "dropout",
        rngs: nnx_graph.Rngs | nnx_graph.RngStream | None = None,
    ) -> None:
        if not isinstance(rate, numbers.Real) or not 0.0 <= rate <= 1.0:
            raise LayerConfigError(
                f"Dropout(rate={rate!r}): rate must be a probability in [0, 1], found "
                f"{rate!r}. It is the fraction of inputs dropped (not kept). Fix: e.g. "
                "Dropout(0.1)."
            )
        self.rate = rate
        self.broadcast_dims = tuple(broadcast_dims)
        self.deterministic = deterministic
        self.rng_collection = rng_collection
        self.rngs: nnx_graph.RngStream | None
        if isinstance(rngs, nnx_graph.Rngs):
            self.rngs = rngs[rng_collection].fork()
        elif isinstance(rngs, nnx_graph.RngStream):
            self.rngs = rngs.fork()
        elif rngs is None:
            self.rngs = None
        else:
            raise RngsArgumentError(
                f"Dropout(rate={rate!r}): rngs must be a Rngs, RngStream or None, found "
                f"{type(rngs).__name__}. Fix: Dropout(rate, rngs=nnx.Rngs(dropout=0))."
            )

    def __call__(
        self,
        inputs: Array,
        *,
        deterministic: bool | None = None,
        rngs: RngsLike | None = None,
    ) -> Array:
        """Apply dropout; ``deterministic``/``rngs`` override the layer's."""
        if deterministic is None:
            deterministic = self.deterministic
        if deterministic is None:
            raise missing_mode_error(self, "deterministic")
        if deterministic or self.rate == 0.0:
            return inputs
        if self.rate == 1.0:  # everything dropped; no key needed
            return jnp.zeros_like(jnp.asarray(inputs))
        source = rngs if rngs is not None else self.rngs
        if source is None:
            raise LayerInputError(
                describe(self),
                "`deterministic` is False, but no `rngs` argument was provided to Dropout "
                "(neither to the call nor to the constructor), so there is no key for the "
                "mask. Fix: build it with Dropout(rate, rngs=nnx.Rngs(dropout=0)), call it "
                "with rngs=..., or switch to evaluation with model.eval().",
            )
        key = dropout_key(source, self.rng_collection)
        inputs = jnp.asarray(inputs)
        keep_prob = 1.0 - self.rate
        mask_shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            mask_shape[dim] = 1
        sharding = _explicit_sharding(inputs)
        if sharding is None:
            keep = jax.random.bernoulli(key, p=keep_prob, shape=tuple(mask_shape))
            keep = jnp.broadcast_to(keep, inputs.shape)
        else:  # explicit sharding: the mask is sharded as the inputs are
            spec = list(sharding.spec) + [None] * (inputs.ndim - len(sharding.spec))
            for dim in self.broadcast_dims:
                spec[dim] = None
            mask_sharding = jax.sharding.NamedSharding(sharding.mesh, _spec(*spec))
            keep = jax.random.bernoulli(
                key, p=keep_prob, shape=tuple(mask_shape), out_sharding=mask_sharding
            )
            keep = jnp.broadcast_to(keep, inputs.shape)
            if mask_sharding.spec != sharding.spec:  # a broadcast dim is sharded
                keep = _reshard(keep, sharding)
        return lax.select(keep, inputs / keep_prob, jnp.zeros_like(inputs))

    def set_view(self, deterministic: bool | None = None) -> None:
        """Switch the mode in place; used by ``nnx.view`` (and ``train``/``eval``).

        Args:
            deterministic: if True, disables dropout masking (``None``: unchanged).

        Example::

            >>> import nnx_nn
            >>> drop = nnx_nn.Dropout(0.5)
            >>> drop.set_view(deterministic=True); drop.deterministic
            True
        """
        if deterministic is not None:
            self.deterministic = deterministic


# (untyped in jax's stubs)
_spec = tp.cast(tp.Callable[..., jax.sharding.PartitionSpec], jax.sharding.PartitionSpec)
_reshard = tp.cast(tp.Callable[..., Array], jax.sharding.reshard)


def _explicit_sharding(x: Array) -> jax.sharding.NamedSharding | None:
    """``x``'s sharding when it is sharded over Explicit mesh axes (then values
    combined with ``x`` must be sharded alike), else None."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or AxisType.Explicit not in mesh.axis_types:
        return None
    return tp.cast(jax.sharding.NamedSharding, sharding)
