"""The Optimizer's state layout (Flax NNX 0.12's: ``step`` + ``opt_state`` with
optax's field names, no model), the two construction forms, plain ``jax.jit``,
``wrt`` filtering of larger gradients and the gradient-shape check."""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optim_models import Linear, LoraParam, batch, lora_mlp, mse

import nnx_graph as nnx
from nnx_optim import (
    GradientShapeError,
    ModelAndOptimizer,
    OptArray,
    Optimizer,
    OptNamedTuple,
    OptState,
    OptVariable,
)


def _grads(model: tp.Any, step: int = 0, wrt: tp.Any = nnx.Param) -> tp.Any:
    x, y = batch(step)
    return nnx.grad(lambda m: mse(m, x, y), argnums=nnx.DiffState(0, wrt))(model)


def _param_paths(model: tp.Any, wrt: tp.Any = nnx.Param) -> set[tuple[tp.Any, ...]]:
    return set(nnx.state(model, wrt).flat_state().paths)


def _paths_below(state: nnx.State, prefix: tuple[tp.Any, ...]) -> set[tuple[tp.Any, ...]]:
    n = len(prefix)
    return {p[n:] for p in state.flat_state().paths if p[:n] == prefix}


# ----------------------------------------------------------------------------- layout
def test_adam_state_uses_optax_field_names_and_no_model() -> None:
    model = lora_mlp()
    optimizer = Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    state = nnx.state(optimizer)
    assert set(state) == {"opt_state", "step"}  # the model is not part of it
    params = _param_paths(model)
    assert _paths_below(state, ("opt_state", 0, "mu")) == params
    assert _paths_below(state, ("opt_state", 0, "nu")) == params
    assert _paths_below(state, ("opt_state", 0, "count")) == {()}
    flat = dict(state.flat_state())
    assert isinstance(flat[("step",)], OptState) and type(flat[("step",)]) is OptState
    assert type(flat[("opt_state", 0, "count")]) is OptArray
    assert all(type(flat[("opt_state", 0, "mu", *p)]) is OptVariable for p in params)
    # path filters find the moments
    mu = nnx.state(optimizer, nnx.PathContains("mu"))
    assert len(mu.flat_state()) == len(params)
    # attribute access reads like optax's NamedTuple
    adam_state = optimizer.opt_state[0]
    assert isinstance(adam_state, OptNamedTuple)
    assert adam_state.mu is adam_state[1] is adam_state["mu"]
    assert list(adam_state._asdict()) == ["count", "mu", "nu"] == list(adam_state._fields)
    assert type(adam_state.to_namedtuple()).__name__ == "ScaleByAdamState"


@pytest.mark.parametrize(
    ("make_tx", "moment_prefixes"),
    [
        (lambda: optax.sgd(0.1, momentum=0.9), [("opt_state", 0, "trace")]),
        (
            lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3)),
            [("opt_state", 1, 0, "mu"), ("opt_state", 1, 0, "nu")],
        ),
        (
            lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
            [("opt_state", "inner_state", 0, "mu"), ("opt_state", "inner_state", 0, "nu")],
        ),
        (
            lambda: optax.multi_transform(
                {"a": optax.adam(1e-3), "b": optax.sgd(0.1)},
                lambda p: jax.tree.map(lambda _: "a", p),
            ),
            [("opt_state", "inner_states", "a", "inner_state", 0, "mu")],
        ),
    ],
    ids=["momentum", "chain", "inject_hyperparams", "multi_transform"],
)
def test_parameter_shaped_state_sits_under_optax_names(
    make_tx: tp.Callable[[], tp.Any], moment_prefixes: list[tuple[tp.Any, ...]]
) -> None:
    model = lora_mlp()
    optimizer = Optimizer(model, make_tx(), wrt=nnx.Param)
    state = nnx.state(optimizer)
    for prefix in moment_prefixes:
        assert _paths_below(state, prefix) == _param_paths(model), prefix
    # every leaf is an OptState Variable; the model's own Variables are absent
    leaves = state.flat_state().leaves
    assert leaves and all(isinstance(v, OptState) for v in leaves)


