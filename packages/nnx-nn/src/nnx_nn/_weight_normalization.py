"""Wrappers that re-parametrise another layer's weights: SpectralNorm and
WeightNorm.

Each call computes normalized weights from the wrapped layer's Params, runs the
wrapped layer with them, and puts the original values back: the Params stay the
raw, trainable weights and gradients flow through the normalization. (Flax NNX
writes the normalized values into the wrapped layer and leaves them there; the
outputs are the same.)
"""

from __future__ import annotations

import contextlib
import typing as tp
from collections.abc import Iterator

import jax.numpy as jnp
from jax import lax

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import canonicalize_dtype
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import LayerConfigError, child_path, params_key
from nnx_nn._norm_base import canonicalize_axes
from nnx_nn._typing import Array, Axes, Dtype, Initializer, PromoteDtypeFn

__all__ = ["SpectralNorm", "WeightNorm"]

Path = tuple[tp.Any, ...]
_KERNEL_FILTER = nnx_graph.PathContains("kernel")


def _l2_normalize(x: Array, axis: Axes | None = None, eps: float = 1e-12) -> Array:
    return x * lax.rsqrt((x * x).sum(axis=axis, keepdims=True) + eps)


def _flat_variables(node: tp.Any, *filters: tp.Any) -> list[tuple[Path, tp.Any]]:
    state: tp.Any = nnx_graph.state(node, *filters)  # one filter here: a single State
    return list(nnx_graph.to_flat_state(state))


def _callable(layer: nnx_graph.Module) -> tp.Callable[..., tp.Any]:
    return tp.cast(tp.Callable[..., tp.Any], layer)


@contextlib.contextmanager
def _substituted(values: list[tuple[nnx_graph.Variable[tp.Any], Array]]) -> Iterator[None]:
    """Give each Variable a temporary value for the block, then restore it."""
    originals = [(variable, variable.get_value()) for variable, _ in values]
    for variable, value in values:
        variable.set_value(value)
    try:
        yield
    finally:
        for variable, value in originals:
            variable.set_value(value)


class SpectralNorm(nnx_graph.Module):
    """Spectral normalization: divide each weight matrix of the wrapped layer by
    an estimate of its largest singular value (power iteration).

    Every Param of ``layer_instance`` with at least 2 dimensions is treated as a
    matrix (higher ranks are flattened to ``(-1, last_dim)``). Per Param, the
    power-iteration vector ``u`` and the estimate ``sigma`` are ``BatchStat``
    entries of ``batch_stats``, keyed ``(*param_path, "u")`` and
    ``(*param_path, "sigma")``. They are updated when ``update_stats`` is true
    (``model.train()``), and frozen after ``model.eval()``.

    Args:
        layer_instance: the Module to wrap.
        n_steps: power-iteration steps per call (default 1).
        epsilon: added inside the l2 normalization (default ``1e-12``).
        dtype: dtype of the normalized weights (default: inferred).
        param_dtype: dtype of ``u``/``sigma`` (default ``float32``).
        error_on_non_matrix: raise for Params with more than 2 dimensions instead
            of flattening them.
        update_stats: update ``u``/``sigma`` on each call (default ``True``);
            stored as ``use_running_average = not update_stats``.
        rngs: ``Rngs`` whose ``params`` stream draws the initial ``u``.

    Shapes: those of the wrapped layer.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> layer = nnx_nn.SpectralNorm(nnx_nn.Linear(4, 3, rngs=nnx_graph.Rngs(0)),
        ...                             rngs=nnx_graph.Rngs(1))
        >>> layer(jnp.ones((2, 4))).shape
        (2, 3)
        >>> sorted(layer.batch_stats)
        [('kernel', 'sigma'), ('kernel', 'u')]
    """

    _config_fields = ("n_steps",)

    def __init__(
        self,
        layer_instance: nnx_graph.Module,
        *,
        n_steps: int = 1,
        epsilon: float = 1e-12,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        error_on_non_matrix: bool = False,
        update_stats: bool = True,
        rngs: nnx_graph.Rngs,
    ) -> None:
        self.layer_instance = layer_instance
        self.n_steps = n_steps
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.error_on_non_matrix = error_on_non_matrix
        self.use_running_average = not update_stats
        stats: dict[Path, nnx_graph.BatchStat[Array]] = {}
        for path, param in _flat_variables(layer_instance, nnx_graph.Param):
            matrix = self._as_matrix(path, param.get_value())
            if matrix is None:
                continue
            key = params_key(rngs, self)
            stats[(*path, "u")] = nnx_graph.BatchStat(
                initializers.normal()(key, (1, matrix.shape[-1]), param_dtype)
            )
            stats[(*path, "sigma")] = nnx_graph.BatchStat(initializers.ones(key, (), param_dtype))
        self.batch_stats = nnx_graph.data(stats)

    def _as_matrix(self, path: Path, value: Array) -> Array | None:
        if value.ndim <= 1 or self.n_steps < 1:
            return None
        if value.ndim > 2:
            if self.error_on_non_matrix:
                raise LayerConfigError(
                    f"SpectralNorm: the Param at {'/'.join(map(str, path))} has "
                    f"{value.ndim} dimensions (shape {value.shape}) and error_on_non_matrix "
                    "is True. Fix: pass error_on_non_matrix=False to flatten it to "
                    "(-1, last_dim), or wrap a layer with matrix weights."
                )
            return jnp.reshape(value, (-1, value.shape[-1]))
        return value

    def __call__(self, x: Array, update_stats: bool | None = None) -> tp.Any:
        """Call the wrapped layer with spectrally normalized weights."""
        if update_stats is None:
            update_stats = not self.use_running_average
        substitutes = []
        for path, param in _flat_variables(self.layer_instance, nnx_graph.Param):
            normalized = self._normalized(path, param.get_value(), update_stats)
            if normalized is not None:
                substitutes.append((param, normalized))
        with _substituted(substitutes), child_path("layer_instance"):
            return _callable(self.layer_instance)(x)

    def _normalized(self, path: Path, value: Array, update_stats: bool) -> Array | None:
        matrix = self._as_matrix(path, value)
        if matrix is None:
            return None
        u_key, sigma_key = (*path, "u"), (*path, "sigma")
        if u_key not in self.batch_stats or sigma_key not in self.batch_stats:
            raise LayerConfigError(
                f"SpectralNorm: no power-iteration state for the Param at "
                f"{'/'.join(map(str, path))}. The wrapped layer's Params changed after "
                "SpectralNorm was built. Fix: build SpectralNorm after the layer is final."
            )
        u = self.batch_stats[u_key][...]
        v = u
        for _ in range(self.n_steps):
            v = _l2_normalize(jnp.matmul(u, matrix.T), eps=self.epsilon)
            u = _l2_normalize(jnp.matmul(v, matrix), eps=self.epsilon)
        u = lax.stop_gradient(u)
        v = lax.stop_gradient(v)
        sigma = jnp.matmul(jnp.matmul(v, matrix), u.T)[0, 0]
        normalized = (matrix / jnp.where(sigma != 0, sigma, 1)).reshape(value.shape)
        if update_stats:
            self.batch_stats[u_key][...] = u
            self.batch_stats[sigma_key][...] = sigma
        dtype = canonicalize_dtype(normalized, u, v, sigma, dtype=self.dtype)
        return jnp.asarray(normalized, dtype)


