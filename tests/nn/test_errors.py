"""Mistakes get errors that name the layer (and its path when a container called it),
what was expected, what was found and the fix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx_graph
import nnx_nn

from .helpers import np_init

NP = np_init()

RNGS = nnx_graph.Rngs(0)
X = np.ones((2, 5), np.float32)


def message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(excinfo.value)


def test_linear_input_feature_mismatch_names_layer_shapes_and_fix() -> None:
    layer = nnx_nn.Linear(3, 4, kernel_init=NP, rngs=RNGS)
    with pytest.raises(nnx_nn.InputShapeError) as excinfo:
        layer(X)
    text = message(excinfo)
    assert text.startswith("Linear(in_features=3, out_features=4): ")
    assert "expected inputs with 3 features on axis -1" in text
    assert "found inputs of shape (2, 5) (5 features)" in text
    assert "Fix:" in text and "in_features=5" in text
    assert "dot_general" not in text
    assert isinstance(excinfo.value, ValueError)


def test_the_check_runs_at_trace_time_under_jit() -> None:
    layer = nnx_nn.Linear(3, 4, kernel_init=NP, rngs=RNGS)
    graphdef, state = nnx_graph.split(layer)
    with pytest.raises(nnx_nn.InputShapeError, match=r"found inputs of shape \(2, 5\)"):
        jax.jit(lambda s, x: nnx_graph.merge(graphdef, s)(x))(state, X)


def test_containers_prefix_the_path_of_the_failing_child() -> None:
    model = nnx_nn.Sequential(
        nnx_nn.Linear(5, 4, kernel_init=NP, rngs=RNGS),
        nnx_nn.relu,
        nnx_nn.Linear(3, 2, kernel_init=NP, rngs=RNGS),
    )
    with pytest.raises(nnx_nn.InputShapeError) as excinfo:
        model(X)
    assert message(excinfo).startswith(
        "model.layers[2] (Linear(in_features=3, out_features=2)): expected inputs with 3 features"
    )
    assert excinfo.value.path == ("layers", 2)  # type: ignore[attr-defined]

    rnn = nnx_nn.RNN(nnx_nn.LSTMCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=RNGS))
    with pytest.raises(nnx_nn.InputShapeError) as excinfo:
        rnn(np.ones((2, 7, 5)))
    assert message(excinfo).startswith("model.cell (LSTMCell(in_features=3, hidden_features=4))")

    lora = nnx_nn.LoRA(
        5, 2, 4, base_module=nnx_nn.Linear(5, 4, rngs=RNGS), a_initializer=NP, rngs=RNGS
    )
    with pytest.raises(nnx_nn.InputShapeError, match=r"^LoRA\(in_features=5, out_features=4\)"):
        lora(np.ones((2, 3)))


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (
            lambda: nnx_nn.Linear(0, 4, kernel_init=NP, rngs=RNGS),
            r"Linear\(in_features=0, out_features=4\): in_features must be a positive integer, "
            r"found 0\. Fix: ",
        ),
        (
            lambda: nnx_nn.Linear(3, -2, kernel_init=NP, rngs=RNGS),
            r"out_features must be a positive integer, found -2",
        ),
        (
            lambda: nnx_nn.Embed(0, 3, embedding_init=NP, rngs=RNGS),
            r"num_embeddings must be a positive integer",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, (3, 3), padding="SAMEE", kernel_init=NP, rngs=RNGS),
            r"unknown padding 'SAMEE'; expected a string \('SAME', 'VALID'.*Fix: e\.g\. "
            r"padding='SAME'",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, (3, 3), padding="CAUSAL", kernel_init=NP, rngs=RNGS),
            r"padding='CAUSAL' needs a 1D convolution, found a kernel with 2 spatial axes",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, (3, 3), strides=(1, 1, 1), kernel_init=NP, rngs=RNGS),
            r"strides has 3 entries but the kernel has 2 spatial axes",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, (3, 3), padding=[(1, 1)], kernel_init=NP, rngs=RNGS),
            r"invalid padding \[\(1, 1\)\]; expected .* a sequence of 2 ints or "
            r"\(low, high\) pairs",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, 3, mask=jnp.ones((3, 3)), kernel_init=NP, rngs=RNGS),
            r"mask must have the kernel's shape \(3, 3, 4\), found \(3, 3\)",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, 3, feature_group_count=2, kernel_init=NP, rngs=RNGS),
            r"must be divisible by feature_group_count=2",
        ),
        (
            lambda: nnx_nn.ConvTranspose(3, 4, 3, padding="REFLECT", kernel_init=NP, rngs=RNGS),
            r"ConvTranspose.*unknown padding 'REFLECT'",
        ),
        (
            lambda: nnx_nn.LinearGeneral((2, 3), 4, axis=-1, kernel_init=NP, rngs=RNGS),
            r"expected one axis per in_features entry, found 2 in_features and 1 axes",
        ),
        (
            lambda: nnx_nn.Einsum("ab,bc", (3, 4), kernel_init=NP, rngs=RNGS),
            r"must be explicit, found no '->'",
        ),
        (
            lambda: nnx_nn.Einsum("ab,bc->ac", (3, 4, 5), kernel_init=NP, rngs=RNGS),
            r"the kernel spec 'bc' has 2 axes but kernel_shape has 3",
        ),
        (
            lambda: nnx_nn.Dropout(1.5),
            r"Dropout\(rate=1\.5\): rate must be a probability in "
            r"\[0, 1\], found 1\.5.*Fix: e\.g\. Dropout\(0\.1\)",
        ),
        (lambda: nnx_nn.Dropout(-0.1), r"rate must be a probability in \[0, 1\]"),
        (lambda: nnx_nn.BatchNorm(4, momentum=2.0, rngs=RNGS), r"momentum must be in \[0, 1\]"),
        (
            lambda: nnx_nn.GroupNorm(6, rngs=RNGS),
            r"num_groups must divide num_features \(6\).*default num_groups=32",
        ),
        (
            lambda: nnx_nn.GroupNorm(6, num_groups=3, group_size=2, rngs=RNGS),
            r"expected exactly one of num_groups and group_size",
        ),
        (
            lambda: nnx_nn.MultiHeadAttention(3, 8, kernel_init=NP, rngs=RNGS),
            r"qkv_features \(8\) must be divisible by num_heads \(3\)",
        ),
        (
            lambda: nnx_nn.MultiHeadAttention(4, 8, num_kv_heads=3, kernel_init=NP, rngs=RNGS),
            r"num_heads \(4\) must be a multiple of num_kv_heads \(3\)",
        ),
        (
            lambda: nnx_nn.LSTMCell(3, 0, kernel_init=NP, recurrent_kernel_init=NP, rngs=RNGS),
            r"hidden_features must be a positive integer",
        ),
        (
            lambda: nnx_nn.LoRA(3, 0, 4, a_initializer=NP, rngs=RNGS),
            r"lora_rank must be a positive integer",
        ),
    ],
)
def test_invalid_configuration_fails_at_construction(build: object, pattern: str) -> None:
    with pytest.raises(nnx_nn.LayerConfigError, match=pattern):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("layer", "inputs", "pattern"),
    [
        (
            lambda: nnx_nn.BatchNorm(3, rngs=RNGS),
            X,
            r"BatchNorm\(num_features=3, axis=-1\): expected inputs with 3 features on axis 1 "
            r"\(num_features=3\), found inputs of shape \(2, 5\)",
        ),
        (lambda: nnx_nn.LayerNorm(4, rngs=RNGS), X, r"LayerNorm\(num_features=4\): expected"),
        (
            lambda: nnx_nn.Conv(3, 4, (3, 3), kernel_init=NP, rngs=RNGS),
            np.ones((1, 8, 8, 5)),
            r"Conv\(in_features=3, out_features=4, kernel_size=\(3, 3\)\): expected inputs of "
            r"shape \(batch\.\.\., spatial, spatial, 3\).*found inputs of shape \(1, 8, 8, 5\)",
        ),
        (
            lambda: nnx_nn.Conv(3, 4, (3, 3), kernel_init=NP, rngs=RNGS),
            np.ones((8, 3)),
            r"2 spatial axes",
        ),
        (
            lambda: nnx_nn.LinearGeneral((2, 3), 4, axis=(-2, -1), kernel_init=NP, rngs=RNGS),
            np.ones((4, 3, 3)),
            r"expected inputs with size \(2, 3\) on axes \(-2, -1\), found inputs of shape "
            r"\(4, 3, 3\)",
        ),
        (
            lambda: nnx_nn.Einsum("btc,co->bto", (3, 4), kernel_init=NP, rngs=RNGS),
            np.ones((2, 5, 4)),
            r"expected inputs with size 3 on axis 2 \(letter 'c'",
        ),
        (
            lambda: nnx_nn.MultiHeadAttention(2, 8, kernel_init=NP, rngs=RNGS),
            np.ones((2, 3, 6)),
            r"MultiHeadAttention\(num_heads=2, in_features=8, .*expected inputs_q with 8 features",
        ),
        (
            lambda: nnx_nn.LoRALinear(
                3, 4, lora_rank=2, kernel_init=NP, a_initializer=NP, rngs=RNGS
            ),
            X,
            r"^LoRALinear\(in_features=3, out_features=4\): expected inputs with 3 features",
        ),
    ],
)
def test_input_shape_mismatch_at_call(layer: object, inputs: np.ndarray, pattern: str) -> None:
    with pytest.raises(nnx_nn.InputShapeError, match=pattern):
        layer()(inputs)  # type: ignore[operator]


def test_other_input_errors() -> None:
    embed = nnx_nn.Embed(10, 3, embedding_init=NP, rngs=RNGS)
    with pytest.raises(
        nnx_nn.LayerInputError,
        match=r"expected integer ids, found inputs of "
        r"dtype float32\. Fix: cast the ids",
    ):
        embed(np.ones(3, np.float32))
    with pytest.raises(nnx_nn.InputShapeError, match=r"expected query with 3 features"):
        embed.attend(np.ones((2, 4)))
    with pytest.raises(
        nnx_nn.LayerInputError,
        match=r"deterministic is None .* Fix: call "
        r"model\.train\(\) or model\.eval\(\)",
    ):
        nnx_nn.Dropout(0.5, deterministic=None)(X)
    with pytest.raises(
        nnx_nn.LayerInputError,
        match=r"`deterministic` is False, but no `rngs` argument was provided to Dropout",
    ):
        nnx_nn.Dropout(0.5)(X)
    mha = nnx_nn.MultiHeadAttention(2, 8, kernel_init=NP, rngs=RNGS)
    with pytest.raises(
        nnx_nn.LayerInputError,
        match=r"cache is not initialised\. Fix: call "
        r"mha\.init_cache",
    ):
        mha(np.ones((1, 1, 8)), decode=True)
    mha.init_cache((1, 4, 8))
    with pytest.raises(
        nnx_nn.InputShapeError,
        match=r"in decode mode the inputs must be one "
        r"step",
    ):
        mha(np.ones((1, 2, 8)), decode=True)
    with pytest.raises(
        nnx_nn.InputShapeError,
        match=r"dot_product_attention: q, k depths must match: expected query "
        r"and key of the same depth",
    ):
        nnx_nn.dot_product_attention(
            np.ones((1, 2, 2, 4)), np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3))
        )
    with pytest.raises(nnx_nn.LayerInputError, match=r"needs rngs for a random carry_init"):
        nnx_nn.GRUCell(3, 4, kernel_init=NP, recurrent_kernel_init=NP, rngs=RNGS).initialize_carry(
            (2, 3), carry_init=nnx_nn.initializers.normal()
        )


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "v_shape", "phrase"),
    [
        ((2, 4, 2, 8), (3, 4, 2, 8), (3, 4, 2, 8), "batch dims must match"),
        ((2, 4, 2, 8), (2, 4, 2, 8), (2, 5, 2, 8), "lengths must match"),
        ((2, 4, 2, 8), (2, 4, 2, 6), (2, 4, 2, 8), "depths must match"),
        ((2, 4, 5, 8), (2, 4, 2, 8), (2, 4, 2, 8), "must be a multiple"),
    ],
)
def test_attention_shape_errors_are_value_errors_with_the_reason(
    q_shape: tuple[int, ...], k_shape: tuple[int, ...], v_shape: tuple[int, ...], phrase: str
) -> None:
    with pytest.raises(ValueError, match=phrase) as excinfo:
        nnx_nn.dot_product_attention(np.ones(q_shape), np.ones(k_shape), np.ones(v_shape))
    # the message also shows every shape it compared
    assert str(q_shape) in message(excinfo) and str(v_shape) in message(excinfo)
