"""Numerical oracle: every nnx_nn layer against flax.nnx 0.12.

For each layer, build ours and Flax's from *different* seeds, copy Flax's Variables
into ours by path (the paths and Variable types must agree, which checks that
parameter names are Flax's), run both on the same inputs and compare the outputs and
the Variables the call updated (BatchNorm statistics, decode caches, ...). A second
set of checks builds both from the *same* seed: our initialisation and RNG streams
consume keys in Flax's order, so Params and dropout masks are equal without copying.

Run with ``/work/refenv/bin/python -m pytest tests/oracle -m oracle`` (flax is only
installed there; the product never imports it).
"""

from __future__ import annotations

import re
import typing as tp
from types import MappingProxyType

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402
from flax.nnx.nn import attention as flax_attention  # noqa: E402
from flax.nnx.nn import recurrent as flax_recurrent  # noqa: E402

import nnx_graph  # noqa: E402
import nnx_nn  # noqa: E402
from nnx_nn.nn import flip_sequences  # noqa: E402

pytestmark = pytest.mark.oracle

RNG = np.random.default_rng(0)
Path = tuple[tp.Any, ...]


def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.normal(size=shape) * scale).astype(np.float32)


# ------------------------------------------------------------------ state copying
def flax_state(model: tp.Any) -> dict[Path, tuple[str, np.ndarray]]:
    """Flax model -> {path: (variable type name, value)}, RNG state left out."""
    out = {}
    for path, value in fnnx.to_flat_state(fnnx.state(model)):
        if isinstance(value, fnnx.RngState):
            continue
        if isinstance(value, fnnx.Variable):
            out[path] = (type(value).__name__, np.asarray(value.get_value()))
        elif value is not None:
            out[path] = ("array", np.asarray(value))
    return out


def our_variables(model: tp.Any) -> dict[Path, tp.Any]:
    return {
        path: value
        for path, value in nnx_graph.to_flat_state(nnx_graph.state(model))
        if value is not None and not isinstance(value, nnx_graph.RngState)
    }


def copy_from_flax(
    flax_model: tp.Any, ours: tp.Any, type_exceptions: tp.Mapping[Path, str] = MappingProxyType({})
) -> None:
    """Write Flax's values into our Variables, checking paths and Variable types."""
    theirs = flax_state(flax_model)
    mine = our_variables(ours)
    assert sorted(map(repr, theirs)) == sorted(map(repr, mine)), (
        f"state paths differ:\n flax: {sorted(theirs)}\n ours: {sorted(mine)}"
    )
    for path, (type_name, value) in theirs.items():
        target = mine[path]
        our_type = type(target).__name__ if isinstance(target, nnx_graph.Variable) else "array"
        assert our_type == type_exceptions.get(path, type_name), (path, our_type, type_name)
        assert tuple(np.shape(target)) == value.shape, (path, np.shape(target), value.shape)
        if isinstance(target, nnx_graph.Variable):
            target.set_value(jnp.asarray(value))
    assert_states_equal(flax_model, ours)


def assert_states_equal(flax_model: tp.Any, ours: tp.Any, **tol: float) -> None:
    theirs = flax_state(flax_model)
    mine = our_variables(ours)
    assert set(theirs) == set(mine)
    for path, (_, value) in theirs.items():
        close(mine[path], value, **tol)


def close(actual: tp.Any, expected: tp.Any, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    def leaves(x: tp.Any) -> list[np.ndarray]:
        if isinstance(x, nnx_graph.Variable):
            x = x.get_value()
        return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(x)]

    a, e = leaves(actual), leaves(expected)
    assert len(a) == len(e)
    for x, y in zip(a, e):
        assert x.shape == y.shape, (x.shape, y.shape)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ layer table
class Case(tp.NamedTuple):
    ours: tp.Callable[[tp.Any], tp.Any]  # rngs -> our layer
    theirs: tp.Callable[[tp.Any], tp.Any]  # rngs -> flax layer
    inputs: tuple[tp.Any, ...]
    kwargs: tp.Mapping[str, tp.Any] = MappingProxyType({})
    calls: int = 1  # calls in a row (state updates accumulate)
    rtol: float = 1e-5
    type_exceptions: tp.Mapping[Path, str] = MappingProxyType({})


