"""Oracle: user code written against ``flax.nnx.nn.<module>`` paths runs unchanged
against ``nnx_nn.<module>`` and gives Flax's numbers.

The same program (a function taking the attention module) is run once with
``flax.nnx.nn.attention`` and once with ``nnx_nn.attention``; Flax's parameters are
copied into ours by path, then masks, causal masks, combined masks, the decode cache
and ``set_view`` are compared step by step.

Run with ``/work/venv-oracle/bin/python -m pytest tests/oracle/test_attention_paths_oracle.py
-m oracle``.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing as tp

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx_graph  # noqa: E402

pytestmark = pytest.mark.oracle

SUBMODULES = (
    "activations",
    "attention",
    "dtypes",
    "initializers",
    "linear",
    "lora",
    "normalization",
    "recurrent",
    "stochastic",
)
# Names Flax's modules hold only because they import them (stdlib, jax, flax internals).
_IMPORTED_HELPERS = {
    "Any",
    "Callable",
    "FrozenDict",
    "Mapping",
    "MappingProxyType",
    "Protocol",
    "Sequence",
    "TypeVar",
    "annotations",
    "partial",
}

RNG = np.random.default_rng(0)


def normal(*shape: int) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def close(a: tp.Any, b: tp.Any, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def copy_params(theirs: tp.Any, ours: tp.Any) -> None:
    """Write Flax's Params into ours by path (the paths must be the same)."""
    flat = {
        path: np.asarray(v.get_value())
        for path, v in fnnx.to_flat_state(fnnx.state(theirs, fnnx.Param))
    }
    mine = {path: v for path, v in nnx_graph.to_flat_state(nnx_graph.state(ours, nnx_graph.Param))}
    assert sorted(map(repr, flat)) == sorted(map(repr, mine))
    for path, value in flat.items():
        mine[path].set_value(jax.numpy.asarray(value))


@pytest.mark.parametrize("name", SUBMODULES)
def test_every_public_name_of_flax_submodule_exists(name: str) -> None:
    theirs = importlib.import_module(f"flax.nnx.nn.{name}")
    ours = importlib.import_module(f"nnx_nn.{name}")
    missing = [
        attr
        for attr in dir(theirs)
        if not attr.startswith("_")
        and attr not in _IMPORTED_HELPERS
        and not isinstance(getattr(theirs, attr), types.ModuleType)
        and not hasattr(ours, attr)
    ]
    assert missing == [], f"nnx_nn.{name} lacks {missing}"
    # Flax's own classes and functions are ours under the same kind.
    for attr in getattr(ours, "__all__", ()):
        flax_obj = getattr(theirs, attr, None)
        if inspect.isclass(flax_obj) or inspect.isfunction(flax_obj):
            assert callable(getattr(ours, attr)), f"nnx_nn.{name}.{attr} is not callable"


@pytest.mark.parametrize("num_kv_heads", [None, 1])
def test_multihead_attention_with_masks_via_module_path(num_kv_heads: int | None) -> None:
    import flax.nnx.nn.attention as fattention

    import nnx_nn.attention as attention

    theirs = fattention.MultiHeadAttention(
        2, 6, qkv_features=8, num_kv_heads=num_kv_heads, decode=False, rngs=fnnx.Rngs(0)
    )
    ours = attention.MultiHeadAttention(
        2, 6, qkv_features=8, num_kv_heads=num_kv_heads, decode=False, rngs=nnx_graph.Rngs(1)
    )
    copy_params(theirs, ours)
    x = normal(2, 5, 6)
    tokens = np.array([[3, 4, 1, 0, 0], [1, 2, 3, 4, 5]])
    masks = {}
    for lib, mod in (("flax", fattention), ("ours", attention)):
        pad = mod.make_attention_mask(tokens > 0, tokens > 0)
        causal = mod.make_causal_mask(tokens)
        masks[lib] = (pad, causal, mod.combine_masks(pad, causal))
    for i in range(3):
        close(ours(x, mask=masks["ours"][i]), theirs(x, mask=masks["flax"][i]))
        close(masks["ours"][i], masks["flax"][i])
    # masks of both libraries are interchangeable arrays
    close(ours(x, mask=masks["flax"][2]), theirs(x, mask=masks["ours"][2]))
    # cross-attention with separate key/value inputs and a combined mask
    kv = normal(2, 4, 6)
    mask_t = fattention.combine_masks(
        fattention.make_attention_mask(np.ones((2, 5)), np.ones((2, 4))), None
    )
    mask_o = attention.combine_masks(
        attention.make_attention_mask(np.ones((2, 5)), np.ones((2, 4))), None
    )
    close(ours(x, kv, kv, mask=mask_o), theirs(x, kv, kv, mask=mask_t))


