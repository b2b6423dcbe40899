"""Per-example normalization: LayerNorm, RMSNorm, GroupNorm and InstanceNorm, and the
helpers they share with BatchNorm (``_batch_norm.py``).

Two helpers do the work: :func:`compute_stats` (mean and variance in at least
float32, optionally masked and averaged across a named device axis) and
:func:`normalize` (``(x - mean) * rsqrt(var + eps) * scale + bias``, in the
result dtype of the input and Params unless ``dtype`` is given).
"""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax.numpy as jnp
from jax import lax

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import canonicalize_dtype
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    InputShapeError,
    LayerConfigError,
    check_positive_int,
    describe,
    params_key,
)
from nnx_nn._typing import Array, Axes, Dtype, Initializer, PromoteDtypeFn

__all__ = [
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm",
    "RMSNorm",
    "compute_stats",
    "normalize",
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
    if use_scale:
        module.scale = nnx_graph.Param(
            scale_init(params_key(rngs, module), shape, param_dtype), **scale_metadata
        )
    else:
        module.scale = None
    if use_bias:
        module.bias = nnx_graph.Param(
            bias_init(params_key(rngs, module), shape, param_dtype), **bias_metadata
        )
    else:
        module.bias = None


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


class LayerNorm(nnx_graph.Module):
    """Layer normalization: normalize every example over its feature axes
    (``reduction_axes``), then scale and shift.

    Args:
        num_features: number of features (the size of ``feature_axes``).
        epsilon: added to the variance (default ``1e-6``).
        dtype, param_dtype, use_bias, use_scale, bias_init, scale_init,
        axis_name, axis_index_groups, use_fast_variance, promote_dtype, rngs,
        bias_metadata, scale_metadata: as in :class:`BatchNorm`.
        reduction_axes: axes the statistics are computed over (default ``-1``).
        feature_axes: axes that get their own ``scale``/``bias`` (default ``-1``).

    Params: ``scale``, ``bias`` ``(num_features,)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> ln = nnx_nn.LayerNorm(4, rngs=nnx_graph.Rngs(0))
        >>> y = ln(jnp.arange(8.0).reshape(2, 4))
        >>> y.mean(-1).round(4).tolist()
        [0.0, 0.0]
    """

    scale: nnx_graph.Param[Array] | None
    bias: nnx_graph.Param[Array] | None
    _config_fields = ("num_features",)

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        reduction_axes: Axes = -1,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        axis_index_groups: tp.Any = None,
        use_fast_variance: bool = True,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        scale_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        check_positive_int(f"LayerNorm(num_features={num_features!r})", num_features=num_features)
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
        self.use_bias = use_bias
        self.use_scale = use_scale
        self.reduction_axes = reduction_axes
        self.feature_axes = feature_axes
        self.axis_name = axis_name
        self.axis_index_groups = axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.promote_dtype = promote_dtype

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        """Normalize ``x`` over ``reduction_axes``."""
        x = jnp.asarray(x)
        if self.scale is not None or self.bias is not None:
            check_features(self, x, canonicalize_axes(x.ndim, self.feature_axes), self.num_features)
        x, scale, bias = self.promote_dtype(
            (x, value_or_none(self.scale), value_or_none(self.bias)), dtype=self.dtype
        )
        mean, var = compute_stats(
            x,
            self.reduction_axes,
            self.dtype,
            self.axis_name,
            self.axis_index_groups,
            use_fast_variance=self.use_fast_variance,
            mask=mask,
        )
        return normalize(
            x,
            mean,
            var,
            scale,
            bias,
            self.reduction_axes,
            self.feature_axes,
            self.dtype,
            self.epsilon,
        )


class RMSNorm(nnx_graph.Module):
    """Root-mean-square normalization: ``x * rsqrt(mean(x²) + eps) * scale``, no
    re-centering and no bias.

    Args:
        num_features: number of features (the size of ``feature_axes``).
        epsilon: added to the mean square (default ``1e-6``).
        dtype, param_dtype, use_scale, scale_init, reduction_axes, feature_axes,
        axis_name, axis_index_groups, use_fast_variance, promote_dtype, rngs,
        scale_metadata: as in :class:`LayerNorm`.

    Params: ``scale`` ``(num_features,)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> norm = nnx_nn.RMSNorm(2, rngs=nnx_graph.Rngs(0))
        >>> [round(v, 3) for v in norm(jnp.array([[3.0, 4.0]]))[0].tolist()]
        [0.849, 1.131]
    """

    _config_fields = ("num_features",)

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_scale: bool = True,
        scale_init: Initializer = initializers.ones,
        reduction_axes: Axes = -1,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        axis_index_groups: tp.Any = None,
        use_fast_variance: bool = True,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        scale_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        check_positive_int(f"RMSNorm(num_features={num_features!r})", num_features=num_features)
        self.scale: nnx_graph.Param[Array] | None
        if use_scale:
            self.scale = nnx_graph.Param(
                scale_init(params_key(rngs, self), (num_features,), param_dtype), **scale_metadata
            )
        else:
            self.scale = None
        self.num_features = num_features
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.use_scale = use_scale
        self.reduction_axes = reduction_axes
        self.feature_axes = feature_axes
        self.axis_name = axis_name
        self.axis_index_groups = axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.promote_dtype = promote_dtype

    def __call__(self, x: Array, mask: Array | None = None) -> Array:
        """Normalize ``x`` by its root mean square over ``reduction_axes``."""
        x = jnp.asarray(x)
        if self.scale is not None:
            check_features(self, x, canonicalize_axes(x.ndim, self.feature_axes), self.num_features)
        x, scale = self.promote_dtype((x, value_or_none(self.scale)), dtype=self.dtype)
        mean, var = compute_stats(
            x,
            self.reduction_axes,
            self.dtype,
            self.axis_name,
            self.axis_index_groups,
            use_mean=False,
            use_fast_variance=self.use_fast_variance,
            mask=mask,
        )
        return normalize(
            x,
            mean,
            var,
            scale,
            None,
            self.reduction_axes,
            self.feature_axes,
            self.dtype,
            self.epsilon,
        )


class GroupNorm(nnx_graph.Module):
    """Group normalization: split the channels (last axis) into groups and
    normalize each group of each example over its channels and the non-batch axes.

    Give exactly one of ``num_groups`` (default 32) and ``group_size`` (pass
    ``num_groups=None`` with it).

    Args:
        num_features: number of channels.
        num_groups: number of groups (must divide ``num_features``).
        group_size: channels per group (must divide ``num_features``).
        epsilon: added to the variance (default ``1e-6``).
        reduction_axes: axes to compute statistics over (default: every axis but
            the first, which is the batch axis).
        dtype, param_dtype, use_bias, use_scale, bias_init, scale_init,
        axis_name, axis_index_groups, use_fast_variance, promote_dtype, rngs,
        bias_metadata, scale_metadata: as in :class:`BatchNorm`.

    Params: ``scale``, ``bias`` ``(num_features,)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> gn = nnx_nn.GroupNorm(6, num_groups=3, rngs=nnx_graph.Rngs(0))
        >>> gn(jnp.ones((2, 5, 6))).shape
        (2, 5, 6)
    """

    scale: nnx_graph.Param[Array] | None
    bias: nnx_graph.Param[Array] | None
    _config_fields = ("num_features", "num_groups")

    def __init__(
        self,
        num_features: int,
        num_groups: int | None = 32,
        group_size: int | None = None,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        reduction_axes: Axes | None = None,
        axis_name: str | None = None,
        axis_index_groups: tp.Any = None,
        use_fast_variance: bool = True,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        scale_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        where = (
            f"GroupNorm(num_features={num_features!r}, num_groups={num_groups!r}, "
            f"group_size={group_size!r})"
        )
        check_positive_int(where, num_features=num_features)
        if (num_groups is None) == (group_size is None):
            raise LayerConfigError(
                f"{where}: expected exactly one of num_groups and group_size. Fix: pass "
                "num_groups=G, or num_groups=None together with group_size=S."
            )
        if group_size is not None:
            check_positive_int(where, group_size=group_size)
            if num_features % group_size:
                raise LayerConfigError(
                    f"{where}: group_size must divide num_features, found remainder "
                    f"{num_features % group_size}. Fix: pick a divisor of {num_features}."
                )
            num_groups = num_features // group_size
        else:
            check_positive_int(where, num_groups=num_groups)
            assert num_groups is not None
            if num_features % num_groups:
                raise LayerConfigError(
                    f"{where}: num_groups must divide num_features ({num_features}), found "
                    f"remainder {num_features % num_groups}. Fix: pick a divisor of "
                    f"{num_features} (the default num_groups=32 needs a multiple of 32)."
                )
            group_size = num_features // num_groups
        self.feature_axis = -1
        self.num_groups = num_groups
        self.group_size = group_size
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
        self.use_bias = use_bias
        self.use_scale = use_scale
        self.reduction_axes = reduction_axes
        self.axis_name = axis_name
        self.axis_index_groups = axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.promote_dtype = promote_dtype

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        """Normalize ``x`` of shape ``(batch, ..., num_features)`` per group."""
        x = jnp.asarray(x)
        check_features(self, x, (x.ndim - 1,) if x.ndim else (0,), self.num_features)
        if self.reduction_axes is not None:
            reduction: Axes = self.reduction_axes
        else:
            reduction = [*range(1, x.ndim - 1), -1]
        reduction_axes = canonicalize_axes(x.ndim, reduction)
        group_shape = (*x.shape[:-1], self.num_groups, self.group_size)
        if mask is not None:
            mask = mask.reshape((*mask.shape[:-1], self.num_groups, self.group_size))
        x, scale, bias = self.promote_dtype(
            (x, value_or_none(self.scale), value_or_none(self.bias)), dtype=self.dtype
        )
        mean, var = compute_stats(
            x.reshape(group_shape),
            [*reduction_axes[:-1], -1],
            self.dtype,
            self.axis_name,
            self.axis_index_groups,
            use_fast_variance=self.use_fast_variance,
            mask=mask,
        )
        mean = jnp.repeat(mean, self.group_size, axis=1)
        var = jnp.repeat(var, self.group_size, axis=1)
        return normalize(
            x,
            mean,
            var,
            scale,
            bias,
            reduction_axes[:-1],
            (self.feature_axis,),
            self.dtype,
            self.epsilon,
        )


class InstanceNorm(nnx_graph.Module):
    """Instance normalization: normalize every channel of every example over the
    remaining (spatial) axes. The first axis is the batch axis.

    Args:
        num_features: number of channels (the size of ``feature_axes``).
        epsilon: added to the variance (default ``1e-6``).
        feature_axes: channel axes, with their own ``scale``/``bias``
            (default ``-1``); may not include axis 0.
        dtype, param_dtype, use_bias, use_scale, bias_init, scale_init,
        axis_name, axis_index_groups, use_fast_variance, promote_dtype, rngs,
        bias_metadata, scale_metadata: as in :class:`BatchNorm`.

    Params: ``scale``, ``bias`` ``(num_features,)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> norm = nnx_nn.InstanceNorm(3, rngs=nnx_graph.Rngs(0))
        >>> y = norm(jnp.arange(24.0).reshape(2, 4, 3))
        >>> y.mean(1).round(4).tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """

    scale: nnx_graph.Param[Array] | None
    bias: nnx_graph.Param[Array] | None
    _config_fields = ("num_features",)

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        feature_axes: Axes = -1,
        axis_name: str | None = None,
        axis_index_groups: tp.Any = None,
        use_fast_variance: bool = True,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        scale_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        check_positive_int(
            f"InstanceNorm(num_features={num_features!r})", num_features=num_features
        )
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
        self.use_bias = use_bias
        self.use_scale = use_scale
        self.feature_axes = feature_axes
        self.axis_name = axis_name
        self.axis_index_groups = axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.promote_dtype = promote_dtype

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        """Normalize each channel of each example of ``x`` ``(batch, ..., channels)``."""
        x = jnp.asarray(x)
        feature_axes = canonicalize_axes(x.ndim, self.feature_axes)
        if 0 in feature_axes:
            raise InputShapeError(
                describe(self),
                f"feature_axes {self.feature_axes} include axis 0 of inputs of shape "
                f"{x.shape}, but axis 0 is the batch axis. Fix: pass inputs with a leading "
                "batch axis, or feature_axes that exclude it.",
            )
        check_features(self, x, feature_axes, self.num_features)
        reduction_axes = [i for i in range(1, x.ndim) if i not in feature_axes]
        x, scale, bias = self.promote_dtype(
            (x, value_or_none(self.scale), value_or_none(self.bias)), dtype=self.dtype
        )
        mean, var = compute_stats(
            x,
            reduction_axes,
            self.dtype,
            self.axis_name,
            self.axis_index_groups,
            use_fast_variance=self.use_fast_variance,
            mask=mask,
        )
        return normalize(
            x, mean, var, scale, bias, reduction_axes, feature_axes, self.dtype, self.epsilon
        )
