"""Rngs: named streams, counters, default fallback, sampling helpers, fork, reseed,
split_rngs and friends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph import rnglib


def same_key(a: jax.Array, b: jax.Array) -> bool:
    return bool(np.array_equal(jax.random.key_data(a), jax.random.key_data(b)))


class Model(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.rngs = rngs
        self.w = nnx.Param(rngs.params.normal((2,)))


# ----------------------------------------------------------------- streams
def test_named_streams_and_counters():
    rngs = nnx.Rngs(params=0, dropout=1)
    assert sorted(rngs) == ["dropout", "params"] and len(rngs) == 2
    assert "params" in rngs and "default" not in rngs
    k0 = rngs.params()
    k1 = rngs.params()
    assert same_key(k0, jax.random.fold_in(jax.random.key(0), 0))
    assert same_key(k1, jax.random.fold_in(jax.random.key(0), 1))
    assert int(rngs.params.count.value) == 2
    assert int(rngs.dropout.count.value) == 0
    assert not same_key(rngs.dropout(), k0)


def test_default_stream_and_fallback():
    rngs = nnx.Rngs(0)
    assert list(rngs) == ["default"]
    k = rngs()
    assert same_key(k, jax.random.fold_in(jax.random.key(0), 0))
    # unknown names fall back to the default stream
    assert rngs.params is rngs.default
    assert rngs["dropout"] is rngs.default
    rngs.params()
    assert int(rngs.default.count.value) == 2


def test_default_with_named_streams():
    rngs = nnx.Rngs(0, dropout=1)
    assert sorted(rngs) == ["default", "dropout"]
    assert rngs.params is rngs.default and rngs.dropout is not rngs.default


def test_same_seed_reproduces_and_keys_are_fresh():
    a, b = nnx.Rngs(7), nnx.Rngs(7)
    ka, kb = [a() for _ in range(3)], [b() for _ in range(3)]
    assert all(same_key(x, y) for x, y in zip(ka, kb))
    assert not same_key(ka[0], ka[1])


def test_seed_forms():
    for seed in (0, jnp.array(0), jnp.uint32(0), jax.random.key(0), jax.random.PRNGKey(0)):
        rngs = nnx.Rngs(seed)
        assert same_key(rngs.default.key.value, jax.random.key(0))
    assert nnx.Rngs({"a": 0, "b": 1}).a.tag == "a"
    stream = nnx.Rngs(3).default
    derived = nnx.Rngs(x=stream)
    assert derived.x.key.shape == ()


def test_bad_seed_message():
    with pytest.raises(TypeError) as info:
        nnx.Rngs(params="zero")
    message = str(info.value)
    assert "stream 'params'" in message and "expected an int seed or a JAX key" in message
    assert "found str" in message and "Fix: nnx.Rngs(params=0)" in message


def test_sampling_helpers():
    rngs = nnx.Rngs(0, params=1)
    assert rngs.normal((2,)).shape == (2,)
    assert rngs.uniform((2,), minval=1, maxval=2).min() >= 1
    assert rngs.params.normal((2,)).shape == (2,)
    assert int(rngs.default.count.value) == 2
    assert int(rngs.params.count.value) == 1
    with pytest.raises(AttributeError, match="RngStream has no attribute 'nope'"):
        rngs.params.nope


def test_stream_variables_are_tagged_state():
    rngs = nnx.Rngs(params=0, dropout=1)
    assert isinstance(rngs.params.key, nnx.RngKey) and isinstance(rngs.params.key, nnx.RngState)
    assert isinstance(rngs.params.count, nnx.RngCount)
    assert rngs.params.key.tag == "params" and rngs.params.tag == "params"
    assert rngs.params.count.value.dtype == jnp.uint32
    state = nnx.state(rngs)
    assert state.flat_state().paths == (
        ("dropout", "count"),
        ("dropout", "key"),
        ("params", "count"),
        ("params", "key"),
    )
    assert nnx.state(rngs, "dropout").flat_state().paths == (
        ("dropout", "count"),
        ("dropout", "key"),
    )
    assert nnx.state(rngs, nnx.RngKey).flat_state().paths == (("dropout", "key"), ("params", "key"))
    assert nnx.state(rngs, nnx.WithTag("params")).flat_state().paths == (
        ("params", "count"),
        ("params", "key"),
    )


def test_rngs_state_survives_split_merge_and_jit():
    rngs = nnx.Rngs(params=0)
    rngs.params()
    shared = nnx.merge(*nnx.split(rngs))  # merge reuses the Variables
    assert shared.params.count is rngs.params.count
    copy = nnx.merge(*nnx.split(rngs), copy=True)
    assert same_key(copy.params(), rngs.params())
    out = jax.jit(lambda r: r.params())(rngs)
    assert same_key(out, jax.random.fold_in(jax.random.key(0), 2))


def test_update_brings_counts_back():
    rngs = nnx.Rngs(params=0)
    gdef, state = nnx.split(rngs)
    inner = nnx.merge(gdef, state, copy=True)
    inner.params()
    inner.params()
    assert int(rngs.params.count.value) == 0
    nnx.update(rngs, nnx.state(inner))
    assert int(rngs.params.count.value) == 2


# ----------------------------------------------------------------- errors
def test_unknown_stream_error():
    rngs = nnx.Rngs(params=0, dropout=1)
    with pytest.raises(nnx.RngStreamError) as info:
        rngs.noise()
    message = str(info.value)
    assert "No RngStream named 'noise' found in Rngs" in message
    assert "Available streams: ['dropout', 'params']" in message
    assert "Fix: create it, e.g. nnx.Rngs(noise=0)" in message
    assert isinstance(info.value, AttributeError) and isinstance(info.value, KeyError)
    assert not hasattr(rngs, "noise")
    with pytest.raises(KeyError):
        rngs["noise"]


def test_missing_default_stream_error():
    rngs = nnx.Rngs(params=0)
    with pytest.raises(nnx.RngStreamError) as info:
        rngs()
    message = str(info.value)
    assert "No RngStream named 'default' found in Rngs" in message and "['params']" in message
    assert "Fix:" in message and "nnx.Rngs(0" in message
    with pytest.raises(nnx.RngStreamError):
        rngs.normal((2,))


def test_unknown_stream_inside_module_construction():
    with pytest.raises(nnx.RngStreamError, match="No RngStream named 'params'"):
        Model(nnx.Rngs(dropout=0))


# ----------------------------------------------------------------- fork / split
def test_fork_makes_independent_streams():
    rngs = nnx.Rngs(params=0, dropout=1)
    forked = rngs.fork()
    assert sorted(forked) == ["dropout", "params"]
    assert int(rngs.params.count.value) == 1  # forking consumed one key
    assert not same_key(forked.params(), nnx.Rngs(params=0).params())
    with pytest.warns(DeprecationWarning, match="use Rngs.split"):
        split = rngs.fork(split=2)
    assert split.params.key.shape == (2,) and split.params.count.shape == (2,)
    assert rngs.split(2).dropout.key.shape == (2,)
    with pytest.warns(DeprecationWarning):
        mixed = rngs.fork(split={"params": 2, ...: None})
    assert mixed.params.key.shape == (2,) and mixed.dropout.key.shape == ()


def test_split_keys_draw_per_slice():
    rngs = nnx.Rngs(0).split(2)
    keys = rngs()
    assert keys.shape == (2,)
    data = jax.random.key_data(keys)
    assert len({tuple(np.asarray(row)) for row in data}) == 2


def test_stream_fork_and_split():
    stream = nnx.Rngs(params=0).params
    assert stream.fork().key.shape == ()
    assert stream.split((2, 2)).key.shape == (2, 2)
    assert stream.split(k=3).key.shape == (3,)
    with pytest.warns(DeprecationWarning, match="use RngStream.split"):
        assert stream.fork(split=2).key.shape == (2,)


def test_split_rngs_context_and_restore():
    model = Model(nnx.Rngs(params=0, dropout=1))
    key_before = model.rngs.dropout.key.value
    with nnx.split_rngs(model, splits=2, only="dropout"):
        assert model.rngs.dropout.key.shape == (2,)
        assert model.rngs.params.key.shape == ()
    assert model.rngs.dropout.key.shape == ()
    assert same_key(model.rngs.dropout.key.value, key_before)
    handle = nnx.split_rngs(model, splits=(2, 2))
    assert model.rngs.params.key.shape == (2, 2)
    nnx.restore_rngs(handle)
    assert model.rngs.params.key.shape == ()


def test_split_rngs_decorator():
    model = Model(nnx.Rngs(params=0, dropout=1))

    @nnx.split_rngs(splits=2, only="dropout")
    def f(m):
        return m.rngs.dropout.key.shape, m.rngs.params.key.shape

    assert f(model) == ((2,), ())
    assert model.rngs.dropout.key.shape == ()

    @nnx.split_rngs(splits=1, squeeze=True)
    def g(m):
        return m.rngs.params.key.shape

    assert g(model) == ()


def test_split_rngs_restores_after_an_exception():
    rngs = nnx.Rngs(0)

    @nnx.split_rngs(splits=2)
    def boom(r):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        boom(rngs)
    assert rngs.default.key.shape == ()


def test_fork_rngs_and_with_rngs():
    rngs = nnx.Rngs(0)
    original = rngs.default.key.value
    with nnx.fork_rngs(rngs, split=2):
        assert rngs.default.key.shape == (2,)
    assert same_key(rngs.default.key.value, original)
    with nnx.fork_rngs(rngs):
        assert not same_key(rngs.default.key.value, original)
    with nnx.with_rngs(rngs, split=2) as backups:
        assert isinstance(backups, rnglib.SplitBackups) and len(backups) == 1
        assert rngs.default.key.shape == (2,)
    with nnx.with_rngs(rngs):
        assert rngs.default.key.shape == ()
    assert same_key(rngs.default.key.value, original)


def test_reseed():
    model = Model(nnx.Rngs(params=0, dropout=1))
    first = model.rngs.dropout()
    model.rngs.dropout()
    nnx.reseed(model, dropout=1)
    assert int(model.rngs.dropout.count.value) == 0
    # the new key is the first key of a fresh Rngs(dropout=1), not the seed's key itself
    assert same_key(model.rngs.dropout.key.value, first)
    assert not same_key(model.rngs.dropout(), first)
    # other streams are untouched
    assert int(model.rngs.params.count.value) == 1


def test_reseed_split_keys_need_a_policy():
    rngs = nnx.Rngs(0).split(2)
    with pytest.raises(ValueError) as info:
        nnx.reseed(rngs, default=3)
    message = str(info.value)
    assert "Cannot reseed stream at path ('default',)" in message
    assert "non-scalar key" in message and "(2,)" in message
    assert 'policy="match_shape"' in message
    nnx.reseed(rngs, default=3, policy="match_shape")
    assert rngs.default.key.shape == (2,)
    expected = jax.random.split(nnx.Rngs(3)(), 2)
    assert same_key(rngs.default.key.value, expected)
    nnx.reseed(rngs, default=3, policy=lambda path, key, shape: jax.random.split(key, shape)[::-1])
    assert same_key(rngs.default.key.value, expected[::-1])
    with pytest.raises(ValueError, match='policy must be "scalars_only", "match_shape" or a'):
        nnx.reseed(rngs, default=3, policy="nope")  # type: ignore[arg-type]


def test_rng_stream_on_its_own():
    stream = nnx.RngStream(3, tag="noise")
    assert isinstance(nnx.Rngs(0).default, nnx.RngStream)
    assert stream.tag == "noise" and stream.key.tag == "noise"
    assert same_key(stream(), jax.random.fold_in(jax.random.key(3), 0))
    assert int(stream.count.value) == 1
    gdef, state = nnx.split(stream)
    assert state.flat_state().paths == (("count",), ("key",))
    assert type(nnx.merge(gdef, state)) is nnx.RngStream
