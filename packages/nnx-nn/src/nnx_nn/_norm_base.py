"""What the normalization layers share: the statistics (:func:`compute_stats`),
the normalization itself (:func:`normalize`), Param creation and the
:class:`NormLayer` base with the common configuration and call steps.

:func:`compute_stats` gives the mean and variance in at least float32, optionally
masked and averaged across a named device axis; :func:`normalize` computes
``(x - mean) * rsqrt(var + eps) * scale + bias`` in the result dtype of the input
and Params unless ``dtype`` is given.
"""

from __future__ import annotations

import typing as tp

import jax.numpy as jnp
from jax import lax

import nnx_graph
from nnx_nn._dtypes import canonicalize_dtype
from nnx_nn._errors import InputShapeError, check_positive_int, describe, new_param
from nnx_nn._typing import Array, Axes, Dtype, Initializer, PromoteDtypeFn

__all__ = [
    "NormLayer",
    "canonicalize_axes",
    "check_features",
    "compute_stats",
    "create_scale_and_bias",
    "normalize",
    "value_or_none",
]


_pmean: tp.Callable[..., Array] = lax.pmean  # untyped in jax's stubs


def canonicalize_axes(ndim: int, axes: Axes) -> tuple[int, ...]:
    """Sorted, deduplicated, non-negative axes."""
    items = (axes,) if isinstance(axes, int) else tuple(axes)
    return tuple(sorted({a + ndim if a < 0 else a for a in items}))


def _abs_sq(x: Array) -> Array:
    if jnp.iscomplexobj(x):
        return lax.square(lax.real(x)) + lax.square(lax.imag(x))
    return lax.square(x)


def compute_stats(
    x: Array,
    axes: Axes,
    dtype: Dtype | None,
    axis_name: str | None = None,
    axis_index_groups: tp.Any = None,
    use_mean: bool = True,
    use_fast_variance: bool = True,
    mask: Array | None = None,
) -> tuple[Array, Array]:
    """Mean and variance of ``x`` over ``axes``, computed in at least float32.

    With ``use_fast_variance`` the variance is ``E[x²] - E[x]²`` (one pass,
    clipped at zero); otherwise ``E[(x - E[x])²]``. With ``use_mean=False`` the
    mean is zero and the "variance" is ``E[x²]`` (RMSNorm). ``mask`` selects the
    elements that count; ``axis_name`` averages across a ``pmap``/``shard_map``
    axis.
    """
    dtype = jnp.promote_types(jnp.result_type(x) if dtype is None else dtype, jnp.float32)
    x = jnp.asarray(x, dtype)
    axes = canonicalize_axes(x.ndim, axes)

    def mean(*values: Array) -> tuple[Array, ...]:
        means = tuple(v.mean(axes, where=mask) for v in values)
        if axis_name is None:
            return means
        stacked = _pmean(jnp.stack(means), axis_name, axis_index_groups=axis_index_groups)
        return tuple(stacked[i] for i in range(len(values)))

    if not use_mean:
        (var,) = mean(_abs_sq(x))
        return jnp.zeros_like(var), var
    if use_fast_variance:
        mu, mu2 = mean(x, _abs_sq(x))
        return mu, jnp.maximum(0.0, mu2 - _abs_sq(mu))
    (mu,) = mean(x)
    (var,) = mean(_abs_sq(x - jnp.expand_dims(mu, axes)))
    return mu, var


def normalize(
    x: Array,
    mean: Array,
    var: Array,
    scale: Array | None,
    bias: Array | None,
    reduction_axes: Axes,
    feature_axes: Axes,
    dtype: Dtype | None,
    epsilon: float,
) -> Array:
    """``(x - mean) * rsqrt(var + epsilon) * scale + bias`` with the statistics
    broadcast over ``reduction_axes`` and scale/bias laid out on ``feature_axes``."""
    reduction = canonicalize_axes(x.ndim, reduction_axes)
    features = canonicalize_axes(x.ndim, feature_axes)
    stats_shape = [1 if i in reduction else n for i, n in enumerate(x.shape)]
    feature_shape = [x.shape[i] if i in features else 1 for i in range(x.ndim)]
    y = x - mean.reshape(stats_shape)
    mul = lax.rsqrt(var.reshape(stats_shape) + epsilon)
    cast_from: list[tp.Any] = [x]
    if scale is not None:
        scale = scale.reshape(feature_shape)
        mul = mul * scale
        cast_from.append(scale)
    y = y * mul
    if bias is not None:
        bias = bias.reshape(feature_shape)
        y = y + bias
        cast_from.append(bias)
    return jnp.asarray(y, canonicalize_dtype(*cast_from, dtype=dtype))


