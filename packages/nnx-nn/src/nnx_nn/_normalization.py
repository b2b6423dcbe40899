"""Per-example normalization: LayerNorm, RMSNorm, GroupNorm and InstanceNorm.

They share the :class:`~nnx_nn._norm_base.NormLayer` base (configuration, Param
creation and the statistics / normalize steps) with BatchNorm (``_batch_norm.py``).
"""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax.numpy as jnp

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import InputShapeError, LayerConfigError, check_positive_int, describe
from nnx_nn._norm_base import (
    NormLayer,
    canonicalize_axes,
    check_features,
    compute_stats,
    normalize,
    value_or_none,
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


class LayerNorm(NormLayer):
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
        self._setup(
            num_features,
            rngs,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            use_scale=use_scale,
            scale_init=scale_init,
            axis_name=axis_name,
            axis_index_groups=axis_index_groups,
            use_fast_variance=use_fast_variance,
            promote_dtype=promote_dtype,
            scale_metadata=scale_metadata,
            use_bias=use_bias,
            bias_init=bias_init,
            bias_metadata=bias_metadata,
        )
        self.reduction_axes = reduction_axes
        self.feature_axes = feature_axes

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        """Normalize ``x`` over ``reduction_axes``."""
        x = jnp.asarray(x)
        if self.scale is not None or self.bias is not None:
            check_features(self, x, canonicalize_axes(x.ndim, self.feature_axes), self.num_features)
        x, scale, bias = self._promoted(x)
        stats = self._stats(x, self.reduction_axes, mask)
        return self._normalize(x, stats, scale, bias, self.reduction_axes, self.feature_axes)


class RMSNorm(NormLayer):
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
        self._setup(
            num_features,
            rngs,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            use_scale=use_scale,
            scale_init=scale_init,
            axis_name=axis_name,
            axis_index_groups=axis_index_groups,
            use_fast_variance=use_fast_variance,
            promote_dtype=promote_dtype,
            scale_metadata=scale_metadata,
            use_bias=None,
            bias_init=None,
            bias_metadata=None,
        )
        self.reduction_axes = reduction_axes
        self.feature_axes = feature_axes

    def __call__(self, x: Array, mask: Array | None = None) -> Array:
        """Normalize ``x`` by its root mean square over ``reduction_axes``."""
        x = jnp.asarray(x)
        if self.scale is not None:
            check_features(self, x, canonicalize_axes(x.ndim, self.feature_axes), self.num_features)
        x, scale = self.promote_dtype((x, value_or_none(self.scale)), dtype=self.dtype)
        stats = self._stats(x, self.reduction_axes, mask, use_mean=False)
        return self._normalize(x, stats, scale, None, self.reduction_axes, self.feature_axes)


class GroupNorm(NormLayer):
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
        self._setup(
            num_features,
            rngs,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            use_scale=use_scale,
            scale_init=scale_init,
            axis_name=axis_name,
            axis_index_groups=axis_index_groups,
            use_fast_variance=use_fast_variance,
            promote_dtype=promote_dtype,
            scale_metadata=scale_metadata,
            use_bias=use_bias,
            bias_init=bias_init,
            bias_metadata=bias_metadata,
        )
        self.reduction_axes = reduction_axes

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
        x, scale, bias = self._promoted(x)
        mean, var = self._stats(x.reshape(group_shape), [*reduction_axes[:-1], -1], mask)
        stats = (
            jnp.repeat(mean, self.group_size, axis=1),
            jnp.repeat(var, self.group_size, axis=1),
        )
        return self._normalize(x, stats, scale, bias, reduction_axes[:-1], (self.feature_axis,))


class InstanceNorm(NormLayer):
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
        self._setup(
            num_features,
            rngs,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            use_scale=use_scale,
            scale_init=scale_init,
            axis_name=axis_name,
            axis_index_groups=axis_index_groups,
            use_fast_variance=use_fast_variance,
            promote_dtype=promote_dtype,
            scale_metadata=scale_metadata,
            use_bias=use_bias,
            bias_init=bias_init,
            bias_metadata=bias_metadata,
        )
        self.feature_axes = feature_axes

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
        x, scale, bias = self._promoted(x)
        stats = self._stats(x, reduction_axes, mask)
        return self._normalize(x, stats, scale, bias, reduction_axes, feature_axes)
