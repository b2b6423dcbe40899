"""BatchNorm: normalize with batch statistics in training and running averages
(``BatchStat`` Variables) in evaluation."""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax.numpy as jnp
from jax import lax

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import LayerConfigError, check_positive_int, missing_mode_error
from nnx_nn._norm_base import NormLayer, canonicalize_axes, check_features, value_or_none
from nnx_nn._typing import Array, Dtype, Initializer, PromoteDtypeFn

__all__ = ["BatchNorm"]


class BatchNorm(NormLayer):
    """Batch normalization: normalize with the batch's statistics in training and
    with running averages (``BatchStat`` ``mean``/``var``) in evaluation.

    ``use_running_average=False`` (training, also set by ``model.train()``) uses
    the statistics of the current batch and updates the running averages:
    ``mean <- momentum * mean + (1 - momentum) * batch_mean`` (likewise ``var``).
    ``use_running_average=True`` (``model.eval()``) uses the stored averages.
    The call argument overrides the attribute.

    Args:
        num_features: size of the feature axis.
        use_running_average: see above (default ``False``).
        axis: the feature axis (default ``-1``); every other axis is reduced.
        momentum: decay of the running averages (default ``0.99``).
        epsilon: added to the variance (default ``1e-5``).
        dtype: result dtype (default: inferred from inputs and Params).
        param_dtype: dtype of ``scale``/``bias`` (default ``float32``).
        use_bias / use_scale: learn ``bias`` / ``scale`` (default ``True``).
        bias_init / scale_init: their initializers (zeros / ones).
        axis_name: average the statistics across this ``pmap``/``shard_map`` axis.
        axis_index_groups: subgroups of ``axis_name`` (see ``jax.lax.psum``).
        use_fast_variance: one-pass variance ``E[x²] - E[x]²``.
        promote_dtype: casts ``(x, mean, var, scale, bias)`` to one dtype.
        rngs: ``Rngs`` for the Params.
        bias_metadata / scale_metadata: metadata for the Params.

    Params: ``scale``, ``bias`` ``(num_features,)``; BatchStats ``mean``, ``var``
    ``(num_features,)`` (float32).

    Shapes: any input whose ``axis`` has ``num_features`` entries; output of the
    same shape.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> bn = nnx_nn.BatchNorm(3, momentum=0.9, rngs=nnx_graph.Rngs(0))
        >>> x = jnp.arange(12.0).reshape(4, 3)
        >>> y = bn(x)                     # training: batch statistics, updates mean/var
        >>> [round(m, 2) for m in bn.mean.value.tolist()]
        [0.45, 0.55, 0.65]
        >>> bn.eval(); y = bn(x)          # evaluation: running averages, no update
        >>> [round(m, 2) for m in bn.mean.value.tolist()]
        [0.45, 0.55, 0.65]
    """

    _config_fields = ("num_features", "axis")

    def __init__(
        self,
        num_features: int,
        *,
        use_running_average: bool | None = False,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-5,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        use_bias: bool = True,
        use_scale: bool = True,
        bias_init: Initializer = initializers.zeros,
        scale_init: Initializer = initializers.ones,
        axis_name: str | None = None,
        axis_index_groups: tp.Any = None,
        use_fast_variance: bool = True,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        rngs: nnx_graph.Rngs,
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        scale_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        check_positive_int(f"BatchNorm(num_features={num_features!r})", num_features=num_features)
        if not 0.0 <= momentum <= 1.0:
            raise LayerConfigError(
                f"BatchNorm(num_features={num_features}): momentum must be in [0, 1], found "
                f"{momentum!r}. Fix: e.g. momentum=0.99 (the weight of the old average)."
            )
        self.mean = nnx_graph.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx_graph.BatchStat(jnp.ones((num_features,), jnp.float32))
        self._setup(
            num_features,
            rngs,
            epsilon=epsilon,
            dtype=dtype,
            param_dtype=param_dtype,
            use_bias=use_bias,
            use_scale=use_scale,
            bias_init=bias_init,
            scale_init=scale_init,
            axis_name=axis_name,
            axis_index_groups=axis_index_groups,
            use_fast_variance=use_fast_variance,
            promote_dtype=promote_dtype,
            scale_metadata=scale_metadata,
            bias_metadata=bias_metadata,
        )
        self.use_running_average = use_running_average
        self.axis = axis
        self.momentum = momentum

    def set_view(self, use_running_average: bool | None = None) -> None:
        """Switch the mode in place; used by ``nnx.view`` (and ``train``/``eval``).

        Args:
            use_running_average: if True, normalize with the stored averages instead
                of the batch statistics (``None``: unchanged).

        Example::

            >>> import nnx_graph, nnx_nn
            >>> bn = nnx_nn.BatchNorm(3, rngs=nnx_graph.Rngs(0))
            >>> bn.set_view(use_running_average=True); bn.use_running_average
            True
        """
        if use_running_average is not None:
            self.use_running_average = use_running_average

    def __call__(
        self, x: Array, use_running_average: bool | None = None, *, mask: Array | None = None
    ) -> Array:
        """Normalize ``x``; ``use_running_average`` overrides the attribute."""
        if use_running_average is None:
            use_running_average = self.use_running_average
        if use_running_average is None:
            raise missing_mode_error(self, "use_running_average")
        x = jnp.asarray(x)
        feature_axes = canonicalize_axes(x.ndim, self.axis) if x.ndim else (x.ndim,)
        check_features(self, x, feature_axes, self.num_features)
        reduction_axes = tuple(i for i in range(x.ndim) if i not in feature_axes)
        x, mean, var, scale, bias = self.promote_dtype(
            (x, self.mean[...], self.var[...], value_or_none(self.scale), value_or_none(self.bias)),
            dtype=self.dtype,
        )
        if not use_running_average:
            mean, var = self._stats(x, reduction_axes, mask)
            # Running averages carry no gradient.
            momentum = self.momentum
            self.mean[...] = lax.stop_gradient(momentum * self.mean[...] + (1 - momentum) * mean)
            self.var[...] = lax.stop_gradient(momentum * self.var[...] + (1 - momentum) * var)
        return self._normalize(x, (mean, var), scale, bias, reduction_axes, feature_axes)
