"""Flax NNX 0.12 drop-in details of the layers: the ``nnx.nn.<module>`` paths,
``rngs`` errors, Dropout overrides, ``set_view``, and Einsum with several batch
dimensions."""

from __future__ import annotations

import importlib
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn
from nnx_nn.nn import (
    activations,
    attention,
    dtypes,
    linear,
    lora,
    normalization,
    recurrent,
    stochastic,
)

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


# ------------------------------------------------------------------ module paths
@pytest.mark.parametrize("name", SUBMODULES)
def test_submodule_exports_resolve(name: str) -> None:
    module = importlib.import_module(f"nnx_nn.{name}")
    names = list(getattr(module, "__all__", []))
    assert names, f"nnx_nn.{name} has no __all__"
    for attr in names:
        assert hasattr(module, attr), f"nnx_nn.{name}.{attr} is listed but missing"
    # the nn namespace exposes the same module object
    assert getattr(nnx_nn.nn, name) is module


def test_submodules_hold_the_same_objects_as_the_top_level() -> None:
    pairs: list[tuple[tp.Any, str]] = [
        (attention, "MultiHeadAttention"),
        (attention, "combine_masks"),
        (attention, "make_causal_mask"),
        (attention, "dot_product_attention"),
        (linear, "Linear"),
        (linear, "Einsum"),
        (linear, "Conv"),
        (linear, "Embed"),
        (lora, "LoRA"),
        (normalization, "BatchNorm"),
        (normalization, "WeightNorm"),
        (recurrent, "LSTMCell"),
        (recurrent, "RNN"),
        (stochastic, "Dropout"),
        (activations, "gelu"),
        (activations, "PReLU"),
    ]
    for module, name in pairs:
        assert getattr(module, name) is getattr(nnx_nn, name), (module.__name__, name)
    assert dtypes.promote_dtype is nnx_nn.nn.promote_dtype
    assert recurrent.flip_sequences is nnx_nn.nn.flip_sequences


def test_flax_style_import_lines_run() -> None:
    from nnx_nn.attention import MultiHeadAttention, combine_masks, make_causal_mask

    tokens = jnp.array([[5, 3, 0]])
    mask = combine_masks(make_causal_mask(tokens), (tokens > 0)[:, None, None, :])
    assert mask is not None and mask.shape == (1, 1, 3, 3)
    mha = MultiHeadAttention(2, 4, decode=False, rngs=nnx_graph.Rngs(0))
    assert mha(jnp.ones((1, 3, 4)), mask=mask).shape == (1, 3, 4)


# ------------------------------------------------------------------ rngs errors
LAYERS_NEEDING_RNGS: dict[str, tp.Callable[[tp.Any], tp.Any]] = {
    "Linear": lambda r: nnx_nn.Linear(3, 4, rngs=r),
    "LinearGeneral": lambda r: nnx_nn.LinearGeneral(3, 4, rngs=r),
    "Einsum": lambda r: nnx_nn.Einsum("ab,bc->ac", (3, 4), rngs=r),
    "Conv": lambda r: nnx_nn.Conv(3, 4, 3, rngs=r),
    "ConvTranspose": lambda r: nnx_nn.ConvTranspose(3, 4, 3, rngs=r),
    "Embed": lambda r: nnx_nn.Embed(5, 3, rngs=r),
    "LayerNorm": lambda r: nnx_nn.LayerNorm(3, rngs=r),
    "RMSNorm": lambda r: nnx_nn.RMSNorm(3, rngs=r),
    "BatchNorm": lambda r: nnx_nn.BatchNorm(3, rngs=r),
    "GroupNorm": lambda r: nnx_nn.GroupNorm(4, num_groups=2, rngs=r),
    "MultiHeadAttention": lambda r: nnx_nn.MultiHeadAttention(2, 4, rngs=r),
    "LSTMCell": lambda r: nnx_nn.LSTMCell(2, 3, rngs=r),
    "GRUCell": lambda r: nnx_nn.GRUCell(2, 3, rngs=r),
    "LoRA": lambda r: nnx_nn.LoRA(3, 2, 4, rngs=r),
    "LoRALinear": lambda r: nnx_nn.LoRALinear(3, 4, lora_rank=2, rngs=r),
}


