"""Dense layers: Linear, LinearGeneral and Einsum (Embed is in ``_embed.py``).

Every layer initialises its Params eagerly from ``rngs.params()`` (kernel first,
then bias) and, when called, casts inputs and Params to one dtype with
``promote_dtype`` before the contraction.
"""

from __future__ import annotations

import dataclasses
import string
import typing as tp
from collections.abc import Sequence
from types import MappingProxyType

import jax.numpy as jnp
import numpy as np
from jax import lax

import nnx_graph
from nnx_nn import initializers
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    InputShapeError,
    LayerConfigError,
    check_axis_size,
    check_positive_int,
    describe,
    new_param,
    params_key,
)
from nnx_nn._typing import Array, Dtype, Initializer, PrecisionLike, PromoteDtypeFn, Shape

__all__ = [
    "Einsum",
    "Linear",
    "LinearGeneral",
    "default_bias_init",
    "default_kernel_init",
]

default_kernel_init: Initializer = initializers.lecun_normal()
default_bias_init: Initializer = initializers.zeros_init()


def contraction_kwargs(
    preferred_element_type: Dtype | None, out_sharding: tp.Any
) -> dict[str, tp.Any]:
    """Optional keyword arguments of ``dot_general``/``einsum``/convolutions, passed
    only when set so that user-supplied replacements need not accept them."""
    kwargs: dict[str, tp.Any] = {}
    if preferred_element_type is not None:
        kwargs["preferred_element_type"] = preferred_element_type
    if out_sharding is not None:
        kwargs["out_sharding"] = out_sharding
    return kwargs


def _as_tuple(x: int | Sequence[int]) -> tuple[int, ...]:
    return tuple(x) if isinstance(x, Sequence) else (x,)


def _normalize_axes(axes: Sequence[int], ndim: int) -> tuple[int, ...]:
    return tuple(sorted(a if a >= 0 else ndim + a for a in axes))


class Linear(nnx_graph.Module):
    """A linear map over the last axis: ``y = x @ kernel + bias``.

    Args:
        in_features: size of the input's last axis.
        out_features: size of the output's last axis.
        use_bias: add a learned ``bias`` (default ``True``).
        dtype: computation dtype (default: inferred from inputs and Params).
        param_dtype: dtype of the Params (default ``float32``).
        precision: ``jax.lax.Precision`` of the matmul.
        kernel_init: initializer of ``kernel`` (default ``lecun_normal()``).
        bias_init: initializer of ``bias`` (default zeros).
        dot_general: the contraction function (default ``jax.lax.dot_general``).
        promote_dtype: casts ``(inputs, kernel, bias)`` to one dtype.
        preferred_element_type: accumulation/output dtype passed to ``dot_general``.
        rngs: ``Rngs`` whose ``params`` stream initialises the Params.
        kernel_metadata / bias_metadata: metadata for the Params.

    Params: ``kernel`` ``(in_features, out_features)``, ``bias`` ``(out_features,)``.

    Shapes: ``(..., in_features) -> (..., out_features)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> layer = nnx_nn.Linear(3, 4, rngs=nnx_graph.Rngs(0))
        >>> layer.kernel.shape, layer.bias.shape
        ((3, 4), (4,))
        >>> layer(jnp.ones((2, 3))).shape
        (2, 4)
    """

    _config_fields = ("in_features", "out_features")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        precision: PrecisionLike = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        dot_general: tp.Callable[..., Array] = lax.dot_general,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        preferred_element_type: Dtype | None = None,
        rngs: nnx_graph.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        check_positive_int(
            f"{type(self).__name__}(in_features={in_features!r}, out_features={out_features!r})",
            in_features=in_features,
            out_features=out_features,
        )
        kernel_shape = (in_features, out_features)
        self.kernel = new_param(rngs, self, kernel_init, kernel_shape, param_dtype, kernel_metadata)
        self.bias: nnx_graph.Param[Array] | None = (
            new_param(rngs, self, bias_init, (out_features,), param_dtype, bias_metadata)
            if use_bias
            else None
        )
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.dot_general = dot_general
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type

    def __call__(self, inputs: Array, out_sharding: tp.Any = None) -> Array:
        """Apply the layer to ``inputs`` of shape ``(..., in_features)``."""
        inputs = jnp.asarray(inputs)
        # the kernel's own first axis, not the configured in_features: inside
        # nnx.shard_map a kernel sharded on that axis is the per-device slice
        check_axis_size(self, inputs, -1, self.kernel.shape[0], "in_features")
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype(
            (inputs, self.kernel[...], bias), dtype=self.dtype
        )
        y = self.dot_general(
            inputs,
            kernel,
            (((inputs.ndim - 1,), (0,)), ((), ())),
            precision=self.precision,
            **contraction_kwargs(self.preferred_element_type, out_sharding),
        )
        if bias is not None:
            y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        return y


