"""Convolutions: Conv and ConvTranspose (channels-last, any number of spatial axes).

Inputs are ``(*batch, *spatial, features)``. Several batch axes are flattened into
one for the convolution and restored afterwards; an input without a batch axis
gets one added and removed, so single-example code works.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Sequence
from types import MappingProxyType

import jax.numpy as jnp
import numpy as np
from jax import lax

import nnx_graph
from nnx_nn._dtypes import promote_dtype as default_promote_dtype
from nnx_nn._errors import (
    InputShapeError,
    LayerConfigError,
    check_positive_int,
    describe,
    new_param,
)
from nnx_nn._linear import contraction_kwargs, default_bias_init, default_kernel_init
from nnx_nn._typing import Array, Dtype, Initializer, PaddingLike, PrecisionLike, PromoteDtypeFn

__all__ = ["Conv", "ConvTranspose", "canonicalize_padding"]

_CONV_PADDINGS = ("SAME", "VALID", "SAME_LOWER", "CIRCULAR", "REFLECT", "CAUSAL")
_CONV_TRANSPOSE_PADDINGS = ("SAME", "VALID", "CIRCULAR", "CAUSAL")
_PADDING_HELP = (
    "a string ({modes}), an int (the same padding on both sides of every spatial axis), "
    "or a sequence of {rank} ints or (low, high) pairs"
)


def canonicalize_padding(padding: PaddingLike, rank: int) -> str | list[tuple[int, int]]:
    """Padding as ``jax.lax`` takes it: a string, or ``rank`` ``(low, high)`` pairs.

    Example::

        >>> from nnx_nn.nn import canonicalize_padding
        >>> canonicalize_padding(1, 2)
        [(1, 1), (1, 1)]
        >>> canonicalize_padding([2, (0, 1)], 2)
        [(2, 2), (0, 1)]
    """
    if isinstance(padding, str):
        return padding
    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * rank
    if isinstance(padding, Sequence) and len(padding) == rank:
        pairs: list[tuple[int, int]] = []
        for p in padding:
            if isinstance(p, (int, np.integer)):
                pairs.append((int(p), int(p)))
            elif isinstance(p, Sequence) and len(p) == 2:
                pairs.append((int(p[0]), int(p[1])))
            else:
                break
        if len(pairs) == rank:
            return pairs
    raise ValueError(f"invalid padding {padding!r}")


def _broadcast_ints(
    value: int | Sequence[int] | None, rank: int, name: str, where: str
) -> tuple[int, ...]:
    """``None``/int/sequence -> a tuple of ``rank`` positive ints (checked)."""
    if value is None:
        value = 1
    out = (int(value),) * rank if isinstance(value, (int, np.integer)) else tuple(value)
    if len(out) != rank:
        raise LayerConfigError(
            f"{where}: {name} has {len(out)} entries but the kernel has {rank} spatial axes "
            f"(kernel_size rank). Fix: pass one {name} per spatial axis, or a single int."
        )
    if any(not isinstance(v, (int, np.integer)) or v < 1 for v in out):
        raise LayerConfigError(
            f"{where}: {name} must hold positive integers, found {value!r}. Fix: use values >= 1."
        )
    return out


def _check_padding(padding: PaddingLike, rank: int, modes: tuple[str, ...], where: str) -> None:
    help_text = _PADDING_HELP.format(modes=", ".join(repr(m) for m in modes), rank=rank)
    if isinstance(padding, str):
        if padding not in modes:
            raise LayerConfigError(
                f"{where}: unknown padding {padding!r}; expected {help_text}. Fix: e.g. "
                "padding='SAME'."
            )
        if padding == "CAUSAL" and rank != 1:
            raise LayerConfigError(
                f"{where}: padding='CAUSAL' needs a 1D convolution, found a kernel with {rank} "
                "spatial axes. Fix: use explicit padding pairs, e.g. [(k - 1, 0), (p, p)]."
            )
        return
    try:
        canonicalize_padding(padding, rank)
    except ValueError:
        raise LayerConfigError(
            f"{where}: invalid padding {padding!r}; expected {help_text}."
        ) from None


def _kernel_size(kernel_size: int | Sequence[int], where: str) -> tuple[int, ...]:
    size = (int(kernel_size),) if isinstance(kernel_size, (int, np.integer)) else tuple(kernel_size)
    if not size or any(not isinstance(k, (int, np.integer)) or k < 1 for k in size):
        raise LayerConfigError(
            f"{where}: kernel_size must be a positive int or a non-empty sequence of positive "
            f"ints, found {kernel_size!r}. Fix: e.g. kernel_size=3 or kernel_size=(3, 3)."
        )
    return size


def _check_mask(mask: Array | None, kernel_shape: tuple[int, ...], where: str) -> None:
    if mask is not None and tuple(np.shape(mask)) != kernel_shape:
        raise LayerConfigError(
            f"{where}: mask must have the kernel's shape {kernel_shape}, found "
            f"{tuple(np.shape(mask))}. Fix: pass a mask of shape {kernel_shape}."
        )


def _flatten_batch(
    layer: object, inputs: Array, rank: int, features: int
) -> tuple[Array, tuple[int, ...] | None]:
    """Check the input and reshape it to ``(batch, *spatial, features)``; also return
    the original batch shape when it had to be changed."""
    shape = inputs.shape
    if inputs.ndim < rank + 1 or shape[-1] != features:
        expected = f"(batch..., {', '.join(['spatial'] * rank)}, {features})"
        raise InputShapeError(
            describe(layer),
            f"expected inputs of shape {expected} ({rank} spatial axes, in_features="
            f"{features} last), found inputs of shape {shape}. Fix: put the channels last "
            f"(NHWC) and pass {rank} spatial axes, or build the layer with matching "
            "in_features/kernel_size.",
        )
    num_batch = inputs.ndim - (rank + 1)
    if num_batch == 1:
        return inputs, None
    return jnp.reshape(inputs, (-1, *shape[num_batch:])), shape[:num_batch]


class Conv(nnx_graph.Module):
    """A convolution (``jax.lax.conv_general_dilated``) over channels-last inputs.

    Args:
        in_features: number of input channels.
        out_features: number of output channels.
        kernel_size: int (1D) or sequence with one size per spatial axis.
        strides: int or one per spatial axis (default 1).
        padding: ``'SAME'`` (default), ``'VALID'``, ``'SAME_LOWER'``,
            ``'CIRCULAR'`` (periodic), ``'REFLECT'``, ``'CAUSAL'`` (1D: left padding
            only, output of the input's length), an int, or one int / ``(low, high)``
            pair per spatial axis.
        input_dilation: int or one per spatial axis (dilates the input; a
            transposed convolution).
        kernel_dilation: int or one per spatial axis (atrous convolution).
        feature_group_count: split channels into groups (``in_features`` and
            ``out_features`` must be divisible by it; ``in_features`` for a
            depthwise convolution).
        use_bias: add a learned ``bias`` (default ``True``).
        mask: optional array of the kernel's shape multiplied into the kernel.
        dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype,
        preferred_element_type, rngs, kernel_metadata, bias_metadata: as in
        :class:`~nnx_nn.Linear`.
        conv_general_dilated: the convolution function.

    Params: ``kernel`` ``(*kernel_size, in_features // feature_group_count,
    out_features)``, ``bias`` ``(out_features,)``.

    Shapes: ``(*batch, *spatial, in_features) -> (*batch, *spatial_out,
    out_features)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> conv = nnx_nn.Conv(3, 4, kernel_size=(3, 3), strides=2, rngs=nnx_graph.Rngs(0))
        >>> conv.kernel.shape
        (3, 3, 3, 4)
        >>> conv(jnp.ones((2, 8, 8, 3))).shape
        (2, 4, 4, 4)
        >>> causal = nnx_nn.Conv(3, 4, 3, padding="CAUSAL", rngs=nnx_graph.Rngs(0))
        >>> causal(jnp.ones((5, 3))).shape   # one example, no batch axis
        (5, 4)
    """

    _config_fields = ("in_features", "out_features", "kernel_size")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1,
        *,
        padding: PaddingLike = "SAME",
        input_dilation: int | Sequence[int] | None = 1,
        kernel_dilation: int | Sequence[int] | None = 1,
        feature_group_count: int = 1,
        use_bias: bool = True,
        mask: Array | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        precision: PrecisionLike = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        conv_general_dilated: tp.Callable[..., Array] = lax.conv_general_dilated,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        preferred_element_type: Dtype | None = None,
        rngs: nnx_graph.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        where = (
            f"Conv(in_features={in_features!r}, out_features={out_features!r}, "
            f"kernel_size={kernel_size!r})"
        )
        check_positive_int(
            where,
            in_features=in_features,
            out_features=out_features,
            feature_group_count=feature_group_count,
        )
        size = _kernel_size(kernel_size, where)
        rank = len(size)
        if in_features % feature_group_count or out_features % feature_group_count:
            raise LayerConfigError(
                f"{where}: in_features and out_features must be divisible by "
                f"feature_group_count={feature_group_count}. Fix: choose a group count that "
                f"divides both {in_features} and {out_features}."
            )
        _broadcast_ints(strides, rank, "strides", where)
        _broadcast_ints(input_dilation, rank, "input_dilation", where)
        _broadcast_ints(kernel_dilation, rank, "kernel_dilation", where)
        _check_padding(padding, rank, _CONV_PADDINGS, where)
        kernel_shape = (*size, in_features // feature_group_count, out_features)
        _check_mask(mask, kernel_shape, where)

        self.kernel_shape = kernel_shape
        self.kernel = new_param(rngs, self, kernel_init, kernel_shape, param_dtype, kernel_metadata)
        self.bias: nnx_graph.Param[Array] | None = (
            new_param(rngs, self, bias_init, (out_features,), param_dtype, bias_metadata)
            if use_bias
            else None
        )
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = size
        self.strides = strides
        self.padding = padding
        self.input_dilation = input_dilation
        self.kernel_dilation = kernel_dilation
        self.feature_group_count = feature_group_count
        self.use_bias = use_bias
        self.mask = mask
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.conv_general_dilated = conv_general_dilated
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type

    def __call__(self, inputs: Array, out_sharding: tp.Any = None) -> Array:
        """Convolve ``inputs`` of shape ``(*batch, *spatial, in_features)``."""
        rank = len(self.kernel_size)
        inputs, batch_shape = _flatten_batch(self, jnp.asarray(inputs), rank, self.in_features)
        strides = _broadcast_ints(self.strides, rank, "strides", describe(self))
        input_dilation = _broadcast_ints(
            self.input_dilation, rank, "input_dilation", describe(self)
        )
        kernel_dilation = _broadcast_ints(
            self.kernel_dilation, rank, "kernel_dilation", describe(self)
        )

        padding = canonicalize_padding(self.padding, rank)
        if padding in ("CIRCULAR", "REFLECT"):
            dilated = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, kernel_dilation)]
            pads = [(0, 0), *[((k - 1) // 2, k // 2) for k in dilated], (0, 0)]
            inputs = jnp.pad(inputs, pads, mode="wrap" if padding == "CIRCULAR" else "reflect")
            padding = "VALID"
        elif padding == "CAUSAL":
            left = kernel_dilation[0] * (self.kernel_size[0] - 1)
            inputs = jnp.pad(inputs, [(0, 0), (left, 0), (0, 0)])
            padding = "VALID"

        if isinstance(padding, str) and any(d != 1 for d in input_dilation):
            # lax takes only explicit padding together with input dilation: resolve the
            # string against the dilated input.
            dilated_in = [(n - 1) * d + 1 for n, d in zip(inputs.shape[1:-1], input_dilation)]
            dilated_k = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, kernel_dilation)]
            padding = list(lax.padtype_to_pads(dilated_in, dilated_k, strides, padding))

        kernel = self.kernel[...]
        if self.mask is not None:
            kernel = kernel * self.mask
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)

        spec = (0, inputs.ndim - 1, *range(1, inputs.ndim - 1))
        kernel_spec = (inputs.ndim - 1, inputs.ndim - 2, *range(inputs.ndim - 2))
        y = self.conv_general_dilated(
            inputs,
            kernel,
            strides,
            padding,
            lhs_dilation=input_dilation,
            rhs_dilation=kernel_dilation,
            dimension_numbers=lax.ConvDimensionNumbers(spec, kernel_spec, spec),
            feature_group_count=self.feature_group_count,
            precision=self.precision,
            **contraction_kwargs(self.preferred_element_type, out_sharding),
        )
        if bias is not None:
            y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        if batch_shape is not None:
            y = jnp.reshape(y, (*batch_shape, *y.shape[1:]))
        return y


class ConvTranspose(nnx_graph.Module):
    """A transposed convolution (``jax.lax.conv_transpose``) over channels-last
    inputs: the gradient of a convolution, used for upsampling.

    Args:
        in_features: number of input channels.
        out_features: number of output channels.
        kernel_size: int (1D) or sequence with one size per spatial axis.
        strides: int or one per spatial axis (default 1): the upsampling factor.
        padding: ``'SAME'`` (default, output = input * stride), ``'VALID'``,
            ``'CIRCULAR'`` (periodic), ``'CAUSAL'`` (1D: output ``t`` depends only on
            inputs ``i`` with ``i * stride <= t``; output = input * stride), an int,
            or one int / ``(low, high)`` pair per spatial axis. Unlike PyTorch,
            explicit padding is applied to the dilated input as is.
        kernel_dilation: int or one per spatial axis.
        use_bias: add a learned ``bias`` (default ``True``).
        mask: optional array of the kernel's shape multiplied into the kernel.
        transpose_kernel: flip the spatial axes and swap the channel axes of the
            kernel (the exact gradient of ``Conv``); the kernel is then stored as
            ``(*kernel_size, out_features, in_features)``.
        dtype, param_dtype, precision, kernel_init, bias_init, promote_dtype,
        preferred_element_type, rngs, kernel_metadata, bias_metadata: as in
        :class:`~nnx_nn.Linear`.

    Params: ``kernel`` ``(*kernel_size, in_features, out_features)``, ``bias``
    ``(out_features,)``.

    Example::

        >>> import jax.numpy as jnp, nnx_graph, nnx_nn
        >>> up = nnx_nn.ConvTranspose(3, 4, kernel_size=(3, 3), strides=2,
        ...                           rngs=nnx_graph.Rngs(0))
        >>> up(jnp.ones((1, 5, 5, 3))).shape
        (1, 10, 10, 4)
    """

    _config_fields = ("in_features", "out_features", "kernel_size")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = None,
        *,
        padding: PaddingLike = "SAME",
        kernel_dilation: int | Sequence[int] | None = None,
        use_bias: bool = True,
        mask: Array | None = None,
        dtype: Dtype | None = None,
        param_dtype: Dtype = jnp.float32,
        precision: PrecisionLike | None = None,
        kernel_init: Initializer = default_kernel_init,
        bias_init: Initializer = default_bias_init,
        transpose_kernel: bool = False,
        promote_dtype: PromoteDtypeFn = default_promote_dtype,
        preferred_element_type: Dtype | None = None,
        rngs: nnx_graph.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ) -> None:
        where = (
            f"ConvTranspose(in_features={in_features!r}, out_features={out_features!r}, "
            f"kernel_size={kernel_size!r})"
        )
        check_positive_int(where, in_features=in_features, out_features=out_features)
        size = _kernel_size(kernel_size, where)
        rank = len(size)
        _broadcast_ints(strides, rank, "strides", where)
        _broadcast_ints(kernel_dilation, rank, "kernel_dilation", where)
        _check_padding(padding, rank, _CONV_TRANSPOSE_PADDINGS, where)
        if transpose_kernel:
            kernel_shape = (*size, out_features, in_features)
        else:
            kernel_shape = (*size, in_features, out_features)
        _check_mask(mask, kernel_shape, where)

        self.kernel_size = size
        self.in_features = in_features
        self.out_features = out_features
        self.strides = strides
        self.padding = padding
        self.kernel_dilation = kernel_dilation
        self.use_bias = use_bias
        self.mask = mask
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self.transpose_kernel = transpose_kernel
        self.promote_dtype = promote_dtype
        self.preferred_element_type = preferred_element_type
        self.kernel_shape = kernel_shape
        self.kernel = new_param(rngs, self, kernel_init, kernel_shape, param_dtype, kernel_metadata)
        self.bias: nnx_graph.Param[Array] | None = (
            new_param(rngs, self, bias_init, (out_features,), param_dtype, bias_metadata)
            if use_bias
            else None
        )

    def __call__(self, inputs: Array) -> Array:
        """Apply the transposed convolution to ``(*batch, *spatial, in_features)``."""
        rank = len(self.kernel_size)
        inputs, batch_shape = _flatten_batch(self, jnp.asarray(inputs), rank, self.in_features)
        strides = _broadcast_ints(self.strides, rank, "strides", describe(self))
        kernel_dilation = _broadcast_ints(
            self.kernel_dilation, rank, "kernel_dilation", describe(self)
        )
        padding = canonicalize_padding(self.padding, rank)
        if padding == "CIRCULAR":
            padding = "VALID"
        elif padding == "CAUSAL":
            # Full left padding of the dilated input and `stride - 1` on the right: output
            # t sees inputs i with i * stride <= t, and has length input * stride.
            dilated = kernel_dilation[0] * (self.kernel_size[0] - 1) + 1
            padding = [(dilated - 1, strides[0] - 1)]

        kernel = self.kernel[...]
        if self.mask is not None:
            kernel = kernel * self.mask
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)

        y = lax.conv_transpose(
            inputs,
            kernel,
            strides,
            padding,
            rhs_dilation=kernel_dilation,
            transpose_kernel=self.transpose_kernel,
            precision=self.precision,
            preferred_element_type=self.preferred_element_type,
        )
        if self.padding == "CIRCULAR":
            y = self._wrap_circular(y, inputs.shape[1:-1], strides)
        if bias is not None:
            y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        if batch_shape is not None:
            y = jnp.reshape(y, (*batch_shape, *y.shape[1:]))
        return y

    def _wrap_circular(self, y: Array, spatial: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """Fold the VALID output periodically onto ``input * stride`` positions."""
        scaled = [n * s for n, s in zip(spatial, strides)]
        diffs = [-(out - n) % (2 * n) for out, n in zip(y.shape[1:-1], scaled)]
        if self.transpose_kernel:
            pads = [(d // 2, (d + 1) // 2) for d in diffs]
        else:
            pads = [((d + 1) // 2, d // 2) for d in diffs]
        y = jnp.pad(y, [(0, 0), *pads, (0, 0)])
        for i in range(1, y.ndim - 1):
            y = y.reshape((*y.shape[:i], -1, scaled[i - 1], *y.shape[i + 1 :]))
            y = y.sum(axis=i)
        return y