def create_scale_and_bias(
    module: nnx_graph.Module,
    shape: tuple[int, ...],
    rngs: nnx_graph.Rngs,
    *,
    use_scale: bool,
    use_bias: bool,
    scale_init: Initializer,
    bias_init: Initializer,
    param_dtype: Dtype,
    scale_metadata: tp.Mapping[str, tp.Any],
    bias_metadata: tp.Mapping[str, tp.Any],
) -> None:
    """Create ``module.scale`` and ``module.bias`` (or ``None``), scale first."""
    module.scale = (
        new_param(rngs, module, scale_init, shape, param_dtype, scale_metadata)
        if use_scale
        else None
    )
    module.bias = (
        new_param(rngs, module, bias_init, shape, param_dtype, bias_metadata) if use_bias else None
    )


def value_or_none(variable: nnx_graph.Variable[tp.Any] | None) -> Array | None:
    return None if variable is None else variable[...]


def check_features(
    layer: object, x: Array, axes: tuple[int, ...], expected: int, what: str = "num_features"
) -> None:
    """The product of the sizes of ``axes`` must be ``expected`` (the Param size)."""
    if any(a >= x.ndim for a in axes):
        raise InputShapeError(
            describe(layer),
            f"expected inputs with feature axes {axes}, found inputs of shape {x.shape}. Fix: "
            "pass inputs with enough dimensions.",
        )
    found = 1
    for a in axes:
        found *= x.shape[a]
    if found != expected:
        axes_text = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
        raise InputShapeError(
            describe(layer),
            f"expected inputs with {expected} features on {axes_text} ({what}={expected}), "
            f"found inputs of shape {x.shape} ({found} features). Fix: pass inputs with "
            f"{expected} features there, or build the layer with {what}={found}.",
        )


class NormLayer(nnx_graph.Module):
    """Base of the layers with a ``scale``/``bias`` over ``num_features``: stores
    the shared configuration and runs the promote / statistics / normalize steps
    with it."""

    scale: nnx_graph.Param[Array] | None
    bias: nnx_graph.Param[Array] | None
    _config_fields: tuple[str, ...] = ("num_features",)

    epsilon: float
    dtype: Dtype | None
    axis_name: str | None
    axis_index_groups: tp.Any
    use_fast_variance: bool
    promote_dtype: PromoteDtypeFn

    def _setup(
        self,
        num_features: int,
        rngs: nnx_graph.Rngs,
        *,
        epsilon: float,
        dtype: Dtype | None,
        param_dtype: Dtype,
        use_bias: bool | None,
        use_scale: bool,
        bias_init: Initializer | None,
        scale_init: Initializer,
        axis_name: str | None,
        axis_index_groups: tp.Any,
        use_fast_variance: bool,
        promote_dtype: PromoteDtypeFn,
        scale_metadata: tp.Mapping[str, tp.Any],
        bias_metadata: tp.Mapping[str, tp.Any] | None,
    ) -> None:
        """Check ``num_features``, create the Params (scale first; no ``bias``
        attribute at all when ``use_bias`` is None) and store the configuration."""
        check_positive_int(
            f"{type(self).__name__}(num_features={num_features!r})", num_features=num_features
        )
        if use_bias is None:  # a layer without bias (RMSNorm)
            self.scale = (
                new_param(rngs, self, scale_init, (num_features,), param_dtype, scale_metadata)
                if use_scale
                else None
            )
        else:
            assert bias_init is not None and bias_metadata is not None
            create_scale_and_bias(
                self,
                (num_features,),
                rngs,
                use_scale=use_scale,
                use_bias=use_bias,
                scale_init=scale_init,
                bias_init=bias_init,
                param_dtype=param_dtype,
                scale_metadata=scale_metadata,
                bias_metadata=bias_metadata,
            )
        self.num_features = num_features
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        if use_bias is not None:
            self.use_bias = use_bias
        self.use_scale = use_scale
        self.axis_name = axis_name
        self.axis_index_groups = axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.promote_dtype = promote_dtype

    def _promoted(self, x: Array) -> tuple[Array, Array | None, Array | None]:
        """``x``, scale and bias cast by ``promote_dtype``."""
        x, scale, bias = self.promote_dtype(
            (x, value_or_none(self.scale), value_or_none(self.bias)), dtype=self.dtype
        )
        return x, scale, bias

    def _stats(
        self, x: Array, axes: Axes, mask: Array | None, *, use_mean: bool = True
    ) -> tuple[Array, Array]:
        """Mean and variance of ``x`` over ``axes`` with the layer's settings."""
        return compute_stats(
            x,
            axes,
            self.dtype,
            self.axis_name,
            self.axis_index_groups,
            use_mean=use_mean,
            use_fast_variance=self.use_fast_variance,
            mask=mask,
        )

    def _normalize(
        self,
        x: Array,
        stats: tuple[Array, Array],
        scale: Array | None,
        bias: Array | None,
        reduction_axes: Axes,
        feature_axes: Axes,
    ) -> Array:
        """:func:`normalize` with the layer's ``dtype`` and ``epsilon``."""
        mean, var = stats
        return normalize(
            x, mean, var, scale, bias, reduction_axes, feature_axes, self.dtype, self.epsilon
        )