class LinearGeneral(nnx_graph.Module):
    """A linear map contracting several input axes and producing several output
    axes, with optional batch axes shared between input and kernel.

    Args:
        in_features: size(s) of the contracted input axes.
        out_features: size(s) of the output feature axes (appended last).
        axis: the input axis or axes to contract (default ``-1``), one per
            ``in_features`` entry; ``in_features`` lists their sizes in increasing
            axis order.
        batch_axis: ``{axis: size}`` of leading batch axes that get their own
            kernel slice (must be ``0, 1, ...``).
        use_bias, dtype, param_dtype, precision, kernel_init, bias_init,
        promote_dtype, preferred_element_type, rngs, kernel_metadata,
        bias_metadata: as in :class:`Linear`.
        dot_general: contraction function (default ``jax.lax.dot_general``);
            ``dot_general_cls`` builds one per call (``dot_general_cls()``).

    Params: ``kernel`` ``(*batch_sizes, *in_features, *out_features)``, ``bias``
    ``(*batch_sizes, *out_features)``. The initializers see the kernel as a matrix
    ``(prod(batch and in sizes), prod(out sizes))``, so fan-in/fan-out scaling
    matches a :class:`Linear` of the same total size.

    Shapes: the ``axis`` axes are replaced by ``out_features`` at the end.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> layer = nnx_nn.LinearGeneral(3, (2, 2), rngs=nnx_graph.Rngs(0))
        >>> layer.kernel.shape, layer.bias.shape
        ((3, 2, 2), (2, 2))
        >>> layer(jnp.ones((5, 3))).shape
        (5, 2, 2)
        >>> both = nnx_nn.LinearGeneral((1, 3), 4, axis=(1, 2), rngs=nnx_graph.Rngs(0))
        >>> both.kernel.shape, both(jnp.ones((5, 1, 3))).shape
        ((1, 3, 4), (5, 4))
    """

    _config_fields = ("in_features", "out_features", "axis")

    def __init__(
        self,
        in_features: int | Sequence[int],
        out_features: int | Sequence[int],
        *,
        axis: int | Sequence[int] = -1,
        batch_axis: tp.Mapping[int, int] = MappingProxyType({}),
        use_bias: bool = True,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        precision: PrecisionLike = None,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        dot_general: tp.Callable[..., Array] | None = None,
        dot_general_cls: tp.Any = None,
        preferred_element_type: Dtype | None = None,
        rngs: nnx_graph.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        self.in_features = _as_tuple(in_features)
        self.out_features = _as_tuple(out_features)
        self.axis = _as_tuple(axis)
        name = (
            f"LinearGeneral(in_features={in_features!r}, out_features={out_features!r}, "
            f"axis={axis!r})"
        )
        check_positive_int(name, **{f"in_features[{i}]": f for i, f in enumerate(self.in_features)})
        check_positive_int(
            name, **{f"out_features[{i}]": f for i, f in enumerate(self.out_features)}
        )
        if len(self.in_features) != len(self.axis):
            raise LayerConfigError(
                f"{name}: expected one axis per in_features entry, found "
                f"{len(self.in_features)} in_features and {len(self.axis)} axes. Fix: pass "
                f"axis with {len(self.in_features)} entries, e.g. axis="
                f"{tuple(range(-len(self.in_features), 0))}."
            )
        if len(set(self.axis)) != len(self.axis):
            raise LayerConfigError(
                f"{name}: axis has repeated entries {self.axis}. Fix: list "
                "each contracted axis once."
            )
        batch_dims = tuple(sorted(batch_axis))
        if batch_dims and batch_dims != tuple(range(len(batch_dims))):
            raise LayerConfigError(
                f"{name}: batch_axis keys must be the leading axes 0, 1, ..., found "
                f"{batch_dims}. Fix: move the batch axes to the front of the input."
            )
        self.batch_axis = MappingProxyType(dict(sorted(batch_axis.items())))
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.dot_general = dot_general
        self.dot_general_cls = dot_general_cls
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type

        batch_shape = tuple(self.batch_axis.values())
        kernel_shape = (*batch_shape, *self.in_features, *self.out_features)
        flat_kernel = (
            int(np.prod(batch_shape + self.in_features)),
            int(np.prod(self.out_features)),
        )
        self.kernel = nnx_graph.Param(
            _reshaped_init(
                kernel_init, params_key(rngs, self), flat_kernel, kernel_shape, param_dtype
            ),
            **kernel_metadata,
        )
        self.bias: nnx_graph.Param[Array] | None
        if use_bias:
            bias_shape = (*batch_shape, *self.out_features)
            self.bias = nnx_graph.Param(
                _reshaped_init(
                    bias_init,
                    params_key(rngs, self),
                    (int(np.prod(bias_shape)),),
                    bias_shape,
                    param_dtype,
                ),
                **bias_metadata,
            )
        else:
            self.bias = None

    def _check_inputs(
        self, inputs: Array, axes: tuple[int, ...], batch_axes: tuple[int, ...]
    ) -> None:
        shape = inputs.shape
        if any(a < 0 or a >= inputs.ndim for a in axes + batch_axes):
            raise InputShapeError(
                describe(self),
                f"expected inputs with axes {self.axis} (and batch axes "
                f"{tuple(self.batch_axis)}), found inputs of shape {shape} "
                f"({inputs.ndim} dimensions). Fix: pass inputs with enough dimensions.",
            )
        for ax, size in zip(axes, self.in_features):
            if shape[ax] != size:
                raise InputShapeError(
                    describe(self),
                    f"expected inputs with size {self.in_features} on axes {self.axis}, found "
                    f"inputs of shape {shape} (axis {ax} has size {shape[ax]}). Fix: pass "
                    f"inputs whose contracted axes have sizes {self.in_features}, or build the "
                    "layer with matching in_features.",
                )
        for ax, size in zip(batch_axes, self.batch_axis.values()):
            if shape[ax] != size:
                raise InputShapeError(
                    describe(self),
                    f"expected batch axis {ax} of size {size} (batch_axis="
                    f"{dict(self.batch_axis)}), found inputs of shape {shape}.",
                )

    def __call__(self, inputs: Array, out_sharding: tp.Any = None) -> Array:
        """Contract ``inputs`` over ``axis`` with the kernel."""
        inputs = jnp.asarray(inputs)
        ndim = inputs.ndim
        # Like Flax, the contracted axes are taken in increasing order and paired
        # with the kernel's in_features axes in that order.
        axes = _normalize_axes(self.axis, ndim)
        batch_axes = _normalize_axes(tuple(self.batch_axis), ndim)
        self._check_inputs(inputs, axes, batch_axes)
        n_batch = len(self.batch_axis)
        contract_ind = tuple(range(n_batch, n_batch + len(axes)))
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype(
            (inputs, self.kernel[...], bias), dtype=self.dtype
        )
        if self.dot_general_cls is not None:
            dot_general = self.dot_general_cls()
        elif self.dot_general is not None:
            dot_general = self.dot_general
        else:
            dot_general = lax.dot_general
        out = dot_general(
            inputs,
            kernel,
            ((axes, contract_ind), (batch_axes, tuple(range(n_batch)))),
            precision=self.precision,
            **contraction_kwargs(self.preferred_element_type, out_sharding),
        )
        if bias is not None:
            expanded_batch_shape = tuple(
                inputs.shape[ax] if ax in batch_axes else 1 for ax in range(ndim) if ax not in axes
            )
            out += jnp.reshape(bias, (*expanded_batch_shape, *self.out_features))
        return tp.cast(Array, out)


def _reshaped_init(
    init: Initializer, key: Array, flat_shape: tuple[int, ...], shape: tuple[int, ...], dtype: Dtype
) -> tp.Any:
    """Initialise as ``flat_shape`` (so fan-in/out are computed on a matrix) and
    reshape to ``shape``; keeps metadata from ``nnx_graph.with_metadata``."""
    value = init(key, flat_shape, dtype)
    if isinstance(value, nnx_graph.VariableMetadata):
        return dataclasses.replace(value, raw_value=jnp.reshape(value.raw_value, shape))
    return jnp.reshape(value, shape)


def _einsum_parts(einsum_str: str) -> tuple[str, str, str]:
    operands, result = einsum_str.split("->")
    lhs, rhs = operands.split(",")
    return lhs, rhs, result


def _expand_ellipsis(einsum_str: str, lhs_ndim: int, rhs_ndim: int) -> tuple[str, str, str]:
    """The equation's ``(lhs, rhs, out)`` with every ``...`` spelled out as letters.

    As in NumPy, the dimensions an ellipsis stands for are aligned from the right
    across both operands (the longer one sets their number), and the output's
    ellipsis stands for all of them.
    """
    lhs, rhs, out = _einsum_parts(einsum_str)
    n_lhs = lhs_ndim - len(lhs.replace("...", "")) if "..." in lhs else 0
    n_rhs = rhs_ndim - len(rhs.replace("...", "")) if "..." in rhs else 0
    n = max(n_lhs, n_rhs, 0)
    used = set(einsum_str)
    fresh = [c for c in string.ascii_letters if c not in used][:n]

    def fill(spec: str, count: int) -> str:
        return spec.replace("...", "".join(fresh[n - count :]) if count > 0 else "")

    return fill(lhs, n_lhs), fill(rhs, n_rhs), fill(out, n)


class Einsum(nnx_graph.Module):
    """A learned einsum: ``y = einsum(einsum_str, inputs, kernel) + bias``.

    Args:
        einsum_str: an explicit two-operand equation ``"lhs,rhs->out"``; ``lhs``
            describes the input, ``rhs`` the kernel. May instead be given per call.
        kernel_shape: shape of ``kernel``.
        bias_shape: shape of ``bias`` (``None``: no bias). It is broadcast against
            the output on the axes whose letters come from the kernel.
        dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype,
        preferred_element_type, rngs, kernel_metadata, bias_metadata: as in
        :class:`Linear`.
        einsum_op: the einsum function (default ``jax.numpy.einsum``).

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> layer = nnx_nn.Einsum("btc,co->bto", (3, 4), (4,), rngs=nnx_graph.Rngs(0))
        >>> layer(jnp.ones((2, 5, 3))).shape
        (2, 5, 4)
        >>> layer(jnp.ones((2, 5, 3)), "btc,co->bo").shape    # another equation per call
        (2, 4)
    """

    _config_fields = ("einsum_str", "kernel_shape")

    def __init__(
        self,
        einsum_str: str,
        kernel_shape: Shape,
        bias_shape: Shape | None = None,
        *,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        precision: PrecisionLike = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        einsum_op: tp.Callable[..., Array] = jnp.einsum,
        preferred_element_type: Dtype | None = None,
        rngs: nnx_graph.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        einsum_str = einsum_str.replace(" ", "")
        # a single int is a one-axis shape, as for the other layers' feature sizes
        kernel_shape = (kernel_shape,) if isinstance(kernel_shape, int) else kernel_shape
        bias_shape = (bias_shape,) if isinstance(bias_shape, int) else bias_shape
        self._check_einsum_str(einsum_str, tuple(kernel_shape))
        self.kernel = new_param(
            rngs, self, kernel_init, tuple(kernel_shape), param_dtype, kernel_metadata
        )
        self.bias: nnx_graph.Param[Array] | None = (
            new_param(rngs, self, bias_init, tuple(bias_shape), param_dtype, bias_metadata)
            if bias_shape is not None
            else None
        )
        self.einsum_str = einsum_str
        self.kernel_shape = tuple(kernel_shape)
        self.bias_shape = None if bias_shape is None else tuple(bias_shape)
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.promote_dtype = promote_dtype
        self.einsum_op = einsum_op
        self.preferred_element_type = preferred_element_type

    def _check_einsum_str(self, einsum_str: str, kernel_shape: tuple[int, ...]) -> None:
        where = f"Einsum({einsum_str!r}, kernel_shape={kernel_shape})"
        if "->" not in einsum_str:
            raise LayerConfigError(
                f"{where}: the equation must be explicit, found no '->'. Fix: write the output "
                "spec, e.g. 'ab,bc->ac'."
            )
        if einsum_str.count(",") != 1:
            raise LayerConfigError(
                f"{where}: expected exactly two operands (one comma: inputs,kernel), found "
                f"{einsum_str.count(',') + 1}. Fix: use an equation like 'ab,bc->ac'."
            )
        rhs = _einsum_parts(einsum_str)[1]
        if "..." not in rhs and len(rhs) != len(kernel_shape):
            raise LayerConfigError(
                f"{where}: the kernel spec {rhs!r} has {len(rhs)} axes but kernel_shape has "
                f"{len(kernel_shape)}. Fix: make kernel_shape match the second operand."
            )

    def _check_inputs(self, einsum_str: str, inputs: Array) -> None:
        lhs, rhs, _ = _einsum_parts(einsum_str)
        n_named = len(lhs.replace("...", ""))
        if ("..." in lhs and inputs.ndim < n_named) or (
            "..." not in lhs and inputs.ndim != n_named
        ):
            raise InputShapeError(
                f"Einsum({einsum_str!r}, kernel_shape={self.kernel_shape})",
                f"expected inputs with {n_named} axes (spec {lhs!r}), found inputs of shape "
                f"{inputs.shape}. Fix: reshape the inputs to match the equation.",
            )
        lhs, rhs, _ = _expand_ellipsis(einsum_str, inputs.ndim, len(self.kernel_shape))
        kernel_axes = {c: i for i, c in enumerate(rhs)}
        for axis, letter in enumerate(lhs):
            if letter in kernel_axes:
                size = self.kernel_shape[kernel_axes[letter]]
                broadcast = letter not in einsum_str and 1 in (size, inputs.shape[axis])
                if inputs.shape[axis] != size and not broadcast:
                    raise InputShapeError(
                        f"Einsum({einsum_str!r}, kernel_shape={self.kernel_shape})",
                        f"expected inputs with size {size} on axis {axis} (letter {letter!r}, "
                        f"shared with the kernel), found inputs of shape {inputs.shape}. Fix: "
                        "pass inputs matching the kernel or change kernel_shape.",
                    )

    def __call__(
        self, inputs: Array, einsum_str: str | None = None, out_sharding: tp.Any = None
    ) -> Array:
        """Apply the einsum; ``einsum_str`` overrides the one given at construction."""
        equation = (einsum_str if einsum_str is not None else self.einsum_str).replace(" ", "")
        self._check_einsum_str(equation, self.kernel_shape)
        inputs = jnp.asarray(inputs)
        self._check_inputs(equation, inputs)
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype(
            (inputs, self.kernel[...], bias), dtype=self.dtype
        )
        y = self.einsum_op(
            equation,
            inputs,
            kernel,
            precision=self.precision,
            **contraction_kwargs(self.preferred_element_type, out_sharding),
        )
        if bias is not None:
            shape = self._bias_broadcast_shape(equation, inputs.ndim)
            if int(np.prod(shape)) != bias.size:
                raise TypeError(
                    f"Einsum({equation!r}, kernel_shape={self.kernel_shape}): cannot reshape "
                    f"the bias of shape {bias.shape} onto the output axes that come from the "
                    f"kernel, which need shape {shape}. Fix: build the layer with "
                    f"bias_shape={tuple(d for d in shape if d != 1)} (or bias_shape=None)."
                )
            y += jnp.reshape(bias, shape)
        return y

    def _bias_broadcast_shape(self, einsum_str: str, in_ndim: int) -> tuple[int, ...]:
        """The bias is laid out along the output axes that come from the kernel."""
        _, rhs, out = _expand_ellipsis(einsum_str, in_ndim, len(self.kernel_shape))
        kernel_axes = {c: i for i, c in enumerate(rhs)}
        return tuple(self.kernel_shape[kernel_axes[c]] if c in kernel_axes else 1 for c in out)