def test_inject_hyperparams_paths_use_hyperparameter_names() -> None:
    optimizer = Optimizer(
        Linear(2, 2, rngs=nnx.Rngs(0)),
        optax.inject_hyperparams(optax.adam)(learning_rate=1e-3),
        wrt=nnx.Param,
    )
    paths = set(nnx.state(optimizer).flat_state().paths)
    assert ("opt_state", "hyperparams", "learning_rate") in paths
    assert ("opt_state", "count") in paths
    assert isinstance(optimizer.opt_state.hyperparams["learning_rate"], OptArray)


def test_layout_survives_split_merge_and_training() -> None:
    model = lora_mlp(dropout=0.0)
    optimizer = Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    before = set(nnx.state(optimizer).flat_state().paths)

    @nnx.jit
    def step(model: tp.Any, optimizer: Optimizer[tp.Any], x: jax.Array, y: jax.Array) -> None:
        optimizer.update(model, nnx.grad(lambda m: mse(m, x, y))(model))

    step(model, optimizer, *batch(0))
    assert set(nnx.state(optimizer).flat_state().paths) == before
    graphdef, state = nnx.split(optimizer)
    clone = nnx.merge(graphdef, state, copy=True)
    assert set(nnx.state(clone).flat_state().paths) == before
    np.testing.assert_array_equal(
        clone.opt_state[0].mu["linear2"]["linear"]["w"].value,
        optimizer.opt_state[0].mu["linear2"]["linear"]["w"].value,
    )
    assert int(clone.step.value) == 1


# ----------------------------------------------------------------------------- two forms
def test_seed_form_holds_the_model_and_accepts_update_grads() -> None:
    model = lora_mlp(dropout=0.0)
    reference = nnx.clone(model)
    seed = Optimizer(model, optax.adam(1e-2))  # no wrt: the seed-era form
    flax_form = Optimizer(reference, optax.adam(1e-2), wrt=nnx.Param)
    assert seed.model is model and "model" not in vars(flax_form)
    assert set(nnx.state(seed)) == {"model", "opt_state", "step"}
    # the optimizer state itself is laid out identically in both forms
    assert set(nnx.state(seed, OptState).flat_state().paths) == set(
        nnx.state(flax_form).flat_state().paths
    )
    for step in range(2):
        seed.update(_grads(model, step))
        flax_form.update(reference, _grads(reference, step))
    expected = dict(nnx.state(reference, nnx.Param).flat_state())
    for path, value in nnx.state(model, nnx.Param).flat_state():
        np.testing.assert_array_equal(value.value, expected[path].value)


def test_update_without_model_on_flax_form_raises_flax_type_and_phrase() -> None:
    model = Linear(2, 2, rngs=nnx.Rngs(0))
    optimizer = Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    grads = nnx.State({"w": jnp.ones((2, 2)), "b": jnp.ones(2)})
    with pytest.raises(TypeError) as info:
        optimizer.update(grads)
    message = str(info.value)
    assert "Missing required argument `grads`" in message
    assert "optimizer.update(model, grads)" in message and "ModelAndOptimizer" in message
    assert int(optimizer.step.value) == 0


def test_model_and_optimizer_with_wrt_holds_model() -> None:
    model = lora_mlp(dropout=0.0)
    lora_before = {p: np.asarray(v.value) for p, v in nnx.state(model, LoraParam).flat_state()}
    optimizer = ModelAndOptimizer(model, optax.adam(0.1), wrt=LoraParam)
    assert set(nnx.state(optimizer)) == {"model", "opt_state", "step"}
    optimizer.update(_grads(model, wrt=LoraParam))
    changed = {p: np.asarray(v.value) for p, v in nnx.state(model, LoraParam).flat_state()}
    assert any(not np.array_equal(changed[p], lora_before[p]) for p in changed)


