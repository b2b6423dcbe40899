"""train()/eval() switching across a model, and mixed precision (bfloat16 compute,
float32 Params) through every parametrised layer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import jit_call, np_init, param_grads

NP = np_init()


class Block(nnx_graph.Module):
    def __init__(self, rngs: nnx_graph.Rngs) -> None:
        self.linear = nnx_nn.Linear(3, 4, kernel_init=np_init(), rngs=rngs)
        self.bn = nnx_nn.BatchNorm(4, rngs=rngs)
        self.drop = nnx_nn.Dropout(0.5, rngs=rngs)
        self.attn = nnx_nn.MultiHeadAttention(
            2, 4, dropout_rate=0.2, kernel_init=np_init(), rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.drop(self.bn(self.linear(x)))
        return self.attn(h[:, None])[:, 0]


def test_train_and_eval_switch_every_layer() -> None:
    model = Block(nnx_graph.Rngs(0))
    model.eval()
    assert (model.bn.use_running_average, model.drop.deterministic, model.attn.deterministic) == (
        True,
        True,
        True,
    )
    x = jnp.ones((5, 3))
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))
    model.train()
    assert (model.bn.use_running_average, model.drop.deterministic, model.attn.deterministic) == (
        False,
        False,
        False,
    )
    mean_before = np.asarray(model.bn.mean.value)
    model(x * 2)
    assert not np.array_equal(mean_before, np.asarray(model.bn.mean.value))


def test_view_gives_an_eval_copy_sharing_params() -> None:
    model = Block(nnx_graph.Rngs(0))
    frozen = nnx_graph.view(model, deterministic=True, use_running_average=True)
    assert frozen.bn.use_running_average and not model.bn.use_running_average
    assert frozen.linear.kernel is model.linear.kernel


LAYERS = {
    "Linear": (lambda r, d: nnx_nn.Linear(3, 4, dtype=d, kernel_init=np_init(), rngs=r), (2, 3)),
    "LinearGeneral": (
        lambda r, d: nnx_nn.LinearGeneral(3, (2, 2), dtype=d, kernel_init=np_init(), rngs=r),
        (2, 3),
    ),
    "Einsum": (
        lambda r, d: nnx_nn.Einsum(
            "bi,io->bo", (3, 4), (4,), dtype=d, kernel_init=np_init(), rngs=r
        ),
        (2, 3),
    ),
    "Conv": (lambda r, d: nnx_nn.Conv(3, 4, 3, dtype=d, kernel_init=np_init(), rngs=r), (2, 5, 3)),
    "ConvTranspose": (
        lambda r, d: nnx_nn.ConvTranspose(3, 4, 3, dtype=d, kernel_init=np_init(), rngs=r),
        (2, 5, 3),
    ),
    "BatchNorm": (lambda r, d: nnx_nn.BatchNorm(3, dtype=d, rngs=r), (2, 3)),
    "LayerNorm": (lambda r, d: nnx_nn.LayerNorm(3, dtype=d, rngs=r), (2, 3)),
    "RMSNorm": (lambda r, d: nnx_nn.RMSNorm(3, dtype=d, rngs=r), (2, 3)),
    "GroupNorm": (lambda r, d: nnx_nn.GroupNorm(3, num_groups=3, dtype=d, rngs=r), (2, 5, 3)),
    "InstanceNorm": (lambda r, d: nnx_nn.InstanceNorm(3, dtype=d, rngs=r), (2, 5, 3)),
    "MultiHeadAttention": (
        lambda r, d: nnx_nn.MultiHeadAttention(1, 3, dtype=d, kernel_init=np_init(), rngs=r),
        (2, 5, 3),
    ),
    "LoRA": (lambda r, d: nnx_nn.LoRA(3, 2, 4, dtype=d, a_initializer=np_init(), rngs=r), (2, 3)),
    "LSTMCell": (
        lambda r, d: nnx_nn.RNN(
            nnx_nn.LSTMCell(
                3,
                4,
                dtype=d,
                param_dtype=jnp.float32,
                kernel_init=np_init(),
                recurrent_kernel_init=np_init(),
                rngs=r,
            )
        ),
        (2, 5, 3),
    ),
    "PReLU": (lambda r, d: nnx_nn.PReLU(dtype=d), (2, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_bfloat16_compute_with_float32_params(name: str) -> None:
    build, shape = LAYERS[name]
    layer = build(nnx_graph.Rngs(0), jnp.bfloat16)
    params = nnx_graph.state(layer, nnx_graph.Param)
    assert all(v.dtype == jnp.float32 for _, v in nnx_graph.to_flat_state(params))
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    y = jit_call(layer, x)
    if name == "LSTMCell":
        # The gates are computed in bfloat16; the carry (param_dtype) stays float32 and,
        # as in Flax, promotes the step's outputs.
        assert y.dtype == jnp.float32
    else:
        assert y.dtype == jnp.bfloat16
    reference = jit_call(build(nnx_graph.Rngs(0), None), x)
    np.testing.assert_allclose(
        np.asarray(y, np.float32), np.asarray(reference), rtol=0.05, atol=0.05
    )
    if name in ("Linear", "Conv", "LayerNorm", "LoRA"):
        grads = param_grads(layer, lambda m: jnp.sum(m(x).astype(jnp.float32)))
        assert all(g.dtype == np.float32 for g in grads.values())