@pytest.mark.parametrize("name", sorted(LAYERS_NEEDING_RNGS))
@pytest.mark.parametrize("bad", [None, 0, "key"])
def test_missing_rngs_says_what_to_pass(name: str, bad: tp.Any) -> None:
    rngs = jax.random.key(0) if bad == "key" else bad
    with pytest.raises(TypeError) as excinfo:
        LAYERS_NEEDING_RNGS[name](rngs)
    error = excinfo.value
    assert isinstance(error, AttributeError)  # the type Flax raises here
    text = str(error)
    assert text.startswith(f"{name}: rngs must be an nnx.Rngs")
    assert "Fix: pass rngs=nnx.Rngs(" in text
    found = {None: "found None", 0: "found the int 0", "key": "found a"}[bad]
    assert found in text


def test_layers_without_params_need_no_rngs() -> None:
    norm = nnx_nn.LayerNorm(3, use_scale=False, use_bias=False, rngs=tp.cast(tp.Any, None))
    assert norm(jnp.arange(3.0)[None]).shape == (1, 3)


def test_dropout_rejects_a_seed_for_rngs() -> None:
    with pytest.raises(TypeError, match=r"rngs must be a Rngs, RngStream or None, found int"):
        nnx_nn.Dropout(0.5, rngs=tp.cast(tp.Any, 0))
    with pytest.raises(TypeError, match=r"rngs must be a Rngs, RngStream or jax\.Array"):
        nnx_nn.Dropout(0.5)(jnp.ones(3), rngs=tp.cast(tp.Any, 3))


# ------------------------------------------------------------------ Dropout
X = jnp.ones((4, 16))


def test_dropout_call_overrides_deterministic_both_ways() -> None:
    drop = nnx_nn.Dropout(0.5, deterministic=True, rngs=nnx_graph.Rngs(dropout=0))
    assert bool((drop(X) == X).all())
    masked = drop(X, deterministic=False)
    assert set(np.unique(np.asarray(masked)).tolist()) == {0.0, 2.0}
    drop = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
    assert bool((drop(X, deterministic=True) == X).all())


def test_dropout_rate_attribute_and_extremes() -> None:
    drop = nnx_nn.Dropout(0.5, rngs=nnx_graph.Rngs(dropout=0))
    drop.rate = 0.0
    assert bool((drop(X) == X).all())
    everything = nnx_nn.Dropout(1.0)  # no key needed: all dropped
    assert float(jnp.abs(everything(X)).sum()) == 0.0
    with pytest.raises(nnx_nn.LayerConfigError, match=r"in \[0, 1\], found 1\.5"):
        nnx_nn.Dropout(1.5)


def test_dropout_rngs_at_call_time() -> None:
    drop = nnx_nn.Dropout(0.5)
    key = jax.random.key(3)
    a, b = drop(X, rngs=key), drop(X, rngs=key)
    assert bool((a == b).all())  # a raw key gives the same mask every time
    stream = nnx_graph.Rngs(dropout=1)
    c, d = drop(X, rngs=stream), drop(X, rngs=stream)
    assert not bool((c == d).all())  # an Rngs advances


def test_dropout_errors_without_rngs_or_mode() -> None:
    with pytest.raises(
        nnx_nn.LayerInputError,
        match=r"`deterministic` is False, but no `rngs` argument was provided to Dropout",
    ):
        nnx_nn.Dropout(0.5, deterministic=True)(X, deterministic=False)
    with pytest.raises(
        ValueError, match=r"No `deterministic` argument was provided to Dropout.*model\.eval"
    ):
        nnx_nn.Dropout(0.5, deterministic=None)(X)