# ----------------------------------------------------------------------------- jax.jit
def test_optimizer_is_a_pytree_under_plain_jax_jit() -> None:
    model = lora_mlp(dropout=0.0)
    reference = nnx.clone(model)
    # eps: the first bias has a ~0 gradient (BatchNorm follows it), where Adam
    # would amplify float rounding differences between jit and eager
    optimizer = Optimizer(model, optax.adam(1e-2, eps=1e-3), wrt=nnx.Param)
    reference_optimizer = Optimizer(reference, optax.adam(1e-2, eps=1e-3), wrt=nnx.Param)
    keys = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(optimizer)[0]]
    assert ".opt_state[0].count.value" in keys and ".step.value" in keys
    assert not any(k.startswith(".model") for k in keys)

    @jax.jit
    def step(
        model: tp.Any, optimizer: Optimizer[tp.Any], x: jax.Array, y: jax.Array
    ) -> tuple[tp.Any, Optimizer[tp.Any]]:
        optimizer.update(model, nnx.grad(lambda m: mse(m, x, y))(model))
        return model, optimizer

    for i in range(3):
        model, optimizer = step(model, optimizer, *batch(i))
        reference_optimizer.update(reference, _grads(reference, i))
    assert isinstance(optimizer, Optimizer) and int(optimizer.step.value) == 3
    expected = dict(nnx.state(reference, nnx.Param).flat_state())
    for path, value in nnx.state(model, nnx.Param).flat_state():
        # atol: Adam divides by sqrt(nu), magnifying rounding differences across JAX versions
        np.testing.assert_allclose(value.value, expected[path].value, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- wrt
def test_wider_grads_are_filtered_to_wrt_inside_nnx_jit() -> None:
    model = lora_mlp(dropout=0.0)
    frozen = nnx.All(nnx.Param, nnx.Not(LoraParam))
    frozen_before = {p: np.asarray(v.value) for p, v in nnx.state(model, frozen).flat_state()}
    optimizer = Optimizer(model, optax.adam(1e-2), wrt=LoraParam)

    @nnx.jit
    def step(model: tp.Any, optimizer: Optimizer[tp.Any], x: jax.Array, y: jax.Array) -> None:
        grads = nnx.grad(lambda m: mse(m, x, y))(model)  # every Param, LoRA included
        optimizer.update(model, grads)

    step(model, optimizer, *batch(0))
    for path, value in nnx.state(model, frozen).flat_state():
        np.testing.assert_array_equal(value.value, frozen_before[path])
    assert _paths_below(nnx.state(optimizer), ("opt_state", 0, "mu")) == _param_paths(
        model, LoraParam
    )
    assert int(optimizer.step.value) == 1


# ----------------------------------------------------------------------------- shapes
def test_grads_of_a_differently_shaped_model_name_paths_and_shapes() -> None:
    model = Linear(2, 3, rngs=nnx.Rngs(0))
    other = Linear(2, 5, rngs=nnx.Rngs(0))
    optimizer = Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    grads = nnx.grad(lambda m: jnp.sum(m(jnp.ones((1, 2)))))(other)
    before = np.asarray(model.w.value)
    with pytest.raises(GradientShapeError) as info:
        optimizer.update(model, grads)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "model.w: expected shape (2, 3), found (2, 5)" in message
    assert "model.b: expected shape (3,), found (5,)" in message
    assert "Fix:" in message
    # nothing reached optax: model and optimizer unchanged
    np.testing.assert_array_equal(model.w.value, before)
    assert int(optimizer.step.value) == 0
    assert not np.any(np.asarray(optimizer.opt_state[0].mu["w"].value))


def test_shape_check_also_runs_inside_nnx_jit() -> None:
    model = Linear(2, 3, rngs=nnx.Rngs(0))
    optimizer = Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(model: tp.Any, optimizer: Optimizer[tp.Any], grads: tp.Any) -> None:
        optimizer.update(model, grads)

    grads = {"w": jnp.ones((3, 2)), "b": jnp.ones(3)}
    with pytest.raises(GradientShapeError, match=r"model\.w: expected shape \(2, 3\), found"):
        step(model, optimizer, grads)
