"""Rngs behaviours of the Flax NNX 0.12 API: ``Rngs(default=...)``, sampler methods
with jax.random's signatures, ``split(k)``/``broadcast`` with filter mappings,
``backup_keys``/``restore_rngs``, ``with_rngs`` (split/fork/broadcast/only, copies
and decorators), ``split_rngs``/``fork_rngs`` returning copies with ``graph=False``
or ``graph_updates=False`` (also stacked on nnx.vmap/scan), and the error for drawing
a key inside a JAX transform the Rngs was not passed to."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph as nnx
from nnx_graph import compat, rnglib


def key_data(key: jax.Array) -> np.ndarray:
    return np.asarray(jax.random.key_data(key))


def same_key(a: jax.Array, b: jax.Array) -> bool:
    return bool(np.array_equal(key_data(a), key_data(b)))


def first_key(seed: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(seed), 0)


class Noisy(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.rngs = rngs

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.rngs.noise.normal(())


# ----------------------------------------------------------------- construction
def test_default_is_positional_or_keyword():
    params = inspect.signature(nnx.Rngs.__init__).parameters
    assert params["default"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert params["default"].default is None
    by_keyword = nnx.Rngs(default=3, params=1)
    assert set(by_keyword) == {"default", "params"}
    assert same_key(by_keyword(), first_key(3))
    assert list(nnx.Rngs(params=0, dropout=1)) == ["params", "dropout"]  # creation order


def test_stream_as_seed_copies_its_key_and_restarts_the_count():
    source = nnx.Rngs(4).default
    source()
    copy = nnx.Rngs(x=source).x
    assert int(copy.count.value) == 0 and int(source.count.value) == 1
    assert same_key(copy.key.value, jax.random.key(4))


def test_invalid_rng_value_is_a_value_and_type_error():
    with pytest.raises(ValueError, match="Invalid rng value") as info:
        nnx.RngStream("zero", tag="noise")  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert "stream 'noise'" in str(info.value) and "found str" in str(info.value)


def test_missing_stream_errors_are_key_and_attribute_errors():
    rngs = nnx.Rngs(params=0)
    with pytest.raises(KeyError, match="No RngStream named 'x' found in Rngs"):
        rngs["x"]
    with pytest.raises(AttributeError, match="No RngStream named 'x' found in Rngs"):
        rngs.x


# ----------------------------------------------------------------- samplers
def test_sampler_signatures_are_jax_randoms():
    for owner in (nnx.Rngs, nnx.RngStream):
        assert inspect.signature(owner.normal) == inspect.signature(jax.random.normal)
        names = list(inspect.signature(owner.bernoulli).parameters)
        assert names == list(inspect.signature(jax.random.bernoulli).parameters)
        assert names[0] == "key"
    bound = list(inspect.signature(nnx.Rngs(0).uniform).parameters)
    assert bound == list(inspect.signature(jax.random.uniform).parameters)[1:]  # no key


def test_samplers_draw_from_the_stream():
    rngs = nnx.Rngs(0, params=1)
    expected = jax.random.normal(first_key(0), (3,))
    np.testing.assert_array_equal(rngs.normal((3,)), expected)
    got = rngs.params.bernoulli(0.3, shape=(5,))
    np.testing.assert_array_equal(got, jax.random.bernoulli(first_key(1), 0.3, (5,)))
    second = jax.random.uniform(jax.random.fold_in(jax.random.key(0), 1), (2,), maxval=3.0)
    np.testing.assert_array_equal(rngs.uniform((2,), maxval=3.0), second)
    assert int(rngs.default.count.value) == 2 and int(rngs.params.count.value) == 1
    with pytest.raises(TypeError):  # the key always comes from the stream
        rngs.normal(jax.random.key(1), (2,))


def test_keyless_initializers_pass_shape_and_dtype_through():
    rngs = nnx.Rngs(0)
    init = rngs.lecun_normal()
    w = init((2, 3), jnp.float16)
    assert w.shape == (2, 3) and w.dtype == jnp.float16
    expected = jax.nn.initializers.lecun_normal()(first_key(0), (2, 3), jnp.float16)
    np.testing.assert_array_equal(w, expected)
    assert not np.array_equal(init((2, 3)), w.astype(jnp.float32))  # a new key per call


# ----------------------------------------------------------------- split / broadcast
def test_stream_split_takes_k():
    assert list(inspect.signature(nnx.RngStream.split).parameters) == ["self", "k"]
    stream = nnx.Rngs(0).default
    wide = stream.split(k=(2, 3))
    assert wide.key.shape == (2, 3) and wide.count.shape == (2, 3)
    flat = key_data(wide.key.value).reshape(6, -1)
    assert len({tuple(row) for row in flat}) == 6


def test_rngs_split_with_a_filter_mapping_shares_unmatched_streams():
    assert list(inspect.signature(nnx.Rngs.split).parameters) == ["self", "k"]
    rngs = nnx.Rngs(params=0, dropout=1)
    new = rngs.split({"dropout": 4})
    assert new.dropout.key.shape == (4,) and new.params.key.shape == ()
    assert new.params is rngs.params  # unchanged streams keep drawing new keys
    assert int(rngs.dropout.count.value) == 1 and int(rngs.params.count.value) == 0
    both = rngs.split((2, 2))
    assert both.params.key.shape == (2, 2) and both.dropout.key.shape == (2, 2)


def test_rngs_broadcast_repeats_one_fresh_key():
    rngs = nnx.Rngs(params=0, dropout=1)
    new = rngs.broadcast({"dropout": 3, ...: None})
    assert new.dropout.key.shape == (3,) and new.params is rngs.params
    data = key_data(new.dropout.key.value)
    assert (data == data[0]).all()
    assert np.array_equal(data[0], key_data(first_key(1)))
    assert nnx.Rngs(0).broadcast(None).default.key.shape == ()


# ----------------------------------------------------------------- backups
def test_backup_keys_and_restore_rngs():
    assert list(inspect.signature(nnx.restore_rngs).parameters) == ["backups"]
    model = Noisy(nnx.Rngs(noise=0))
    saved = rnglib.backup_keys(model)
    assert [(s is model.rngs.noise, len(b)) for s, *b in saved] == [(True, 1)]
    nnx.reseed(model, noise=9)
    model.rngs.noise()
    nnx.restore_rngs(saved)
    assert same_key(model.rngs.noise.key.value, jax.random.key(0))
    assert int(model.rngs.noise.count.value) == 1  # counts are not part of a key backup
    assert compat.backup_keys.keywords == {"graph": True}
    assert compat.backup_keys.func is nnx.backup_keys is rnglib.backup_keys


def test_split_backups_restore_keys_and_counts():
    rngs = nnx.Rngs(0)
    backups = nnx.split_rngs(rngs, splits=3)
    assert isinstance(backups, rnglib.SplitBackups)
    [(stream, key, count)] = list(backups)
    assert stream is rngs.default and key.shape == () and int(count) == 1
    nnx.restore_rngs(backups)
    assert rngs.default.key.shape == () and int(rngs.default.count.value) == 1


# ----------------------------------------------------------------- split_rngs/fork_rngs copies
def test_split_rngs_copy_leaves_the_original_unsplit():
    rngs = nnx.Rngs(params=0, dropout=1)
    for kwargs in ({"graph": False}, {"graph_updates": False}):
        out = nnx.split_rngs(rngs, splits=2, only="dropout", **kwargs)
        assert isinstance(out, nnx.Rngs) and out is not rngs
        assert out.dropout.key.shape == (2,) and out.dropout.count.shape == (2,)
        assert out.params.key.shape == () and rngs.dropout.key.shape == ()
    assert int(rngs.dropout.count.value) == 2  # each copy drew one key
    with nnx.set_graph_updates(False):
        assert nnx.split_rngs(rngs, splits=2).params.key.shape == (2,)
    assert rngs.params.key.shape == ()


def test_split_rngs_squeeze_needs_one_split():
    with pytest.raises(ValueError, match="squeeze=True is only supported for splits=1"):
        nnx.split_rngs(nnx.Rngs(0), splits=2, squeeze=True)


def test_fork_rngs_copy_and_mapping():
    rngs = nnx.Rngs(params=0, dropout=1)
    out = nnx.fork_rngs(rngs, split={"dropout": 2}, graph=False)
    assert out.dropout.key.shape == (2,) and out.params.key.shape == ()
    assert int(rngs.params.count.value) == 0  # unmatched: left alone
    assert int(rngs.dropout.count.value) == 1
    forked = nnx.fork_rngs(rngs, graph_updates=False)
    assert same_key(forked.params.key.value, first_key(0))
    assert int(forked.params.count.value) == 0


def test_fork_rngs_in_place_first_matching_filter_wins():
    rngs = nnx.Rngs(params=0, dropout=1)
    with nnx.fork_rngs(rngs, split={"dropout": 2, ...: None}) as backups:
        assert rngs.dropout.key.shape == (2,) and rngs.params.key.shape == ()
        assert len(backups) == 2
    assert rngs.dropout.key.shape == () and int(rngs.dropout.count.value) == 1


# ----------------------------------------------------------------- with_rngs
def test_with_rngs_signature():
    params = inspect.signature(nnx.with_rngs).parameters
    assert list(params) == ["node", "split", "fork", "broadcast", "only", "graph", "graph_updates"]
    assert params["node"].kind is inspect.Parameter.POSITIONAL_ONLY
    assert params["only"].default is True


def test_with_rngs_split_some_fork_the_rest():
    rngs = nnx.Rngs(params=0, dropout=1)
    new = nnx.with_rngs(rngs, split={"params": 4}, fork=nnx.Not("params"), graph=False)
    assert new.params.key.shape == (4,) and new.dropout.key.shape == ()
    assert same_key(new.dropout.key.value, first_key(1))
    assert int(rngs.params.count.value) == 1 and int(rngs.dropout.count.value) == 1
    per_filter = nnx.with_rngs(rngs, split={"params": 2, ...: (2, 3)}, graph_updates=False)
    assert per_filter.params.key.shape == (2,) and per_filter.dropout.key.shape == (2, 3)


def test_with_rngs_broadcast_only_and_untouched():
    rngs = nnx.Rngs(params=0, dropout=1)
    new = nnx.with_rngs(rngs, split={"params": 2}, broadcast=3, graph=False)
    assert new.params.key.shape == (2,) and new.dropout.key.shape == (3,)
    only = nnx.with_rngs(rngs, split=2, only="dropout", graph=False)
    assert only.dropout.key.shape == (2,) and only.params.key.shape == ()
    listed = nnx.with_rngs(rngs, fork=["params", "dropout"], graph=False)
    assert int(listed.params.count.value) == 0 and int(listed.dropout.count.value) == 0
    untouched = nnx.with_rngs(rngs, graph=False)
    assert untouched is not rngs and untouched.params.key.shape == ()


def test_with_rngs_two_specific_rules_is_an_error():
    rngs = nnx.Rngs(params=0)
    with pytest.raises(ValueError) as info:
        nnx.with_rngs(rngs, split={"params": 2}, broadcast={"params": 3}, graph=False)
    message = str(info.value)
    assert "RngStream at path ('params',) matches multiple rules" in message
    assert "split matches filter 'params'" in message and "broadcast matches" in message


def test_with_rngs_keeps_shared_streams_shared():
    class Holder(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.rngs = rngs
            self.inner = nnx.Dict(r=rngs)

    new = nnx.with_rngs(Holder(nnx.Rngs(0)), split=2, graph=False)
    assert new.rngs is new.inner["r"] and new.rngs.default.key.shape == (2,)


def test_with_rngs_in_place_default_and_decorators():
    rngs = nnx.Rngs(params=0, dropout=1)
    with nnx.with_rngs(rngs, broadcast={"dropout": 3}) as backups:
        assert rngs.dropout.key.shape == (3,) and rngs.params.key.shape == ()
        assert [stream.tag for stream, *_ in backups] == ["dropout"]
    assert rngs.dropout.key.shape == ()

    @nnx.with_rngs(split=3, graph=False)
    def copied(r: nnx.Rngs) -> tuple[tuple[int, ...], bool]:
        return r.params.key.shape, r is rngs

    @nnx.with_rngs(split=3)
    def in_place(r: nnx.Rngs) -> tuple[tuple[int, ...], bool]:
        return r.params.key.shape, r is rngs

    assert copied(rngs) == ((3,), False) and in_place(rngs) == ((3,), True)
    assert rngs.params.key.shape == ()


# ----------------------------------------------------------------- inside transforms
def test_split_rngs_copy_stacked_on_vmap():
    rngs = nnx.Rngs(noise=0)

    @nnx.split_rngs(splits=3, graph=False)
    @nnx.vmap(in_axes=0, out_axes=0, graph=False)
    def draw(r: nnx.Rngs) -> jax.Array:
        return r.noise.normal(())

    out = draw(rngs)
    keys = jax.random.split(first_key(0), 3)
    expected = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), ()))(keys)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert rngs.noise.key.shape == () and int(rngs.noise.count.value) == 1
    assert not np.allclose(draw(rngs), out)  # the next call splits a new key


def test_module_with_split_or_broadcast_rngs_through_vmap_and_scan():
    model = Noisy(nnx.Rngs(noise=0))
    split = nnx.with_rngs(model, split=4, graph=False)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(0, 0))(split, jnp.zeros(4))
    assert len(set(np.asarray(out).tolist())) == 4
    assert split.rngs.noise.count.value.tolist() == [1, 1, 1, 1]  # updated on the copy
    same = nnx.with_rngs(model, broadcast=4, graph=False)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(0, 0))(same, jnp.zeros(4))
    assert len(set(np.asarray(out).tolist())) == 1
    steps = nnx.split_rngs(model, splits=3, graph=False)
    total, _ = nnx.scan(lambda c, m: (c + m(0.0), None), in_axes=(nnx.Carry, 0))(0.0, steps)
    keys = key_data(steps.rngs.noise.key.value)
    assert len({tuple(row) for row in keys}) == 3 and np.isfinite(float(total))
    assert int(model.rngs.noise.count.value) == 3  # one key drawn per copy


# ----------------------------------------------------------------- trace levels
def test_drawing_inside_a_jax_transform_from_outside_is_an_error():
    rngs = nnx.Rngs(0)
    for transform, x in ((jax.jit, jnp.ones(())), (jax.grad, 1.0), (jax.vmap, jnp.ones(2))):
        with pytest.raises(
            Exception, match="Cannot mutate RngCount from a different trace level"
        ) as info:
            transform(lambda x: x + rngs.normal(()))(x)
        assert info.type.__name__ == "TraceContextError"
        assert "Fix: pass the" in str(info.value)
    assert int(rngs.default.count.value) == 0


def test_drawing_through_a_closure_of_an_inner_transform_is_an_error():
    def build_and_scan() -> jax.Array:
        inner = nnx.Rngs(0)  # created in the jit trace
        body = lambda c, _: (c + inner.normal(()), None)
        return jax.lax.scan(body, 0.0, None, length=2)[0]

    with pytest.raises(Exception, match="Cannot mutate RngCount from a different trace level"):
        jax.jit(build_and_scan)()


def test_passing_rngs_into_transforms_is_fine():
    rngs = nnx.Rngs(0)
    first = jax.jit(lambda r: r.normal(()))(rngs)  # unflattened inside the trace
    np.testing.assert_array_equal(first, jax.random.normal(first_key(0), ()))
    assert float(nnx.jit(lambda r: r.normal(()))(rngs)) == float(first)
    assert int(rngs.default.count.value) == 1  # nnx.jit carried the new count back
    made_inside = jax.jit(lambda: nnx.Rngs(0).normal(()))()
    np.testing.assert_array_equal(made_inside, first)
    out = nnx.vmap(lambda r: r.normal(()), in_axes=None, out_axes=0, axis_size=2)(rngs)
    assert out.shape == (2,)
