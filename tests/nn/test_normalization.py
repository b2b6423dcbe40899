"""BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm, SpectralNorm and WeightNorm
against direct numpy computations, including running statistics and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import assert_close, np_init, param_grads, ref_grads

NP = np_init()

RNG = np.random.default_rng(0)
X = (RNG.normal(size=(4, 5, 6)) * 3 + 1).astype(np.float32)
RANDOM = np_init(seed=1)


def standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    mean = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def test_batchnorm_training_updates_running_stats_then_eval_uses_them() -> None:
    bn = nnx_nn.BatchNorm(
        6, momentum=0.8, scale_init=RANDOM, bias_init=RANDOM, rngs=nnx_graph.Rngs(0)
    )
    scale, bias = np.asarray(bn.scale.value), np.asarray(bn.bias.value)
    y = bn(X)
    assert_close(y, standardize(X, (0, 1), 1e-5) * scale + bias, rtol=1e-4, atol=1e-4)
    assert_close(bn.mean.value, 0.2 * X.mean((0, 1)), rtol=1e-5)
    assert_close(bn.var.value, 0.8 + 0.2 * X.var((0, 1)), rtol=1e-5)

    bn.eval()
    assert bn.use_running_average is True
    mean, var = np.asarray(bn.mean.value), np.asarray(bn.var.value)
    y_eval = bn(X)
    assert_close(y_eval, (X - mean) / np.sqrt(var + 1e-5) * scale + bias, rtol=1e-4, atol=1e-4)
    assert_close(bn.mean.value, mean)  # no update in eval mode
    # The call argument overrides the attribute.
    bn(X, use_running_average=False)
    assert not np.allclose(bn.mean.value, mean)


def test_batchnorm_gradients_in_training_mode() -> None:
    bn = nnx_nn.BatchNorm(6, scale_init=RANDOM, rngs=nnx_graph.Rngs(0))
    grads = param_grads(bn, lambda m: jnp.sum(jnp.sin(m(X))))

    def reference(scale: jax.Array, bias: jax.Array) -> jax.Array:
        mean = X.mean((0, 1))
        var = X.var((0, 1))
        return jnp.sum(jnp.sin((X - mean) / jnp.sqrt(var + 1e-5) * scale + bias))

    gs, gb = ref_grads(reference, bn.scale.value, bn.bias.value)
    assert_close(grads[("scale",)], gs, rtol=1e-4, atol=1e-4)
    assert_close(grads[("bias",)], gb, rtol=1e-4, atol=1e-4)
    assert set(grads) == {("scale",), ("bias",)}  # running stats are BatchStats


def test_batchnorm_feature_axis_mask_and_slow_variance() -> None:
    bn = nnx_nn.BatchNorm(
        5, axis=1, use_fast_variance=False, use_bias=False, use_scale=False, rngs=nnx_graph.Rngs(0)
    )
    assert bn.scale is None and bn.bias is None
    assert_close(bn(X), standardize(X, (0, 2), 1e-5), rtol=1e-4, atol=1e-4)
    mask = np.ones(X.shape, bool)
    mask[0] = False
    bn = nnx_nn.BatchNorm(6, rngs=nnx_graph.Rngs(0))
    y = bn(X, mask=mask)
    expected = (X - X[1:].mean((0, 1))) / np.sqrt(X[1:].var((0, 1)) + 1e-5)
    assert_close(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("reduction_axes", "feature_axes"), [(-1, -1), ((1, 2), -1)])
def test_layernorm(reduction_axes: object, feature_axes: object) -> None:
    ln = nnx_nn.LayerNorm(
        6,
        reduction_axes=reduction_axes,
        feature_axes=feature_axes,
        scale_init=RANDOM,
        bias_init=RANDOM,
        rngs=nnx_graph.Rngs(0),
    )
    axes = (2,) if reduction_axes == -1 else (1, 2)
    expected = standardize(X, axes, 1e-6) * np.asarray(ln.scale.value) + np.asarray(ln.bias.value)
    assert_close(ln(X), expected, rtol=1e-4, atol=1e-4)
    grads = param_grads(ln, lambda m: jnp.sum(m(X) * X))
    assert_close(grads[("bias",)], X.sum((0, 1)), rtol=1e-4)
    assert_close(grads[("scale",)], (standardize(X, axes, 1e-6) * X).sum((0, 1)), rtol=1e-4)


def test_rmsnorm() -> None:
    norm = nnx_nn.RMSNorm(6, scale_init=RANDOM, rngs=nnx_graph.Rngs(0))
    rms = np.sqrt((X.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6)
    assert_close(norm(X), X / rms * np.asarray(norm.scale.value), rtol=1e-4)
    grads = param_grads(norm, lambda m: jnp.sum(m(X)))
    assert_close(grads[("scale",)], (X / rms).sum((0, 1)), rtol=1e-4)


def test_groupnorm_by_groups_and_by_group_size() -> None:
    gn = nnx_nn.GroupNorm(
        6, num_groups=3, scale_init=RANDOM, bias_init=RANDOM, rngs=nnx_graph.Rngs(0)
    )
    grouped = X.reshape(4, 5, 3, 2)
    expected = standardize(grouped, (1, 3), 1e-6).reshape(X.shape)
    expected = expected * np.asarray(gn.scale.value) + np.asarray(gn.bias.value)
    assert_close(gn(X), expected, rtol=1e-4, atol=1e-4)
    grads = param_grads(gn, lambda m: jnp.sum(m(X) * X))
    xhat = standardize(grouped, (1, 3), 1e-6).reshape(X.shape)
    assert_close(grads[("scale",)], (xhat * X).sum((0, 1)), rtol=1e-3, atol=1e-3)
    assert_close(grads[("bias",)], X.sum((0, 1)), rtol=1e-4, atol=1e-4)
    by_size = nnx_nn.GroupNorm(6, num_groups=None, group_size=2, rngs=nnx_graph.Rngs(0))
    assert by_size.num_groups == 3
    assert_close(
        by_size(X), standardize(grouped, (1, 3), 1e-6).reshape(X.shape), rtol=1e-4, atol=1e-4
    )


def test_instancenorm() -> None:
    norm = nnx_nn.InstanceNorm(6, rngs=nnx_graph.Rngs(0))
    assert_close(norm(X), standardize(X, (1,), 1e-6), rtol=1e-4, atol=1e-4)
    grads = param_grads(norm, lambda m: jnp.sum(m(X) * X))
    assert_close(
        grads[("scale",)], (standardize(X, (1,), 1e-6) * X).sum((0, 1)), rtol=1e-3, atol=1e-3
    )
    per_position = nnx_nn.InstanceNorm(5, feature_axes=1, rngs=nnx_graph.Rngs(0))
    assert_close(per_position(X), standardize(X, (2,), 1e-6), rtol=1e-4, atol=1e-4)


def test_normalization_output_dtype_follows_params_and_dtype() -> None:
    half = X.astype(jnp.bfloat16)
    ln = nnx_nn.LayerNorm(6, rngs=nnx_graph.Rngs(0))
    assert ln(half).dtype == jnp.float32  # float32 params promote
    ln16 = nnx_nn.LayerNorm(6, dtype=jnp.bfloat16, rngs=nnx_graph.Rngs(0))
    assert ln16(X).dtype == jnp.bfloat16
    bn = nnx_nn.BatchNorm(6, dtype=jnp.bfloat16, rngs=nnx_graph.Rngs(0))
    assert bn(X).dtype == jnp.bfloat16 and bn.mean.dtype == jnp.float32


def test_spectral_norm_divides_by_the_largest_singular_value() -> None:
    linear = nnx_nn.Linear(6, 4, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    raw = np.asarray(linear.kernel.value)
    layer = nnx_nn.SpectralNorm(linear, n_steps=30, rngs=nnx_graph.Rngs(1))
    sigma = np.linalg.svd(raw.astype(np.float64), compute_uv=False)[0]
    y = layer(X)
    assert_close(y, X @ (raw / sigma) + np.asarray(linear.bias.value), rtol=1e-3, atol=1e-4)
    assert_close(layer.batch_stats[("kernel", "sigma")].value, sigma, rtol=1e-4)
    assert_close(linear.kernel.value, raw)  # the raw weights are kept
    # Evaluation freezes the power-iteration state.
    layer.eval()
    u = np.asarray(layer.batch_stats[("kernel", "u")].value)
    layer(X)
    assert_close(layer.batch_stats[("kernel", "u")].value, u)


def test_spectral_norm_gradient_reaches_the_raw_kernel() -> None:
    layer = nnx_nn.SpectralNorm(
        nnx_nn.Linear(6, 4, kernel_init=NP, rngs=nnx_graph.Rngs(0)), rngs=nnx_graph.Rngs(1)
    )
    u0 = np.asarray(layer.batch_stats[("kernel", "u")].value)
    grads = param_grads(layer, lambda m: jnp.sum(m(X) ** 2))

    def reference(kernel: jax.Array, bias: jax.Array) -> jax.Array:
        v = u0 @ kernel.T
        v = v / jnp.sqrt(jnp.sum(v * v) + 1e-12)
        u = v @ kernel
        u = u / jnp.sqrt(jnp.sum(u * u) + 1e-12)
        u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
        sigma = (v @ kernel @ u.T)[0, 0]
        return jnp.sum((X @ (kernel / sigma) + bias) ** 2)

    gk, gb = ref_grads(
        reference, layer.layer_instance.kernel.value, layer.layer_instance.bias.value
    )
    assert_close(grads[("layer_instance", "kernel")], gk, rtol=1e-3, atol=1e-4)
    assert_close(grads[("layer_instance", "bias")], gb, rtol=1e-4, atol=1e-4)


def test_weight_norm_output_and_gradients() -> None:
    linear = nnx_nn.Linear(6, 4, kernel_init=NP, rngs=nnx_graph.Rngs(0))
    layer = nnx_nn.WeightNorm(linear, scale_init=RANDOM, rngs=nnx_graph.Rngs(1))
    kernel, bias = linear.kernel.value, linear.bias.value
    scale = layer.scales[("kernel",)].value

    def reference(kernel: jax.Array, bias: jax.Array, scale: jax.Array) -> jax.Array:
        w = scale * kernel / jnp.sqrt(jnp.sum(kernel**2, axis=0, keepdims=True) + 1e-12)
        return X @ w + bias

    assert_close(layer(X), reference(kernel, bias, scale), rtol=1e-4, atol=1e-5)
    assert_close(linear.kernel.value, kernel)
    grads = param_grads(layer, lambda m: jnp.sum(jnp.tanh(m(X))))
    gk, gb, gs = ref_grads(lambda *a: jnp.sum(jnp.tanh(reference(*a))), kernel, bias, scale)
    assert_close(grads[("layer_instance", "kernel")], gk, rtol=1e-4, atol=1e-5)
    assert_close(grads[("layer_instance", "bias")], gb, rtol=1e-4, atol=1e-5)
    assert_close(grads[("scales", ("kernel",))], gs, rtol=1e-4, atol=1e-5)