X2 = normal(4, 6)
X3 = normal(2, 7, 3)
X4 = normal(2, 6, 5, 3)
IDS = np.array([[0, 5, 2], [9, 1, 1]], np.int32)
MASK = RNG.uniform(size=(2, 1, 7, 7)) > 0.3
CONV_MASK = (RNG.uniform(size=(3, 3, 4)) > 0.3).astype(np.float32)


def both(name: str, *args: tp.Any, **kwargs: tp.Any) -> tuple[tp.Any, tp.Any]:
    """(rngs -> ours, rngs -> flax) for the layer ``name`` with the same arguments."""
    return (
        lambda r: getattr(nnx_nn, name)(*args, **kwargs, rngs=r),
        lambda r: getattr(fnnx, name)(*args, **kwargs, rngs=r),
    )


CASES: dict[str, Case] = {
    "Linear": Case(*both("Linear", 3, 4), (X3,)),
    "Linear-nobias-bf16": Case(
        *both("Linear", 3, 4, use_bias=False, dtype=jnp.bfloat16), (X3,), rtol=1e-2
    ),
    "LinearGeneral-axes": Case(*both("LinearGeneral", (7, 3), (2, 2), axis=(1, 2)), (X3,)),
    "LinearGeneral-batch": Case(*both("LinearGeneral", 3, 4, batch_axis={0: 2}), (X3,)),
    "Einsum": Case(*both("Einsum", "btc,hco->btho", (2, 3, 4), (2, 4)), (X3,)),
    "Embed": Case(*both("Embed", 10, 3), (IDS,)),
    "Conv-same-stride": Case(*both("Conv", 3, 4, (3, 3), strides=2), (X4,)),
    "Conv-valid-dilated": Case(
        *both("Conv", 3, 4, (2, 3), padding="VALID", kernel_dilation=(2, 1)), (X4,)
    ),
    "Conv-circular": Case(*both("Conv", 3, 4, 3, padding="CIRCULAR"), (X3,)),
    "Conv-reflect": Case(*both("Conv", 3, 4, 3, padding="REFLECT"), (X3,)),
    "Conv-causal": Case(*both("Conv", 3, 4, 3, padding="CAUSAL", kernel_dilation=2), (X3,)),
    "Conv-explicit": Case(*both("Conv", 3, 4, (3, 2), padding=[(1, 2), 0]), (X4,)),
    "Conv-groups": Case(*both("Conv", 3, 6, 3, feature_group_count=3), (X3,)),
    "Conv-mask": Case(*both("Conv", 3, 4, 3, mask=jnp.asarray(CONV_MASK)), (X3,)),
    "Conv-input-dilation": Case(*both("Conv", 3, 4, 3, input_dilation=2, padding=[(1, 1)]), (X3,)),
    "Conv-unbatched": Case(*both("Conv", 3, 4, 3), (X3[0],)),
    "ConvTranspose-same": Case(*both("ConvTranspose", 3, 4, (3, 3), strides=2), (X4,)),
    "ConvTranspose-valid": Case(*both("ConvTranspose", 3, 4, 3, strides=2, padding="VALID"), (X3,)),
    "ConvTranspose-circular": Case(
        *both(
            "ConvTranspose", 3, 4, (3, 3), strides=(2, 2), padding="CIRCULAR", transpose_kernel=True
        ),
        (X4,),
    ),
    "ConvTranspose-explicit": Case(
        *both("ConvTranspose", 3, 4, 3, strides=2, padding=[(2, 1)], kernel_dilation=2), (X3,)
    ),
    "BatchNorm-train": Case(*both("BatchNorm", 3, momentum=0.8), (X3,), calls=3),
    "BatchNorm-eval": Case(*both("BatchNorm", 3, use_running_average=True), (X3,)),
    "BatchNorm-axis-mask": Case(
        *both("BatchNorm", 7, axis=1, use_fast_variance=False), (X3,), {"mask": X3 > -0.5}
    ),
    "LayerNorm": Case(*both("LayerNorm", 3), (X3,)),
    "LayerNorm-axes": Case(*both("LayerNorm", 3, reduction_axes=(1, 2), use_bias=False), (X3,)),
    "RMSNorm": Case(*both("RMSNorm", 3), (X3,)),
    "GroupNorm": Case(*both("GroupNorm", 6, num_groups=3), (normal(2, 5, 6),)),
    "GroupNorm-size": Case(
        *both("GroupNorm", 6, num_groups=None, group_size=3), (normal(2, 5, 6),)
    ),
    "InstanceNorm": Case(*both("InstanceNorm", 3), (X4,)),
    # Flax needs `decode` chosen explicitly (ours treats None as False).
    "MultiHeadAttention": Case(
        *both("MultiHeadAttention", 2, 3, qkv_features=4, decode=False), (X3,), {"mask": MASK}
    ),
    "MultiHeadAttention-cross-gqa": Case(
        *both(
            "MultiHeadAttention",
            4,
            3,
            qkv_features=8,
            out_features=5,
            num_kv_heads=2,
            in_kv_features=2,
            normalize_qk=True,
            decode=False,
        ),
        (X3, normal(2, 4, 2)),
        {"is_causal": False},
        rtol=1e-4,
    ),
    "MultiHeadAttention-causal-sow": Case(
        *both("MultiHeadAttention", 2, 3, qkv_features=4, decode=False),
        (X3,),
        {"is_causal": True, "sow_weights": True},
    ),
    "LoRA": Case(
        lambda r: nnx_nn.LoRA(
            3,
            2,
            4,
            base_module=nnx_nn.Linear(3, 4, rngs=r),
            b_initializer=nnx_nn.initializers.ones,
            rngs=r,
        ),
        lambda r: fnnx.LoRA(
            3,
            2,
            4,
            base_module=fnnx.Linear(3, 4, rngs=r),
            b_initializer=fnnx.initializers.ones,
            rngs=r,
        ),
        (X3,),
    ),
    "LoRALinear": Case(
        *both("LoRALinear", 3, 4, lora_rank=2, b_initializer=nnx_nn.initializers.ones), (X3,)
    ),
    "Sequential": Case(
        lambda r: nnx_nn.Sequential(
            nnx_nn.Linear(3, 4, rngs=r), nnx_nn.gelu, nnx_nn.LayerNorm(4, rngs=r)
        ),
        lambda r: fnnx.Sequential(fnnx.Linear(3, 4, rngs=r), fnnx.gelu, fnnx.LayerNorm(4, rngs=r)),
        (X3,),
    ),
    "PReLU": Case(lambda r: nnx_nn.PReLU(0.2), lambda r: fnnx.PReLU(0.2), (X3,)),
    "SpectralNorm": Case(
        lambda r: nnx_nn.SpectralNorm(nnx_nn.Linear(3, 4, rngs=r), n_steps=3, rngs=r),
        lambda r: fnnx.SpectralNorm(fnnx.Linear(3, 4, rngs=r), n_steps=3, rngs=r),
        (X3,),
        rtol=1e-4,
    ),
    "WeightNorm": Case(
        lambda r: nnx_nn.WeightNorm(nnx_nn.Linear(3, 4, rngs=r), rngs=r),
        lambda r: fnnx.WeightNorm(fnnx.Linear(3, 4, rngs=r), rngs=r),
        (X3,),
        rtol=1e-4,
        # Flax keeps the scales as plain arrays (so nnx.grad does not train them); ours
        # are Params.
        type_exceptions={("scales", ("kernel",)): "Param"},
    ),
}

