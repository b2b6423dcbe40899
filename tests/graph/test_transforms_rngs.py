"""RNG streams through transforms: a Dropout-style module draws fresh keys per jit
call, per batch element (vmap + split_rngs) and per step (scan + split_rngs);
split_rngs / fork_rngs / with_rngs / restore_rngs around and inside transforms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nnx_graph as nnx


class Dropout(nnx.Module):
    def __init__(self, rate: float, *, rngs: nnx.Rngs) -> None:
        self.rate = rate
        self.deterministic = False
        self.rngs = rngs

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic:
            return x
        keep = jax.random.bernoulli(self.rngs.dropout(), 1 - self.rate, x.shape)
        return jnp.where(keep, x / (1 - self.rate), 0.0)


X = jnp.ones(32)


def distinct_rows(a: jax.Array) -> int:
    return len({row.tobytes() for row in np.asarray(a)})


def make() -> Dropout:
    return Dropout(0.5, rngs=nnx.Rngs(params=0, dropout=1))


def test_jit_draws_a_new_key_every_call():
    drop = make()
    f = nnx.jit(lambda m, x: m(x))
    a, b = f(drop, X), f(drop, X)
    assert not np.array_equal(a, b)
    assert int(drop.rngs.dropout.count.value) == 2
    drop.eval()
    np.testing.assert_array_equal(f(drop, X), X)  # the static flag retraces


def test_eager_and_jit_draw_the_same_keys():
    eager, jitted = make(), make()
    f = nnx.jit(lambda m, x: m(x))
    for _ in range(2):
        np.testing.assert_array_equal(eager(X), f(jitted, X))


def test_vmap_with_split_rngs_gives_each_element_its_own_key():
    drop = make()

    @nnx.split_rngs(splits=4)
    @nnx.vmap(in_axes=(0, None))
    def batched(m, x):
        return m(x)

    first, second = batched(drop, X), batched(drop, X)
    assert distinct_rows(first) == 4
    assert not np.array_equal(first, second)  # the stream advanced between calls
    assert drop.rngs.dropout.key.shape == ()  # restored after the call


def test_vmap_split_only_dropout_with_stateaxes_inside_jit():
    drop = make()

    @nnx.jit
    def run(m, x):
        @nnx.split_rngs(splits=4, only="dropout")
        @nnx.vmap(in_axes=(nnx.StateAxes({"dropout": 0, ...: None}), None))
        def batched(m, x):
            return m(x)

        return batched(m, x)

    a, b = run(drop, X), run(drop, X)
    assert distinct_rows(a) == 4 and not np.array_equal(a, b)
    assert drop.rngs.params.key.shape == () and drop.rngs.dropout.key.shape == ()


def test_scan_with_split_rngs_gives_each_step_its_own_key():
    drop = make()

    @nnx.split_rngs(splits=3)
    @nnx.scan(in_axes=(0, None), out_axes=0)
    def steps(m, x):
        return m(x)

    out = steps(drop, X)
    assert out.shape == (3, 32) and distinct_rows(out) == 3


def test_scan_with_broadcast_rngs_advances_the_stream_every_step():
    drop = make()

    @nnx.scan(in_axes=(nnx.Carry, None), out_axes=(nnx.Carry, 0), length=3)
    def steps(c, m):
        return c, m(X)

    _, out = nnx.jit(lambda m: steps(0, m))(drop)
    assert distinct_rows(out) == 3 and int(drop.rngs.dropout.count.value) == 3


def test_split_rngs_context_around_vmap_and_restore():
    drop = make()
    handle = nnx.split_rngs(drop, splits=4, only="dropout")
    axes = nnx.StateAxes({"dropout": 0, ...: None})
    out = nnx.jit(nnx.vmap(lambda m, x: m(x), in_axes=(axes, None)))(drop, X)
    assert distinct_rows(out) == 4 and drop.rngs.dropout.count.shape == (4,)
    nnx.restore_rngs(handle)
    assert drop.rngs.dropout.key.shape == () and drop.rngs.dropout.count.shape == ()


def test_fork_rngs_and_with_rngs_inside_jit():
    drop = make()

    @nnx.jit
    def run(m, x):
        with nnx.fork_rngs(m, split=2):
            a = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(m, x)
        with nnx.with_rngs(m, split=2):
            b = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(m, x)
        return a, b

    a, b = run(drop, X)
    assert distinct_rows(a) == 2 and distinct_rows(b) == 2
    assert not np.array_equal(a, b)
    assert drop.rngs.dropout.key.shape == ()
    a2, _ = run(drop, X)
    assert not np.array_equal(a, a2)


def test_rngs_as_an_argument_and_created_inside():
    rngs = nnx.Rngs(0)
    draw = nnx.jit(lambda r: r.normal((2,)))
    assert not np.array_equal(draw(rngs), draw(rngs))
    make_params = nnx.jit(lambda: jax.random.normal(nnx.Rngs(0).params(), (2,)))
    np.testing.assert_array_equal(make_params(), make_params())


def test_split_rngs_inside_grad_and_vmap_of_a_loss():
    drop = make()

    def loss(m, x):
        @nnx.split_rngs(splits=2)
        @nnx.vmap(in_axes=(0, None))
        def batched(m, x):
            return m(x).sum()

        return batched(m, x).sum()

    grad = nnx.jit(nnx.grad(loss, argnums=1))
    grad(drop, X)
    grad(drop, X)
    assert int(drop.rngs.dropout.count.value) == 2
