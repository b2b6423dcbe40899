"""Conv and ConvTranspose against a direct numpy convolution (explicit loops over
kernel offsets), for every padding mode, strides, dilations, groups and masks."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import assert_close, np_init, param_grads, ref_grads

NP = np_init()

RNG = np.random.default_rng(0)
X1 = RNG.normal(size=(2, 7, 4)).astype(np.float32)  # (batch, length, channels)
X2 = RNG.normal(size=(2, 6, 5, 4)).astype(np.float32)  # (batch, h, w, channels)


def reference_conv(
    x: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, ...],
    pads: list[tuple[int, int]],
    kernel_dilation: tuple[int, ...],
    input_dilation: tuple[int, ...] | None = None,
    groups: int = 1,
) -> np.ndarray:
    """Cross-correlation of channels-last ``x`` with ``w`` (*k, cin/groups, cout)."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    rank = w.ndim - 2
    if input_dilation is not None:
        shape = (
            [x.shape[0]]
            + [(n - 1) * d + 1 for n, d in zip(x.shape[1:-1], input_dilation)]
            + [x.shape[-1]]
        )
        dilated = np.zeros(shape)
        dilated[(slice(None), *[slice(None, None, d) for d in input_dilation])] = x
        x = dilated
    x = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_spatial = [
        (x.shape[1 + i] - ((w.shape[i] - 1) * kernel_dilation[i] + 1)) // strides[i] + 1
        for i in range(rank)
    ]
    cin_group, cout = w.shape[-2], w.shape[-1]
    out = np.zeros((x.shape[0], *out_spatial, cout))
    per_group = cout // groups
    for offset in itertools.product(*[range(k) for k in w.shape[:rank]]):
        window = tuple(
            slice(o * d, o * d + (n - 1) * s + 1, s)
            for o, d, n, s in zip(offset, kernel_dilation, out_spatial, strides)
        )
        patch = x[(slice(None), *window)]
        for g in range(groups):
            cin = slice(g * cin_group, (g + 1) * cin_group)
            cout_g = slice(g * per_group, (g + 1) * per_group)
            out[..., cout_g] += patch[..., cin] @ w[(*offset, slice(None), cout_g)]
    return out


def same_pads(n: int, k: int, s: int, d: int, lower: bool = False) -> tuple[int, int]:
    dk = (k - 1) * d + 1
    total = max((math.ceil(n / s) - 1) * s + dk - n, 0)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


@pytest.mark.parametrize(
    ("padding", "strides", "dilation"),
    [
        ("SAME", 1, 1),
        ("SAME", 2, 1),
        ("VALID", 1, 2),
        ("SAME_LOWER", 2, 1),
        (2, 1, 1),
        ([(2, 0)], 2, 1),
    ],
)
def test_conv1d_padding_strides_dilation(padding: object, strides: int, dilation: int) -> None:
    conv = nnx_nn.Conv(
        4,
        3,
        3,
        strides=strides,
        padding=padding,
        kernel_dilation=dilation,
        bias_init=nnx_nn.initializers.normal(1.0),
        kernel_init=NP,
        rngs=nnx_graph.Rngs(0),
    )
    if padding in ("SAME", "SAME_LOWER"):
        pads = [same_pads(7, 3, strides, dilation, lower=padding == "SAME_LOWER")]
    elif padding == "VALID":
        pads = [(0, 0)]
    elif isinstance(padding, int):
        pads = [(padding, padding)]
    else:
        pads = list(padding)  # type: ignore[arg-type]
    expected = reference_conv(X1, conv.kernel.value, (strides,), pads, (dilation,))
    assert_close(conv(X1), expected + np.asarray(conv.bias.value), rtol=1e-4)