# Layers that (like Flax's) write normalized weights or statistics during the call:
# compare all state after the call only where both agree on what is stored.
STATE_AFTER_CALL_DIFFERS = {"SpectralNorm", "WeightNorm"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_flax_with_copied_parameters(name: str) -> None:
    case = CASES[name]
    theirs = case.theirs(fnnx.Rngs(1))
    ours = case.ours(nnx_graph.Rngs(2))  # another seed: only the copy makes them equal
    copy_from_flax(theirs, ours, case.type_exceptions)
    for _ in range(case.calls):
        expected = theirs(*case.inputs, **case.kwargs)
        actual = ours(*case.inputs, **case.kwargs)
        close(actual, expected, rtol=case.rtol, atol=case.rtol)
    if name in STATE_AFTER_CALL_DIFFERS:
        # Flax overwrites the wrapped layer's Params with the normalized weights; we
        # keep the raw weights. The normalisation statistics must agree.
        if name == "SpectralNorm":
            for key in [("kernel", "u"), ("kernel", "sigma")]:
                close(
                    ours.batch_stats[key], theirs.batch_stats[key].get_value(), rtol=1e-4, atol=1e-5
                )
        return
    if case.kwargs.get("sow_weights"):
        close(ours.attention_weights.value, theirs.attention_weights.get_value())
        return
    assert_states_equal(theirs, ours, rtol=case.rtol, atol=case.rtol)


def test_embed_attend_matches_flax() -> None:
    theirs = fnnx.Embed(10, 3, rngs=fnnx.Rngs(1))
    ours = nnx_nn.Embed(10, 3, rngs=nnx_graph.Rngs(2))
    copy_from_flax(theirs, ours)
    close(ours.attend(X3), theirs.attend(X3))


# ------------------------------------------------------------------ same seed
SAME_SEED = [
    "Linear",
    "LinearGeneral-axes",
    "Einsum",
    "Embed",
    "Conv-same-stride",
    "ConvTranspose-circular",
    "BatchNorm-train",
    "LayerNorm",
    "GroupNorm",
    "MultiHeadAttention-cross-gqa",
    "LoRA",
    "LoRALinear",
    "Sequential",
    "SpectralNorm",
    "WeightNorm",
]


@pytest.mark.parametrize("name", SAME_SEED)
def test_same_seed_gives_flax_parameters(name: str) -> None:
    case = CASES[name]
    theirs = flax_state(case.theirs(fnnx.Rngs(params=3)))
    mine = our_variables(case.ours(nnx_graph.Rngs(params=3)))
    for path, (_, value) in theirs.items():
        close(mine[path], value, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ dropout
def test_dropout_masks_match_flax_for_the_same_seed() -> None:
    theirs = fnnx.Dropout(0.4, rngs=fnnx.Rngs(dropout=5))
    ours = nnx_nn.Dropout(0.4, rngs=nnx_graph.Rngs(dropout=5))
    x = np.ones((4, 16), np.float32)
    for _ in range(3):  # a new mask per call, the same sequence of masks
        close(ours(x), theirs(x))
    broad_theirs = fnnx.Dropout(0.5, broadcast_dims=(0,), rngs=fnnx.Rngs(0))
    broad_ours = nnx_nn.Dropout(0.5, broadcast_dims=(0,), rngs=nnx_graph.Rngs(0))
    close(broad_ours(x), broad_theirs(x))
    key = jax.random.key(7)
    close(nnx_nn.Dropout(0.3)(x, rngs=key), fnnx.Dropout(0.3)(x, rngs=key))
    close(
        nnx_nn.Dropout(0.3)(x, rngs=nnx_graph.Rngs(dropout=2)),
        fnnx.Dropout(0.3)(x, rngs=fnnx.Rngs(dropout=2)),
    )


def test_attention_dropout_matches_flax_for_the_same_seed() -> None:
    theirs = fnnx.MultiHeadAttention(
        2, 3, qkv_features=4, dropout_rate=0.3, decode=False, rngs=fnnx.Rngs(params=0, dropout=1)
    )
    ours = nnx_nn.MultiHeadAttention(
        2,
        3,
        qkv_features=4,
        dropout_rate=0.3,
        decode=False,
        rngs=nnx_graph.Rngs(params=0, dropout=1),
    )
    theirs.set_attributes(deterministic=False)
    ours.train()
    for _ in range(2):
        close(ours(X3), theirs(X3), rtol=1e-4, atol=1e-5)
    ours.eval()
    theirs.set_attributes(deterministic=True)
    close(ours(X3), theirs(X3), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ attention functions
def test_attention_functions_and_masks_match_flax() -> None:
    q, k, v = normal(2, 5, 4, 3), normal(2, 6, 2, 3), normal(2, 6, 2, 3)
    mask = RNG.uniform(size=(2, 1, 5, 6)) > 0.3
    bias = normal(1, 4, 5, 6)
    for kwargs in ({}, {"mask": mask}, {"bias": bias, "mask": mask}):
        close(
            nnx_nn.dot_product_attention(q, k, v, **kwargs),
            fnnx.dot_product_attention(q, k, v, **kwargs),
            rtol=1e-4,
        )
        close(
            nnx_nn.dot_product_attention_weights(q, k, **kwargs),
            flax_attention.dot_product_attention_weights(q, k, **kwargs),
            rtol=1e-4,
        )
    key = jax.random.key(3)
    dropout = {"dropout_rng": key, "dropout_rate": 0.4, "broadcast_dropout": False}
    close(
        nnx_nn.dot_product_attention(q, k, v, **dropout),
        fnnx.dot_product_attention(q, k, v, **dropout),
        rtol=1e-4,
    )
    q5 = normal(2, 1, 5, 2, 3)
    close(
        nnx_nn.dot_product_attention(q5, q5, q5, is_causal=True),
        fnnx.dot_product_attention(q5, q5, q5, is_causal=True),
        rtol=1e-4,
    )
    tokens = np.array([[1, 1, 0, 1]])
    close(
        nnx_nn.make_attention_mask(tokens, tokens, extra_batch_dims=1),
        fnnx.make_attention_mask(tokens, tokens, extra_batch_dims=1),
    )
    close(nnx_nn.make_causal_mask(tokens), fnnx.make_causal_mask(tokens))
    close(nnx_nn.combine_masks(mask, None, mask), fnnx.combine_masks(mask, None, mask))


def test_multihead_decode_matches_flax() -> None:
    theirs = fnnx.MultiHeadAttention(
        4, 3, qkv_features=8, num_kv_heads=2, rngs=fnnx.Rngs(1), decode=True
    )
    ours = nnx_nn.MultiHeadAttention(
        4, 3, qkv_features=8, num_kv_heads=2, rngs=nnx_graph.Rngs(2), decode=True
    )
    copy_from_flax(theirs, ours)
    theirs.init_cache(X3.shape)
    ours.init_cache(X3.shape)
    for i in range(X3.shape[1]):
        close(ours(X3[:, i : i + 1]), theirs(X3[:, i : i + 1]), rtol=1e-4)
    assert_states_equal(theirs, ours, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ recurrent
CELLS = {
    "LSTMCell": lambda lib, r: lib.LSTMCell(3, 4, rngs=r),
    "OptimizedLSTMCell": lambda lib, r: lib.OptimizedLSTMCell(3, 4, rngs=r),
    "GRUCell": lambda lib, r: lib.GRUCell(3, 4, rngs=r),
    "SimpleCell": lambda lib, r: lib.SimpleCell(3, 4, residual=True, rngs=r),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_and_rnn_match_flax(name: str) -> None:
    theirs = CELLS[name](fnnx, fnnx.Rngs(1))
    ours = CELLS[name](nnx_nn, nnx_graph.Rngs(2))
    copy_from_flax(theirs, ours)
    carry_theirs = theirs.initialize_carry((2, 3), fnnx.Rngs(0))
    carry_ours = ours.initialize_carry((2, 3), nnx_graph.Rngs(0))
    close(carry_ours, carry_theirs)
    close(ours(carry_ours, X3[:, 0]), theirs(carry_theirs, X3[:, 0]), rtol=1e-4)
    rnn_theirs, rnn_ours = fnnx.RNN(theirs), nnx_nn.RNN(ours)
    close(rnn_ours(X3), rnn_theirs(X3), rtol=1e-4)
    lengths = np.array([4, 7])
    for kwargs in (
        {"reverse": True, "keep_order": True, "seq_lengths": lengths},
        {"return_carry": True, "seq_lengths": lengths},
        {"time_major": True},
    ):
        x = np.swapaxes(X3, 0, 1) if kwargs.get("time_major") else X3
        close(rnn_ours(x, **kwargs), rnn_theirs(x, **kwargs), rtol=1e-4)


def test_bidirectional_and_flip_sequences_match_flax() -> None:
    theirs = fnnx.Bidirectional(
        fnnx.RNN(fnnx.GRUCell(3, 4, rngs=fnnx.Rngs(1))),
        fnnx.RNN(fnnx.LSTMCell(3, 4, rngs=fnnx.Rngs(2))),
    )
    ours = nnx_nn.Bidirectional(
        nnx_nn.RNN(nnx_nn.GRUCell(3, 4, rngs=nnx_graph.Rngs(3))),
        nnx_nn.RNN(nnx_nn.LSTMCell(3, 4, rngs=nnx_graph.Rngs(4))),
    )
    copy_from_flax(theirs, ours)
    lengths = np.array([5, 7])
    close(
        ours(X3, seq_lengths=lengths, return_carry=True),
        theirs(X3, seq_lengths=lengths, return_carry=True),
        rtol=1e-4,
    )
    close(
        flip_sequences(jnp.asarray(X3), jnp.asarray(lengths), 1, False),
        flax_recurrent.flip_sequences(X3, lengths, 1, False),
    )


# ------------------------------------------------------------------ functions
def test_pooling_matches_flax() -> None:
    for fn in ("avg_pool", "max_pool", "min_pool"):
        for kwargs in ({}, {"strides": (2, 1)}, {"padding": "SAME"}, {"padding": ((1, 0), (0, 1))}):
            close(
                getattr(nnx_nn, fn)(X4, (2, 3), **kwargs), getattr(fnnx, fn)(X4, (2, 3), **kwargs)
            )
    close(
        nnx_nn.avg_pool(X4, (3, 3), padding="SAME", count_include_pad=False),
        fnnx.avg_pool(X4, (3, 3), padding="SAME", count_include_pad=False),
    )
    close(
        nnx_nn.pool(X3, 0.0, jax.lax.add, (2,), (1,), "VALID"),
        fnnx.pool(X3, 0.0, jax.lax.add, (2,), (1,), "VALID"),
    )


def test_activations_and_initializers_are_flaxs() -> None:
    for name in (
        "celu",
        "elu",
        "gelu",
        "glu",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "log_sigmoid",
        "log_softmax",
        "logsumexp",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "identity",
        "silu",
        "soft_sign",
        "softmax",
        "softplus",
        "standardize",
        "swish",
        "tanh",
    ):
        close(getattr(nnx_nn, name)(X2), getattr(fnnx, name)(X2))
    close(nnx_nn.one_hot(IDS, 10), fnnx.one_hot(IDS, 10))
    key = jax.random.key(0)
    for name in (
        "lecun_normal",
        "he_uniform",
        "xavier_normal",
        "orthogonal",
        "zeros_init",
        "ones_init",
    ):
        close(
            getattr(nnx_nn.initializers, name)()(key, (3, 4), jnp.float32),
            getattr(fnnx.initializers, name)()(key, (3, 4), jnp.float32),
        )


def test_signatures_match_flax() -> None:
    import inspect

    names = [
        n
        for n in nnx_nn.__all__
        if n
        not in (
            "__version__",
            "initializers",
            "Initializer",
            "InputShapeError",
            "LayerConfigError",
            "LayerInputError",
            "dot_product_attention_weights",
        )
    ]
    for name in names:
        ours, theirs = getattr(nnx_nn, name), getattr(fnnx, name)
        if ours is theirs:
            continue
        target_ours = ours.__init__ if isinstance(ours, type) else ours
        target_theirs = theirs.__init__ if isinstance(theirs, type) else theirs
        p_ours = inspect.signature(target_ours).parameters
        p_theirs = inspect.signature(target_theirs).parameters
        if name == "LoRAParam":
            continue  # Flax's Variable constructor flags (hijax, ref, ...)
        assert list(p_ours) == list(p_theirs), (name, list(p_ours), list(p_theirs))
        for param in p_theirs.values():
            mine = p_ours[param.name]
            assert mine.kind == param.kind, (name, param.name)
            if param.default is inspect.Parameter.empty or callable(param.default):
                continue
            assert mine.default == param.default, (name, param.name, mine.default, param.default)


def test_method_signatures_match_flax() -> None:
    import inspect

    for name in nnx_nn.__all__:
        ours, theirs = getattr(nnx_nn, name, None), getattr(fnnx, name, None)
        if not isinstance(ours, type) or not isinstance(theirs, type) or name == "LoRAParam":
            continue
        for method in ("__call__", "attend", "init_cache", "initialize_carry"):
            if method not in vars(theirs):
                continue
            p_ours = inspect.signature(getattr(ours, method)).parameters
            p_theirs = inspect.signature(getattr(theirs, method)).parameters
            assert list(p_ours) == list(p_theirs), (name, method, list(p_ours), list(p_theirs))
            for param in p_theirs.values():
                assert p_ours[param.name].kind == param.kind, (name, method, param.name)


# ------------------------------------------------------------------ issue 12 layer details
EINSUM_PATTERNS = [
    ("nta,hab->nthb", (8, 2, 4), (8, 4), (16, 11, 2)),
    ("ab,bc->ac", (3, 4), (4,), (2, 3)),
    ("...a,ab->...b", (3, 4), (4,), (2, 5, 7, 3)),
    ("btnh,nhd->btd", (2, 3, 4), (4,), (2, 5, 2, 3)),
    ("btd,dnh->btnh", (3, 2, 4), (2, 4), (2, 5, 3)),
    ("...d,dnh->...nh", (3, 2, 4), (2, 4), (2, 5, 6, 3)),
    ("b...d,dh->b...h", (3, 4), (4,), (2, 5, 6, 3)),
    ("bti,bij->btj", (2, 3, 4), (2, 4), (2, 5, 3)),
    ("...ab,...bc->...ac", (2, 3, 4), (2, 4), (2, 5, 3)),
    ("...a,...ab->...b", (5, 3, 4), None, (2, 5, 3)),
]


@pytest.mark.parametrize(("equation", "kernel", "bias", "shape"), EINSUM_PATTERNS)
def test_einsum_patterns_match_flax(
    equation: str, kernel: tuple[int, ...], bias: tuple[int, ...] | None, shape: tuple[int, ...]
) -> None:
    init = fnnx.initializers.normal(1.0)
    theirs = fnnx.Einsum(equation, kernel, bias, bias_init=init, rngs=fnnx.Rngs(0))
    ours = nnx_nn.Einsum(equation, kernel, bias, bias_init=init, rngs=nnx_graph.Rngs(0))
    close(ours.kernel, theirs.kernel)  # same seed, same parameters
    x = normal(*shape)
    close(ours(x), theirs(x), rtol=1e-4)


def test_einsum_wrong_bias_shape_raises_flaxs_type() -> None:
    x = normal(2, 3)
    with pytest.raises(TypeError):
        fnnx.Einsum("bd,dnh->bnh", (3, 2, 4), (4,), rngs=fnnx.Rngs(0))(x)
    with pytest.raises(TypeError, match=r"bias_shape=\(2, 4\)"):
        nnx_nn.Einsum("bd,dnh->bnh", (3, 2, 4), (4,), rngs=nnx_graph.Rngs(0))(x)


def test_dropout_overrides_and_errors_match_flax() -> None:
    x = np.ones((4, 8), np.float32)
    # call-time override of a deterministic layer, and of an active one
    theirs = fnnx.Dropout(0.5, deterministic=True, rngs=fnnx.Rngs(dropout=3))
    ours = nnx_nn.Dropout(0.5, deterministic=True, rngs=nnx_graph.Rngs(dropout=3))
    close(ours(x), theirs(x))
    close(ours(x, deterministic=False), theirs(x, deterministic=False))
    close(ours(x, deterministic=True), theirs(x, deterministic=True))
    # the rate attribute can be changed after construction
    ours.rate = theirs.rate = 0.25
    close(ours(x, deterministic=False), theirs(x, deterministic=False))
    # rate=1 drops everything
    close(nnx_nn.Dropout(1.0)(x), fnnx.Dropout(1.0)(x))
    # errors: same types, Flax's key phrases
    phrases = {
        "`deterministic` is False, but no `rngs` argument was provided to Dropout": {},
        "No `deterministic` argument was provided to Dropout": {"deterministic": None},
    }
    for phrase, kwargs in phrases.items():
        with pytest.raises(ValueError, match=re.escape(phrase)):
            fnnx.Dropout(0.5, **kwargs)(x)
        with pytest.raises(ValueError, match=re.escape(phrase)):
            nnx_nn.Dropout(0.5, **kwargs)(x)
    with pytest.raises(TypeError):
        fnnx.Dropout(0.5)(x, rngs=3)
    with pytest.raises(TypeError, match=r"rngs must be a Rngs, RngStream or jax\.Array"):
        nnx_nn.Dropout(0.5)(x, rngs=tp.cast(tp.Any, 3))


@pytest.mark.parametrize(
    "build",
    [
        lambda lib, r: lib.Linear(3, 4, rngs=r),
        lambda lib, r: lib.Conv(3, 4, 3, rngs=r),
        lambda lib, r: lib.Einsum("ab,bc->ac", (3, 4), rngs=r),
        lambda lib, r: lib.MultiHeadAttention(2, 4, decode=False, rngs=r),
        lambda lib, r: lib.LSTMCell(2, 3, rngs=r),
    ],
)
@pytest.mark.parametrize("bad", [None, 0])
def test_missing_rngs_raise_flaxs_type(build: tp.Any, bad: tp.Any) -> None:
    with pytest.raises(AttributeError) as flax_error:
        build(fnnx, bad)
    with pytest.raises(AttributeError) as our_error:
        build(nnx_nn, bad)
    assert isinstance(our_error.value, TypeError)  # and it says what to pass
    assert "rngs=nnx.Rngs(" in str(our_error.value)
    assert "params" in str(flax_error.value)


def test_parameter_metadata_matches_flax() -> None:
    # The annotations given through kernel/bias metadata reach the Params as in
    # Flax (Flax stores every alias under out_sharding; nnx keeps the key given).
    kwargs = {
        "kernel_metadata": {"out_sharding": ("a", "b")},
        "bias_metadata": {"out_sharding": ("b",)},
    }
    with fnnx.use_eager_sharding(False), nnx_graph.use_eager_sharding(False):
        pairs = [
            (
                fnnx.Linear(3, 4, rngs=fnnx.Rngs(0), **kwargs),
                nnx_nn.Linear(3, 4, rngs=nnx_graph.Rngs(0), **kwargs),
            ),
            (
                fnnx.Conv(
                    3, 4, 3, rngs=fnnx.Rngs(0), kernel_metadata={"out_sharding": (None, "a", "b")}
                ),
                nnx_nn.Conv(
                    3,
                    4,
                    3,
                    rngs=nnx_graph.Rngs(0),
                    kernel_metadata={"out_sharding": (None, "a", "b")},
                ),
            ),
            (
                fnnx.Einsum("bd,dnh->bnh", (3, 2, 4), (2, 4), rngs=fnnx.Rngs(0), **kwargs),
                nnx_nn.Einsum("bd,dnh->bnh", (3, 2, 4), (2, 4), rngs=nnx_graph.Rngs(0), **kwargs),
            ),
        ]
    for theirs, ours in pairs:
        for name in ("kernel", "bias"):
            flax_var, our_var = getattr(theirs, name), getattr(ours, name)
            assert type(our_var).__name__ == type(flax_var).__name__
            assert our_var.get_metadata().get("out_sharding") == flax_var.get_metadata().get(
                "out_sharding"
            ), (type(ours).__name__, name)
            spec_theirs = fnnx.get_partition_spec(fnnx.State({"v": flax_var}))["v"].get_value()
            spec_ours = nnx_graph.get_partition_spec(our_var).value
            assert tuple(spec_ours) == tuple(spec_theirs), (type(ours).__name__, name)
