"""LoRA/LoRALinear, pooling against numpy window reductions, Sequential, PReLU and
the re-exported activations/initializers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import assert_close, np_init, param_grads

NP = np_init()

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 3)).astype(np.float32)
IMG = RNG.normal(size=(2, 6, 5, 3)).astype(np.float32)


def test_lora_adds_a_low_rank_update_to_the_base_module() -> None:
    rngs = nnx_graph.Rngs(0)
    base = nnx_nn.Linear(3, 4, kernel_init=NP, rngs=rngs)
    lora = nnx_nn.LoRA(
        3,
        2,
        4,
        base_module=base,
        b_initializer=nnx_nn.initializers.normal(1.0),
        a_initializer=NP,
        rngs=rngs,
    )
    a, b = np.asarray(lora.lora_a.value), np.asarray(lora.lora_b.value)
    assert isinstance(lora.lora_a, nnx_nn.LoRAParam)
    assert_close(lora(X), X @ a @ b + np.asarray(base(X)), rtol=1e-5)
    # Only the adapters, selected by their Variable type.
    _, adapters, _ = nnx_graph.split(lora, nnx_nn.LoRAParam, ...)
    assert sorted(path for path, _ in nnx_graph.to_flat_state(adapters)) == [
        ("lora_a",),
        ("lora_b",),
    ]
    grads = param_grads(lora, lambda m: jnp.sum(m(X)))
    assert_close(grads[("lora_b",)], np.outer((X @ a).sum(0), np.ones(4)), rtol=1e-5)


def test_lora_linear_keeps_the_linear_state_layout() -> None:
    layer = nnx_nn.LoRALinear(
        3, 4, lora_rank=2, kernel_init=NP, a_initializer=NP, rngs=nnx_graph.Rngs(0)
    )
    paths = sorted(path for path, _ in nnx_graph.to_flat_state(nnx_graph.state(layer)))
    assert paths == [("bias",), ("kernel",), ("lora", "lora_a"), ("lora", "lora_b")]
    kernel = np.asarray(layer.kernel.value)
    assert_close(layer(X), X @ kernel)  # lora_b starts at zero
    layer.lora.lora_b.value = jnp.ones((2, 4))
    assert_close(
        layer(X), X @ kernel + X @ np.asarray(layer.lora.lora_a.value) @ np.ones((2, 4)), rtol=1e-5
    )


def window_reduce(
    x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], reduce: object
) -> np.ndarray:
    n, h, w, c = x.shape
    oh, ow = (h - window[0]) // strides[0] + 1, (w - window[1]) // strides[1] + 1
    out = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            patch = x[
                :,
                i * strides[0] : i * strides[0] + window[0],
                j * strides[1] : j * strides[1] + window[1],
            ]
            out[:, i, j] = reduce(patch, axis=(1, 2))  # type: ignore[operator]
    return out


@pytest.mark.parametrize(
    ("fn", "reduce"),
    [(nnx_nn.max_pool, np.max), (nnx_nn.min_pool, np.min), (nnx_nn.avg_pool, np.mean)],
)
def test_pooling_matches_window_reductions(fn: object, reduce: object) -> None:
    y = fn(IMG, (2, 2), strides=(2, 1))  # type: ignore[operator]
    assert_close(y, window_reduce(IMG, (2, 2), (2, 1), reduce), rtol=1e-5)


def test_avg_pool_padding_and_single_example() -> None:
    x = jnp.arange(5.0).reshape(1, 5, 1)
    counted = nnx_nn.avg_pool(x, (3,), padding="SAME")
    assert_close(counted[0, :, 0], [1 / 3, 1, 2, 3, 7 / 3], rtol=1e-5)
    uncounted = nnx_nn.avg_pool(x, (3,), padding="SAME", count_include_pad=False)
    assert_close(uncounted[0, :, 0], [0.5, 1, 2, 3, 3.5], rtol=1e-5)
    assert nnx_nn.max_pool(IMG[0], (2, 2)).shape == (5, 4, 3)
    explicit = nnx_nn.max_pool(x, (2,), padding=[(1, 0)])
    assert_close(explicit[0, :, 0], [0, 1, 2, 3, 4])
    assert_close(nnx_nn.pool(x, 0.0, jax.lax.add, (5,), None, "VALID")[0, 0, 0], 10.0)


def test_sequential_chains_layers_functions_and_forwards_rngs() -> None:
    rngs = nnx_graph.Rngs(0)
    model = nnx_nn.Sequential(
        nnx_nn.Linear(3, 4, kernel_init=NP, rngs=rngs),
        nnx_nn.relu,
        nnx_nn.Dropout(0.5),
        nnx_nn.Linear(4, 2, kernel_init=NP, rngs=rngs),
    )
    first, last = model.layers[0], model.layers[3]
    hidden = jax.nn.relu(X @ np.asarray(first.kernel.value))
    model.eval()
    assert_close(model(X), hidden @ np.asarray(last.kernel.value), rtol=1e-5)
    model.train()
    call_rngs = nnx_graph.Rngs(dropout=1)
    model(X, rngs=call_rngs)  # Dropout has no rngs of its own: it takes the call's
    assert int(call_rngs.dropout.count.value) == 1
    paths = {path[:2] for path, _ in nnx_graph.to_flat_state(nnx_graph.state(model))}
    assert paths == {("layers", 0), ("layers", 3)}


def test_sequential_splats_tuples_and_dicts_and_empty() -> None:
    model = nnx_nn.Sequential(
        lambda x: (x, x + 1), lambda a, b: {"a": a, "b": b}, lambda a, b: a * b
    )
    assert model(2.0) == 6.0
    assert nnx_nn.Sequential()(5) == 5
    assert nnx_nn.Sequential()(1, 2) == (1, 2)


def test_prelu() -> None:
    act = nnx_nn.PReLU(0.2)
    x = jnp.array([-2.0, 0.0, 3.0])
    assert_close(act(x), [-0.4, 0.0, 3.0], rtol=1e-6)
    grads = param_grads(act, lambda m: jnp.sum(m(x)))
    assert_close(grads[("negative_slope",)], -2.0)
    assert act(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_activations_and_initializers_are_jaxs() -> None:
    for name in (
        "relu",
        "gelu",
        "silu",
        "softmax",
        "log_softmax",
        "one_hot",
        "standardize",
        "glu",
        "celu",
        "elu",
        "selu",
        "swish",
        "soft_sign",
        "softplus",
        "sigmoid",
    ):
        assert getattr(nnx_nn, name) is getattr(jax.nn, name)
    assert nnx_nn.tanh is jnp.tanh
    init = nnx_nn.initializers
    assert init.zeros_init() is jax.nn.initializers.zeros
    assert init.ones_init()(jax.random.key(0), (2,), jnp.float32).tolist() == [1.0, 1.0]
    for name in (
        "lecun_normal",
        "variance_scaling",
        "normal",
        "uniform",
        "xavier_uniform",
        "he_normal",
        "orthogonal",
        "constant",
        "truncated_normal",
        "glorot_normal",
    ):
        assert getattr(init, name) is getattr(jax.nn.initializers, name)