# ------------------------------------------------------------------ set_view
def test_set_view_switches_modes_in_place() -> None:
    drop = nnx_nn.Dropout(0.5)
    assert drop.set_view(deterministic=True) is None and drop.deterministic is True
    drop.set_view()
    assert drop.deterministic is True  # None leaves it
    bn = nnx_nn.BatchNorm(3, rngs=nnx_graph.Rngs(0))
    bn.set_view(use_running_average=True)
    assert bn.use_running_average is True
    mha = nnx_nn.MultiHeadAttention(2, 4, decode=False, dropout_rate=0.1, rngs=nnx_graph.Rngs(0))
    mha.set_view(deterministic=True, decode=True)
    assert (mha.deterministic, mha.decode, mha.cached_key) == (True, True, None)
    mha.set_view(batch_size=(2, 3), max_length=5)
    assert mha.cached_key is not None and mha.cached_key.shape == (2, 3, 5, 2, 2)
    assert int(mha.cache_index.value) == 0


# ------------------------------------------------------------------ Einsum
EINSUM_CASES = [
    # (equation, kernel_shape, bias_shape, input_shape)
    ("nta,hab->nthb", (8, 2, 4), (8, 4), (16, 11, 2)),
    ("ab,bc->ac", (3, 4), (4,), (2, 3)),
    ("...a,ab->...b", (3, 4), (4,), (2, 5, 7, 3)),
    ("...a,ab->...b", (3, 4), (4,), (3,)),
    ("btnh,nhd->btd", (2, 3, 4), (4,), (2, 5, 2, 3)),
    ("btd,dnh->btnh", (3, 2, 4), (2, 4), (2, 5, 3)),
    ("...d,dnh->...nh", (3, 2, 4), (2, 4), (2, 5, 6, 3)),
    ("b...d,dh->b...h", (3, 4), (4,), (2, 5, 6, 3)),
    ("bti,bij->btj", (2, 3, 4), (2, 4), (2, 5, 3)),
    ("...ab,...bc->...ac", (2, 3, 4), (2, 4), (2, 5, 3)),  # batch dims in the kernel
    ("...ab,...bc->...ac", (2, 3, 4), (2, 4), (7, 2, 5, 3)),  # and more in the input
    ("...a,...ab->...b", (5, 3, 4), None, (2, 5, 3)),
]


def _bias_layout(equation: str, x_ndim: int, kernel_shape: tuple[int, ...]) -> list[int]:
    """The shape the bias broadcasts as, worked out independently of the layer:
    ellipsis axes are numbered right-aligned across operands, and each output axis
    that comes from the kernel takes the kernel's size."""
    lhs, rest = equation.split(",")
    rhs, out = rest.split("->")
    n_l = x_ndim - len(lhs.replace("...", "")) if "..." in lhs else 0
    n_r = len(kernel_shape) - len(rhs.replace("...", "")) if "..." in rhs else 0
    n = max(n_l, n_r)

    def labels(spec: str, count: int) -> list[str]:
        if "..." not in spec:
            return list(spec)
        head, _, tail = spec.partition("...")
        return [*head, *[f"#{n - count + i}" for i in range(count)], *tail]

    sizes = dict(zip(labels(rhs, n_r), kernel_shape))
    return [sizes.get(label, 1) for label in labels(out, n)]


@pytest.mark.parametrize(("equation", "kernel_shape", "bias_shape", "input_shape"), EINSUM_CASES)
def test_einsum_patterns(
    equation: str,
    kernel_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    input_shape: tuple[int, ...],
) -> None:
    layer = nnx_nn.Einsum(
        equation,
        kernel_shape,
        bias_shape,
        bias_init=nnx_nn.initializers.normal(1.0),
        rngs=nnx_graph.Rngs(0),
    )
    x = jax.random.normal(jax.random.key(1), input_shape)
    expected = np.einsum(equation, np.asarray(x), np.asarray(layer.kernel.value))
    if layer.bias is not None:
        layout = _bias_layout(equation, x.ndim, kernel_shape)
        expected = expected + np.asarray(layer.bias.value).reshape(layout)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)
    jitted = jax.jit(lambda v: layer(v))
    np.testing.assert_allclose(np.asarray(jitted(x)), expected, rtol=1e-5, atol=1e-5)


def test_einsum_bias_of_the_wrong_shape_says_which_shape_fits() -> None:
    layer = nnx_nn.Einsum("bd,dnh->bnh", (3, 2, 4), (4,), rngs=nnx_graph.Rngs(0))
    with pytest.raises(TypeError, match=r"bias_shape=\(2, 4\)"):
        layer(jnp.ones((2, 3)))
