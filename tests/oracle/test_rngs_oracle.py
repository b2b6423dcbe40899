"""Oracle: nnx's Rngs against flax.nnx 0.12's, value for value.

The same program runs once with ``flax.nnx`` and once with ``nnx_graph``; the keys,
samples, shapes and counts it reports must be equal. Covers the sampler methods,
key-less initializers, ``split``/``fork``/``broadcast``, ``reseed`` (with its
policies), ``split_rngs``/``fork_rngs``/``with_rngs`` copies (also stacked on
``vmap``/``scan``) and their in-place forms with ``restore_rngs``.

Run with ``/work/venv-oracle/bin/python -m pytest tests/oracle -m oracle``.
"""

from __future__ import annotations

import importlib
import typing as tp
import warnings

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx_graph  # noqa: E402

pytestmark = pytest.mark.oracle

LIBS = {"flax": fnnx, "nnx": nnx_graph}


def kd(key: tp.Any) -> list[tp.Any]:
    return np.asarray(jax.random.key_data(key)).tolist()  # type: ignore[no-any-return]


def val(x: tp.Any) -> list[tp.Any]:
    return np.asarray(x).tolist()  # type: ignore[no-any-return]


def run(program: tp.Callable[[tp.Any], tp.Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ours = program(nnx_graph)
        theirs = program(fnnx)
    assert ours == theirs


def test_samplers_and_initializers() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        rngs = nnx.Rngs(0, params=1)
        return [
            val(rngs.normal((3,))),
            val(rngs.params.uniform((2,), minval=-1.0)),
            val(rngs.bernoulli(0.3, (4,))),
            val(rngs.params.randint((3,), 0, 10)),
            val(rngs.categorical(jnp.zeros((2, 5)))),
            val(rngs.permutation(6)),
            val(rngs.truncated_normal(-1.0, 1.0, (2,))),
            val(rngs.lecun_normal()((2, 2))),
            val(rngs.params.he_uniform(in_axis=0)((3, 2), jnp.float32)),
            val(rngs.default.count[...]),
            val(rngs.params.count[...]),
        ]

    run(program)


def test_split_fork_broadcast() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        rngs = nnx.Rngs(params=0, dropout=1)
        out = []
        split = rngs.split({"dropout": (2, 3)})
        out += [split.dropout.key.shape, kd(split.dropout.key[...]), val(split.dropout.count[...])]
        out += [kd(rngs.params.split(2).key[...]), kd(rngs.params.fork().key[...])]
        forked = rngs.fork(split={"params": 2})
        out += [kd(forked.params.key[...]), kd(forked.dropout.key[...])]
        wide = rngs.broadcast({"params": 3})
        out += [kd(wide.params.key[...]), val(wide.params.count[...])]
        out += [val(rngs.params.count[...]), val(rngs.dropout.count[...])]
        return out

    run(program)


def test_reseed_policies() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        rngs = nnx.Rngs(params=5, dropout=1)
        rngs.params()
        nnx.reseed(rngs, params=0)
        out = [kd(rngs.params.key[...]), val(rngs.params.count[...]), kd(rngs.params())]
        with nnx.split_rngs(rngs, splits=2):
            try:
                nnx.reseed(rngs, params=3)
            except ValueError as error:
                out.append("non-scalar key" in str(error))
            nnx.reseed(rngs, params=3, policy="match_shape")
            out.append(kd(rngs.params.key[...]))
        out.append(kd(rngs.params.key[...]))
        return out

    run(program)


def test_split_and_fork_rngs_in_place_and_copies() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        rngs = nnx.Rngs(params=0, dropout=1)
        out = []
        backups = nnx.split_rngs(rngs, splits=3, only="dropout")
        out += [rngs.dropout.key.shape, kd(rngs.dropout.key[...]), rngs.params.key.shape]
        nnx.restore_rngs(backups)
        out += [kd(rngs.dropout.key[...]), val(rngs.dropout.count[...])]
        copy = nnx.split_rngs(rngs, splits=2, graph_updates=False)
        out += [kd(copy.params.key[...]), val(copy.params.count[...]), val(rngs.params.count[...])]
        with nnx.fork_rngs(rngs, split={"params": 2}):
            out += [kd(rngs.params.key[...]), kd(rngs.dropout.key[...])]
        out += [kd(rngs.params.key[...]), val(rngs.params.count[...])]
        forked = nnx.fork_rngs(rngs, graph=False)
        out += [kd(forked.dropout.key[...]), val(rngs.dropout.count[...])]
        saved = importlib.import_module(nnx.__name__ + ".rnglib").backup_keys(rngs)
        nnx.reseed(rngs, dropout=7)
        nnx.restore_rngs(saved)
        out += [kd(rngs.dropout.key[...]), val(rngs.dropout.count[...])]
        return out

    run(program)


def test_with_rngs_copies() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        rngs = nnx.Rngs(params=0, dropout=1, noise=2)
        new = nnx.with_rngs(
            rngs, split={"params": 2}, broadcast={"noise": 3}, fork=..., graph=False
        )
        out = [kd(new[name].key[...]) for name in ("params", "dropout", "noise")]
        only = nnx.with_rngs(rngs, split=(2, 2), only="dropout", graph_updates=False)
        out += [only.dropout.key.shape, only.params.key.shape]
        out += [val(rngs[name].count[...]) for name in ("params", "dropout", "noise")]
        return out

    run(program)


def test_split_rngs_stacked_on_vmap_and_scan() -> None:
    def program(nnx: tp.Any) -> tp.Any:
        class Noisy(nnx.Module):
            def __init__(self, rngs: tp.Any) -> None:
                self.rngs = rngs

            def __call__(self, x: jax.Array) -> jax.Array:
                return x + self.rngs.noise.normal(())

        rngs = nnx.Rngs(noise=0)

        @nnx.split_rngs(splits=3, graph=False)
        @nnx.vmap(in_axes=0, out_axes=0, graph=False)
        def draw(r: tp.Any) -> jax.Array:
            return r.noise.normal(())

        out = [val(draw(rngs)), val(draw(rngs)), val(rngs.noise.count[...])]

        @nnx.split_rngs(splits=3)
        @nnx.vmap(in_axes=0, out_axes=0)
        def draw_in_place(r: tp.Any) -> jax.Array:
            return r.noise.normal(())

        out += [val(draw_in_place(rngs)), val(rngs.noise.count[...]), rngs.noise.key.shape]
        model = Noisy(nnx.Rngs(noise=0))
        stacked = nnx.with_rngs(model, split=4, graph=False)
        ys = nnx.vmap(lambda m, x: m(x), in_axes=(0, 0))(stacked, jnp.zeros(4))
        out += [val(ys), val(stacked.rngs.noise.count[...])]
        same = nnx.with_rngs(model, broadcast=2, graph=False)
        out.append(val(nnx.vmap(lambda m, x: m(x), in_axes=(0, 0))(same, jnp.zeros(2))))
        steps = nnx.split_rngs(model, splits=3, graph=False)
        total, _ = nnx.scan(lambda c, m: (c + m(0.0), None), in_axes=(nnx.Carry, 0))(0.0, steps)
        out += [round(float(total), 5), val(model.rngs.noise.count[...])]
        return out

    run(program)


def test_cross_trace_error_phrase() -> None:
    names = {}
    for name, nnx in LIBS.items():
        rngs = nnx.Rngs(0)
        with pytest.raises(
            Exception, match="Cannot mutate RngCount from a different trace level"
        ) as info:
            jax.jit(lambda x, r=rngs: x + r.normal(()))(1.0)
        names[name] = info.type.__name__
        assert int(rngs.default.count[...]) == 0
    assert names == {"flax": "TraceContextError", "nnx": "TraceContextError"}