def test_conv1d_circular_reflect_and_causal() -> None:
    conv = nnx_nn.Conv(4, 3, 3, padding="CIRCULAR", kernel_init=NP, rngs=nnx_graph.Rngs(0))
    kernel = conv.kernel.value
    wrapped = np.pad(X1, [(0, 0), (1, 1), (0, 0)], mode="wrap")
    assert_close(conv(X1), reference_conv(wrapped, kernel, (1,), [(0, 0)], (1,)), rtol=1e-4)
    conv.padding = "REFLECT"
    reflected = np.pad(X1, [(0, 0), (1, 1), (0, 0)], mode="reflect")
    assert_close(conv(X1), reference_conv(reflected, kernel, (1,), [(0, 0)], (1,)), rtol=1e-4)
    causal = nnx_nn.Conv(
        4, 3, 3, padding="CAUSAL", kernel_dilation=2, kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    y = causal(X1)
    assert y.shape == (2, 7, 3)
    assert_close(y, reference_conv(X1, causal.kernel.value, (1,), [(4, 0)], (2,)), rtol=1e-4)


def test_conv2d_groups_mask_input_dilation_and_gradients() -> None:
    mask = (RNG.uniform(size=(3, 2, 2, 6)) > 0.3).astype(np.float32)
    conv = nnx_nn.Conv(
        4,
        6,
        (3, 2),
        strides=(2, 1),
        padding="VALID",
        feature_group_count=2,
        input_dilation=(1, 2),
        mask=jnp.asarray(mask),
        kernel_init=NP,
        rngs=nnx_graph.Rngs(0),
    )
    assert conv.kernel.shape == (3, 2, 2, 6)

    def reference(kernel: np.ndarray) -> np.ndarray:
        return reference_conv(
            X2, kernel * mask, (2, 1), [(0, 0), (0, 0)], (1, 1), input_dilation=(1, 2), groups=2
        )

    assert_close(conv(X2), reference(np.asarray(conv.kernel.value)), rtol=1e-4)
    grads = param_grads(conv, lambda m: jnp.sum(m(X2) ** 2))

    def jax_reference(kernel: jax.Array, bias: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(
            X2,
            kernel * mask,
            (2, 1),
            [(0, 0), (0, 0)],
            lhs_dilation=(1, 2),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=2,
        )
        return jnp.sum((y + bias) ** 2)

    gk, gb = ref_grads(jax_reference, conv.kernel.value, conv.bias.value)
    assert_close(grads[("kernel",)], gk, rtol=1e-4)
    assert_close(grads[("bias",)], gb, rtol=1e-4)
    assert float(np.abs(grads[("kernel",)] * (1 - mask)).max()) == 0.0


def test_conv_batch_axes_are_flattened_and_restored() -> None:
    conv = nnx_nn.Conv(4, 3, 3, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    single = conv(X1[0])
    assert single.shape == (7, 3)
    assert_close(single, conv(X1)[0])
    many = conv(np.stack([X1, X1]))
    assert many.shape == (2, 2, 7, 3)
    assert_close(many[1], conv(X1))


def full_transpose_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Transposed conv by its scatter definition (jax convention: no kernel flip is a
    correlation on the dilated input, i.e. a scatter with the flipped kernel)."""
    k = w.shape[0]
    n = x.shape[1]
    out = np.zeros((x.shape[0], (n - 1) * stride + k, w.shape[-1]))
    for i in range(n):
        for j in range(k):
            out[:, i * stride + j] += np.asarray(x[:, i], np.float64) @ w[k - 1 - j]
    return out


def test_conv_transpose_valid_same_and_causal() -> None:
    w_init = nnx_nn.initializers.normal(1.0)
    valid = nnx_nn.ConvTranspose(
        4,
        3,
        3,
        strides=2,
        padding="VALID",
        kernel_init=w_init,
        use_bias=False,
        rngs=nnx_graph.Rngs(0),
    )
    kernel = np.asarray(valid.kernel.value, np.float64)
    full = full_transpose_reference(X1, kernel, 2)
    y_valid = valid(X1)
    assert y_valid.shape == (2, 15, 3)
    assert_close(y_valid, full, rtol=1e-4, atol=1e-4)

    causal = nnx_nn.ConvTranspose(
        4,
        3,
        3,
        strides=2,
        padding="CAUSAL",
        kernel_init=w_init,
        use_bias=False,
        rngs=nnx_graph.Rngs(0),
    )
    y_causal = causal(X1)
    assert y_causal.shape == (2, 14, 3)  # input length * stride
    assert_close(y_causal, full[:, :14], rtol=1e-4, atol=1e-4)
    # Causality: changing input step i changes no output before i * stride.
    bumped = X1.copy()
    bumped[:, 4] += 1.0
    diff = np.abs(np.asarray(causal(bumped)) - np.asarray(y_causal)).max(axis=(0, 2))
    assert diff[:8].max() == 0.0 and diff[8:].max() > 0.0

    grads = param_grads(causal, lambda m: jnp.sum(m(X1) ** 2))

    def reference(kernel: jax.Array) -> jax.Array:
        y = jax.lax.conv_transpose(
            X1, kernel, (2,), [(2, 1)], dimension_numbers=("NWC", "WIO", "NWC")
        )
        return jnp.sum(y**2)

    (gk,) = ref_grads(reference, causal.kernel.value)
    assert_close(grads[("kernel",)], gk, rtol=1e-4, atol=1e-4)

    same = nnx_nn.ConvTranspose(4, 3, 3, strides=2, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    assert same(X1).shape == (2, 14, 3)


def test_conv_transpose_circular_and_transpose_kernel() -> None:
    layer = nnx_nn.ConvTranspose(
        4,
        3,
        (3, 3),
        strides=(2, 2),
        padding="CIRCULAR",
        transpose_kernel=True,
        kernel_init=NP,
        rngs=nnx_graph.Rngs(0),
    )
    assert layer.kernel.shape == (3, 3, 3, 4)
    y = layer(X2)
    assert y.shape == (2, 12, 10, 3)
    # Periodic: shifting the input by one step shifts the output by `stride` steps.
    shifted = layer(np.roll(X2, 1, axis=1))
    assert_close(shifted, np.roll(np.asarray(y), 2, axis=1), rtol=1e-4, atol=1e-5)


def test_conv_transpose_is_the_gradient_of_conv() -> None:
    conv = nnx_nn.Conv(
        4, 3, 3, strides=2, padding="VALID", use_bias=False, kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    up = nnx_nn.ConvTranspose(
        3,
        4,
        3,
        strides=2,
        padding="VALID",
        transpose_kernel=True,
        use_bias=False,
        kernel_init=NP,
        rngs=nnx_graph.Rngs(1),
    )
    up.kernel.value = conv.kernel.value
    cotangent = RNG.normal(size=(2, 3, 3)).astype(np.float32)
    _, vjp = jax.vjp(lambda x: conv(x), X1)
    assert_close(up(cotangent), vjp(jnp.asarray(cotangent))[0], rtol=1e-4, atol=1e-5)