def test_combine_and_causal_masks_match_flax_for_every_dtype_and_shape() -> None:
    import flax.nnx.nn.attention as fattention

    import nnx_nn.attention as attention

    x = np.arange(12).reshape(3, 4)
    for extra in (0, 1, 2):
        close(
            attention.make_causal_mask(x, extra_batch_dims=extra),
            fattention.make_causal_mask(x, extra_batch_dims=extra),
        )
    a = RNG.uniform(size=(2, 1, 4, 4)) > 0.5
    b = RNG.uniform(size=(1, 3, 4, 4)) > 0.5
    for masks in ((a,), (a, b), (a, None, b), (None, None)):
        got, want = attention.combine_masks(*masks), fattention.combine_masks(*masks)
        if want is None:
            assert got is None
        else:
            assert got.dtype == want.dtype and got.shape == want.shape
            close(got, want)
    got = attention.combine_masks(a, b, dtype=jax.numpy.int32)
    want = fattention.combine_masks(a, b, dtype=jax.numpy.int32)
    assert got.dtype == want.dtype
    close(got, want)


def test_decode_cache_and_causal_prefill_match_flax() -> None:
    import flax.nnx.nn.attention as fattention

    import nnx_nn.attention as attention

    theirs = fattention.MultiHeadAttention(
        2, 4, qkv_features=8, num_kv_heads=1, decode=True, rngs=fnnx.Rngs(0)
    )
    ours = attention.MultiHeadAttention(
        2, 4, qkv_features=8, num_kv_heads=1, decode=True, rngs=nnx_graph.Rngs(3)
    )
    copy_params(theirs, ours)
    x = normal(3, 6, 4)
    theirs.init_cache(x.shape)
    ours.init_cache(x.shape)
    # step-by-step decoding equals a causal full-sequence pass, in both libraries
    steps_t = [theirs(x[:, i : i + 1]) for i in range(6)]
    steps_o = [ours(x[:, i : i + 1]) for i in range(6)]
    for o, t in zip(steps_o, steps_t):
        close(o, t)
    close(ours.cached_key.get_value(), theirs.cached_key.get_value())
    close(ours.cached_value.get_value(), theirs.cached_value.get_value())
    assert int(ours.cache_index.get_value()) == int(theirs.cache_index.get_value()) == 6
    full_t = fattention.MultiHeadAttention(
        2, 4, qkv_features=8, num_kv_heads=1, decode=False, rngs=fnnx.Rngs(0)
    )
    full_o = attention.MultiHeadAttention(
        2, 4, qkv_features=8, num_kv_heads=1, decode=False, rngs=nnx_graph.Rngs(5)
    )
    copy_params(theirs, full_o)
    fnnx.update(full_t, fnnx.state(theirs, fnnx.Param))
    causal_t = fattention.make_causal_mask(x[..., 0])
    causal_o = attention.make_causal_mask(x[..., 0])
    close(full_o(x, mask=causal_o), full_t(x, mask=causal_t))
    close(np.concatenate(steps_o, axis=1), full_t(x, mask=causal_t))


def test_decode_with_padding_mask_matches_flax() -> None:
    import flax.nnx.nn.attention as fattention

    import nnx_nn.attention as attention

    theirs = fattention.MultiHeadAttention(2, 4, decode=True, rngs=fnnx.Rngs(0))
    ours = attention.MultiHeadAttention(2, 4, decode=True, rngs=nnx_graph.Rngs(9))
    copy_params(theirs, ours)
    x = normal(2, 4, 4)
    theirs.init_cache(x.shape)
    ours.init_cache(x.shape)
    valid = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    for i in range(4):
        mask = np.broadcast_to(valid[:, None, None, :], (2, 1, 1, 4))
        close(ours(x[:, i : i + 1], mask=mask), theirs(x[:, i : i + 1], mask=mask))


def test_set_view_and_view_match_flax() -> None:
    import flax.nnx.nn.attention as fattention
    import flax.nnx.nn.normalization as fnormalization
    import flax.nnx.nn.stochastic as fstochastic

    import nnx_nn.attention as attention
    import nnx_nn.normalization as normalization
    import nnx_nn.stochastic as stochastic

    pairs = [
        (fstochastic.Dropout(0.5), stochastic.Dropout(0.5), {"deterministic": True}),
        (
            fnormalization.BatchNorm(3, rngs=fnnx.Rngs(0)),
            normalization.BatchNorm(3, rngs=nnx_graph.Rngs(0)),
            {"use_running_average": True},
        ),
        (
            fattention.MultiHeadAttention(2, 4, decode=False, rngs=fnnx.Rngs(0)),
            attention.MultiHeadAttention(2, 4, decode=False, rngs=nnx_graph.Rngs(0)),
            {"deterministic": True, "decode": True},
        ),
    ]
    for theirs, ours, kwargs in pairs:
        assert theirs.set_view(**kwargs) is None and ours.set_view(**kwargs) is None
        for key in kwargs:
            assert getattr(ours, key) == getattr(theirs, key) == kwargs[key]
        # None leaves the attribute alone
        theirs.set_view()
        ours.set_view()
        for key in kwargs:
            assert getattr(ours, key) == getattr(theirs, key)