class WeightNorm(nnx_graph.Module):
    """Weight normalization: each selected weight of the wrapped layer becomes
    ``scale * w / ||w||``, the norm taken over every axis except ``feature_axes``.

    Args:
        layer_instance: the Module to wrap.
        feature_axes: axes kept out of the norm (default ``-1``: one norm per
            output feature); ``None`` takes the norm over the whole weight.
        use_scale: learn a ``scale`` per feature (default ``True``).
        scale_init: initializer of the scales (default ones).
        epsilon: added inside the l2 normalization (default ``1e-12``).
        dtype: dtype of the normalized weights (default: inferred).
        param_dtype: dtype of the scales (default ``float32``).
        variable_filter: which Variables of the wrapped layer to normalize
            (default ``PathContains("kernel")``).
        promote_dtype: accepted for compatibility with Flax's signature.
        rngs: ``Rngs`` whose ``params`` stream initialises the scales.

    Params: ``scales``, a dict from the weight's path (e.g. ``("kernel",)``) to a
    ``Param`` of the feature axes' shape. (Flax NNX stores plain arrays there,
    which ``nnx.grad`` does not train.)

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> layer = nnx_nn.WeightNorm(nnx_nn.Linear(4, 3, rngs=nnx_graph.Rngs(0)),
        ...                           rngs=nnx_graph.Rngs(1))
        >>> layer(jnp.ones((2, 4))).shape
        (2, 3)
        >>> layer.scales[("kernel",)].shape
        (3,)
    """

    _config_fields = ("feature_axes",)

    def __init__(
        self,
        layer_instance: nnx_graph.Module,
        *,
        feature_axes: Axes | None = -1,
        use_scale: bool = True,
        scale_init: Initializer = initializers.ones,
        epsilon: float = 1e-12,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        variable_filter: tp.Any = _KERNEL_FILTER,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
    ) -> None:
        self.layer_instance = layer_instance
        self.feature_axes = () if feature_axes is None else feature_axes
        self.use_scale = use_scale
        self.scale_init = scale_init
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.variable_filter = variable_filter
        self.promote_dtype = promote_dtype
        scales: dict[Path, nnx_graph.Param[Array]] | None = None
        if use_scale:
            scales = {}
            selected = nnx_graph.All(nnx_graph.Param, variable_filter)
            for path, param in _flat_variables(layer_instance, selected):
                axes = canonicalize_axes(param.ndim, self.feature_axes)
                shape = tuple(param.shape[a] for a in axes)
                scales[path] = nnx_graph.Param(
                    scale_init(params_key(rngs, self), shape, param_dtype)
                )
        self.scales = nnx_graph.data(scales)

    def __call__(self, x: Array, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        """Call the wrapped layer with weight-normalized weights."""
        substitutes = [
            (variable, self._normalized(path, variable.get_value()))
            for path, variable in _flat_variables(self.layer_instance, self.variable_filter)
        ]
        with _substituted(substitutes), child_path("layer_instance"):
            return _callable(self.layer_instance)(x, *args, **kwargs)

    def _normalized(self, path: Path, value: Array) -> Array:
        feature_axes = canonicalize_axes(value.ndim, self.feature_axes)
        reduction_axes = tuple(i for i in range(value.ndim) if i not in feature_axes)
        normalized = _l2_normalize(value, axis=reduction_axes, eps=self.epsilon)
        cast_from = [value]
        if self.use_scale:
            assert self.scales is not None
            if path not in self.scales:
                raise LayerConfigError(
                    f"WeightNorm: no scale for the weight at {'/'.join(map(str, path))}. The "
                    "wrapped layer's Params changed after WeightNorm was built. Fix: build "
                    "WeightNorm after the layer is final."
                )
            scale = self.scales[path][...]
            if len(feature_axes) < value.ndim:
                shape = [value.shape[a] if a in feature_axes else 1 for a in range(value.ndim)]
                scale = scale.reshape(shape)
            normalized = normalized * scale
            cast_from.append(scale)
        return jnp.asarray(normalized, canonicalize_dtype(*cast_from, dtype=self.dtype))
