"""Recurrent cells against their equations, RNN against a Python loop over the
cell (outputs and gradients), reverse/seq_lengths handling and Bidirectional."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph
import nnx_nn
from nnx_nn.nn import flip_sequences

from .helpers import assert_close, np_init, param_grads

NP = np_init()

RNG = np.random.default_rng(0)
XS = RNG.normal(size=(2, 6, 3)).astype(np.float32)  # (batch, time, features)
X = XS[:, 0]
H = RNG.normal(size=(2, 4)).astype(np.float32)
C = RNG.normal(size=(2, 4)).astype(np.float32)
BIAS = np_init(0.5, seed=1)


def dense(layer: nnx_nn.Linear, x: np.ndarray) -> np.ndarray:
    out = np.asarray(x, np.float64) @ np.asarray(layer.kernel.value, np.float64)
    return out + (0.0 if layer.bias is None else np.asarray(layer.bias.value))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_lstm_cell_equations() -> None:
    cell = nnx_nn.LSTMCell(
        3, 4, bias_init=BIAS, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    (c, h), y = cell((C, H), X)
    i = sigmoid(dense(cell.ii, X) + dense(cell.hi, H))
    f = sigmoid(dense(cell.if_, X) + dense(cell.hf, H))
    g = np.tanh(dense(cell.ig, X) + dense(cell.hg, H))
    o = sigmoid(dense(cell.io, X) + dense(cell.ho, H))
    expected_c = f * C + i * g
    assert_close(c, expected_c, rtol=1e-4, atol=1e-5)
    assert_close(h, o * np.tanh(expected_c), rtol=1e-4, atol=1e-5)
    assert_close(y, h)
    zeros = cell.initialize_carry(X.shape)
    assert [z.shape for z in zeros] == [(2, 4), (2, 4)]


def test_optimized_lstm_matches_lstm_with_the_same_weights() -> None:
    lstm = nnx_nn.LSTMCell(
        3, 4, bias_init=BIAS, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    fused = nnx_nn.OptimizedLSTMCell(
        3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(1)
    )
    fused.dense_i.kernel.value = jnp.concatenate(
        [lstm.ii.kernel.value, lstm.if_.kernel.value, lstm.ig.kernel.value, lstm.io.kernel.value],
        axis=-1,
    )
    fused.dense_h.kernel.value = jnp.concatenate(
        [lstm.hi.kernel.value, lstm.hf.kernel.value, lstm.hg.kernel.value, lstm.ho.kernel.value],
        axis=-1,
    )
    fused.dense_h.bias.value = jnp.concatenate(
        [lstm.hi.bias.value, lstm.hf.bias.value, lstm.hg.bias.value, lstm.ho.bias.value]
    )
    (c1, h1), _ = lstm((C, H), X)
    (c2, h2), _ = fused((C, H), X)
    assert_close(c1, c2, rtol=1e-4, atol=1e-5)
    assert_close(h1, h2, rtol=1e-4, atol=1e-5)


def test_gru_cell_equations() -> None:
    cell = nnx_nn.GRUCell(
        3, 4, bias_init=BIAS, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    h, y = cell(H, X)
    xr, xz, xn = np.split(dense(cell.dense_i, X), 3, axis=-1)
    hr, hz, hn = np.split(dense(cell.dense_h, H), 3, axis=-1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    assert_close(h, (1 - z) * n + z * H, rtol=1e-4, atol=1e-5)
    assert_close(y, h)


def test_simple_cell_with_and_without_residual() -> None:
    cell = nnx_nn.SimpleCell(
        3, 4, bias_init=BIAS, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0)
    )
    h, _ = cell(H, X)
    assert_close(h, np.tanh(dense(cell.dense_i, X) + dense(cell.dense_h, H)), rtol=1e-4, atol=1e-5)
    cell.residual = True
    h, _ = cell(H, X)
    assert_close(
        h, np.tanh(dense(cell.dense_i, X) + dense(cell.dense_h, H) + H), rtol=1e-4, atol=1e-5
    )


def test_initialize_carry_with_a_random_init_needs_and_uses_rngs() -> None:
    cell = nnx_nn.GRUCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0))
    carry = cell.initialize_carry(
        X.shape, nnx_graph.Rngs(carry=0), carry_init=nnx_nn.initializers.normal(1.0)
    )
    assert carry.shape == (2, 4) and float(jnp.abs(carry).sum()) > 0


def python_loop(cell: nnx_nn.RNNCellBase, xs: jax.Array, carry: object) -> tuple[object, jax.Array]:
    outputs = []
    for t in range(xs.shape[1]):
        carry, y = cell(carry, xs[:, t])
        outputs.append(y)
    return carry, jnp.stack(outputs, axis=1)


def test_rnn_matches_a_python_loop_including_gradients() -> None:
    rnn = nnx_nn.RNN(
        nnx_nn.LSTMCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0)),
        return_carry=True,
    )
    carry, ys = rnn(XS)
    loop_carry, loop_ys = python_loop(rnn.cell, jnp.asarray(XS), rnn.cell.initialize_carry(X.shape))
    assert_close(ys, loop_ys, rtol=1e-4, atol=1e-5)
    assert_close(carry[1], loop_carry[1], rtol=1e-4, atol=1e-5)  # type: ignore[index]

    short = XS[:, :3]  # gradients on a shorter sequence: the unrolled loop compiles faster
    grads = param_grads(rnn, lambda m: jnp.sum(m(short)[1] ** 2))
    loop_grads = param_grads(
        rnn.cell,
        lambda cell: jnp.sum(
            python_loop(cell, jnp.asarray(short), cell.initialize_carry(X.shape))[1] ** 2
        ),
    )
    assert set(grads) == {("cell", *path) for path in loop_grads}
    for path, g in loop_grads.items():
        assert_close(grads[("cell", *path)], g, rtol=1e-4, atol=1e-5)


def test_rnn_time_major_reverse_keep_order_and_initial_carry() -> None:
    rnn = nnx_nn.RNN(
        nnx_nn.GRUCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0))
    )
    ys = np.asarray(rnn(XS, initial_carry=H))
    _, loop_ys = python_loop(rnn.cell, jnp.asarray(XS), H)
    assert_close(ys, loop_ys, rtol=1e-4, atol=1e-5)
    time_major = rnn(np.swapaxes(XS, 0, 1), initial_carry=H, time_major=True)
    assert_close(np.swapaxes(np.asarray(time_major), 0, 1), ys, rtol=1e-5, atol=1e-6)
    reversed_ys = rnn(XS, initial_carry=H, reverse=True, keep_order=True)
    _, loop_rev = python_loop(rnn.cell, jnp.asarray(XS[:, ::-1]), H)
    assert_close(reversed_ys, np.asarray(loop_rev)[:, ::-1], rtol=1e-4, atol=1e-5)


def test_rnn_seq_lengths_select_the_last_valid_carry() -> None:
    rnn = nnx_nn.RNN(
        nnx_nn.SimpleCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0))
    )
    lengths = jnp.array([3, 6])
    carry, ys = rnn(XS, seq_lengths=lengths, return_carry=True)
    assert_close(carry[0], ys[0, 2])
    assert_close(carry[1], ys[1, 5])
    flipped = flip_sequences(jnp.asarray(XS), lengths, num_batch_dims=1, time_major=False)
    assert_close(flipped[0, :3], XS[0, 2::-1])
    assert_close(flipped[0, 3:], XS[0, 5:2:-1])  # as in Flax: the padding is reversed too
    assert_close(flipped[1], XS[1, ::-1])


def test_rnn_runs_under_jit_and_carries_cell_state() -> None:
    rnn = nnx_nn.RNN(
        nnx_nn.LSTMCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=nnx_graph.Rngs(0))
    )
    graphdef, state = nnx_graph.split(rnn)
    ys = jax.jit(lambda s, x: nnx_graph.merge(graphdef, s, copy=True)(x))(state, XS)
    assert_close(ys, rnn(XS), rtol=1e-5, atol=1e-6)


class CountingCell(nnx_nn.RNNCellBase):
    """Counts its steps in a Variable and adds a fresh random number per step."""

    def __init__(self, rngs: nnx_graph.Rngs) -> None:
        self.steps = nnx_graph.BatchStat(jnp.array(0))
        self.rngs = rngs

    def __call__(self, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        self.steps.value += 1
        noise = jax.random.uniform(self.rngs.noise(), ())
        return carry + x, jnp.broadcast_to(noise, x.shape)

    def initialize_carry(
        self, input_shape: tuple[int, ...], rngs: object = None, carry_init: object = None
    ) -> jax.Array:
        return jnp.zeros(input_shape)

    @property
    def num_feature_axes(self) -> int:
        return 1


def test_rnn_threads_variables_and_rng_streams_through_the_scan() -> None:
    rnn = nnx_nn.RNN(CountingCell(nnx_graph.Rngs(noise=0)))
    ys = np.asarray(rnn(XS))
    assert int(rnn.cell.steps.value) == 6
    assert int(rnn.cell.rngs.noise.count.value) == 6
    assert len(np.unique(ys[0, :, 0])) == 6  # a new key every step
    broadcast = nnx_nn.RNN(CountingCell(nnx_graph.Rngs(noise=0)), broadcast_rngs="noise")
    ys = np.asarray(broadcast(XS))
    assert len(np.unique(ys[0, :, 0])) == 1  # the same key at every step


def test_bidirectional_merges_forward_and_backward() -> None:
    rngs = nnx_graph.Rngs(0)
    forward = nnx_nn.RNN(nnx_nn.GRUCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=rngs))
    backward = nnx_nn.RNN(nnx_nn.GRUCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=rngs))
    bi = nnx_nn.Bidirectional(forward, backward, return_carry=True)
    (carry_f, carry_b), ys = bi(XS)
    assert ys.shape == (2, 6, 8)
    assert_close(ys[..., :4], forward(XS), rtol=1e-5, atol=1e-6)
    assert_close(ys[..., 4:], backward(XS, reverse=True, keep_order=True), rtol=1e-5, atol=1e-6)
    assert_close(carry_b, backward(XS, reverse=True, return_carry=True)[0], rtol=1e-5, atol=1e-6)
    assert carry_f.shape == (2, 4)
