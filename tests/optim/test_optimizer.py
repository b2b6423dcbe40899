"""Optimizer semantics: update(grads) / update(model, grads), step counting, optax
state as Variables, wrt filters, extra arguments, sharing across split/merge/jit."""

from __future__ import annotations

import dataclasses
import inspect
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optim_models import Linear, LoraLinear, LoraParam, batch, lora_mlp, mse

import nnx_graph as nnx
import nnx_optim
from nnx_optim import ModelAndOptimizer, OptArray, Optimizer, OptState, OptVariable


def adam(learning_rate: float = 1e-2) -> optax.GradientTransformation:
    # A large eps: the LoRA MLP's first bias has a ~0 gradient (BatchNorm follows it),
    # where Adam would amplify float rounding differences into visible ones.
    return optax.adam(learning_rate, eps=1e-3)


def loss_grads(model: tp.Any, step: int = 0, wrt: tp.Any = nnx.Param) -> tp.Any:
    x, y = batch(step)
    return nnx.grad(lambda m: mse(m, x, y), argnums=nnx.DiffState(0, wrt))(model)


def params_of(model: tp.Any, wrt: tp.Any = nnx.Param) -> dict[tp.Any, np.ndarray]:
    return {p: np.asarray(v.value) for p, v in nnx.state(model, wrt).flat_state()}


def reference_step(
    model: tp.Any, tx: optax.GradientTransformation, steps: int, wrt: tp.Any = nnx.Param
) -> dict[tp.Any, np.ndarray]:
    """The same training with plain optax on pure arrays (jax.jit over split/merge)."""
    graphdef, params, rest = nnx.split(nnx.clone(model), wrt, ...)
    params, rest = nnx.pure(params), nnx.pure(rest)

    @jax.jit
    def step(
        params: tp.Any, opt_state: tp.Any, rest: tp.Any, x: jax.Array, y: jax.Array
    ) -> tuple[tp.Any, tp.Any, tp.Any]:
        def loss(params: tp.Any) -> tuple[jax.Array, tp.Any]:
            module = nnx.merge(graphdef, params, rest, copy=True)
            return mse(module, x, y), nnx.pure(nnx.state(module, nnx.Not(wrt)))

        grads, rest = jax.grad(loss, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, rest

    opt_state = tx.init(params)
    for i in range(steps):
        params, opt_state, rest = step(params, opt_state, rest, *batch(i))
    return {p: np.asarray(v) for p, v in nnx.to_flat_state(params)}


def train(model: tp.Any, optimizer: Optimizer[tp.Any], steps: int, wrt: tp.Any = nnx.Param) -> None:
    """``steps`` steps of the Optimizer under nnx.jit, same data as reference_step."""

    @nnx.jit
    def step(model: tp.Any, optimizer: Optimizer[tp.Any], x: jax.Array, y: jax.Array) -> None:
        grads = nnx.grad(lambda m: mse(m, x, y), argnums=nnx.DiffState(0, wrt))(model)
        optimizer.update(model, grads)

    for i in range(steps):
        step(model, optimizer, *batch(i))


# ----------------------------------------------------------------------------- basics
def test_construction_state_is_variables() -> None:
    model = lora_mlp()
    optimizer = Optimizer(model, optax.adam(1e-3))
    assert optimizer.model is model
    assert isinstance(optimizer.step, OptState)
    assert optimizer.step.value.dtype == jnp.uint32 and int(optimizer.step.value) == 0
    adam_state = optimizer.opt_state[0]
    assert isinstance(adam_state.count, OptArray)
    assert isinstance(adam_state.mu["linear1"]["A"], OptVariable)
    assert adam_state.mu["linear1"]["A"].shape == model.linear1.A.shape
    # every array of the optax state is an OptState Variable
    leaves = jax.tree.leaves(optimizer.opt_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    assert leaves and all(isinstance(v, OptState) for v in leaves)
    # the optimizer's own state: step + opt_state; the model is under `model`
    state = nnx.state(optimizer)
    assert set(state) == {"model", "opt_state", "step"}
    assert nnx.state(optimizer, OptState).flat_state().paths[-1] == ("step",)


def test_opt_variable_keeps_metadata() -> None:
    class Model(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.ones((2, 2)), sharding_names=("a", "b"))

    optimizer = Optimizer(Model(), optax.adam(1e-3))
    mu = optimizer.opt_state[0].mu["w"]
    assert isinstance(mu, OptVariable) and mu.sharding_names == ("a", "b")


@pytest.mark.parametrize("own", ["out_sharding", "sharding_names"])
def test_optimizer_sharding_becomes_out_sharding(own: str) -> None:
    class Model(nnx.Module):
        def __init__(self) -> None:
            annotation = {own: ("rows", None)}
            self.w = nnx.Param(jnp.ones((2, 4)), optimizer_sharding=(None, "rows"), **annotation)
            self.b = nnx.Param(jnp.ones(4), out_sharding=("rows",))

    model = Model()
    optimizer = Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    mu_w = optimizer.opt_state[0].mu["w"]
    meta = mu_w.get_metadata()
    assert meta["out_sharding"] == (None, "rows")
    assert "optimizer_sharding" not in meta and "sharding_names" not in meta
    # a parameter without optimizer_sharding passes its own annotation through
    assert optimizer.opt_state[0].mu["b"].get_metadata()["out_sharding"] == ("rows",)
    specs = nnx.get_partition_spec(nnx.state(optimizer)).flat_state()
    by_path = {path: v.value for path, v in specs}
    assert by_path[("opt_state", 0, "mu", "w")] == jax.sharding.PartitionSpec(None, "rows")
    assert by_path[("opt_state", 0, "nu", "b")] == jax.sharding.PartitionSpec("rows")
    assert model.w.get_metadata()["optimizer_sharding"] == (None, "rows")  # model untouched


@pytest.mark.parametrize("call", ["grads", "model_grads", "keywords"])
def test_update_forms_match_plain_optax(call: str) -> None:
    model = lora_mlp(dropout=0.0)
    tx = adam()
    expected = reference_step(model, tx, 2)
    optimizer = Optimizer(model, tx)
    for step in range(2):
        grads = loss_grads(model, step)  # eager: the forward pass updates BatchNorm stats
        if call == "grads":
            optimizer.update(grads)
        elif call == "model_grads":
            optimizer.update(model, grads)
        else:
            optimizer.update(model=model, grads=grads)
    assert int(optimizer.step.value) == 2
    got = params_of(model)
    assert got.keys() == expected.keys()
    # Eager vs jitted reference: float rounding differs slightly, and Adam divides by
    # sqrt(nu), which magnifies the rounding of near-zero gradients (LoRA weights of
    # ~1e-6 differ by a few 1e-6 across JAX versions), hence the absolute tolerance.
    for path in got:
        np.testing.assert_allclose(got[path], expected[path], rtol=1e-5, atol=1e-5)


def test_update_returns_updates_and_counts_steps() -> None:
    model = Linear(2, 3, rngs=nnx.Rngs(0))
    before = model.w.value
    optimizer = Optimizer(model, optax.sgd(0.5))
    grads = nnx.State({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    updates = optimizer.update(grads)
    np.testing.assert_array_equal(updates["w"], -0.5 * np.ones((2, 3)))
    np.testing.assert_array_equal(model.w.value, before - 0.5)
    for _ in range(4):
        optimizer.update(grads)
    assert int(optimizer.step.value) == 5


def test_grads_as_variables_or_arrays_or_pure_dict() -> None:
    results = []
    for kind in ("variables", "arrays", "pure_dict", "string_keys"):
        model = lora_mlp(dropout=0.0)
        optimizer = Optimizer(model, optax.sgd(0.1))
        grads = loss_grads(model)
        if kind == "arrays":
            grads = nnx.pure(grads)
        elif kind == "pure_dict":
            grads = nnx.to_pure_dict(grads)
        elif kind == "string_keys":
            grads = jax.tree.map(np.asarray, nnx.to_pure_dict(grads))
            grads = _stringify(grads)
        else:
            assert isinstance(nnx.to_flat_state(grads).leaves[0], nnx.Variable)
        optimizer.update(grads)
        results.append(params_of(model))
    for other in results[1:]:
        for path, value in results[0].items():
            np.testing.assert_array_equal(value, other[path])


def _stringify(tree: tp.Any) -> tp.Any:
    if isinstance(tree, dict):
        return {str(k): _stringify(v) for k, v in tree.items()}
    return tree


def test_model_and_optimizer() -> None:
    model = lora_mlp(dropout=0.0)
    reference = nnx.clone(model)
    state = ModelAndOptimizer(model, adam())
    plain = Optimizer(reference, adam())
    assert isinstance(state, Optimizer)
    state.update(loss_grads(model))
    plain.update(reference, loss_grads(reference))
    for path, value in params_of(model).items():
        np.testing.assert_array_equal(value, params_of(reference)[path])
    assert int(state.step.value) == 1


# ----------------------------------------------------------------------------- wrt
def test_wrt_lora_only_after_surgery() -> None:
    model = lora_mlp(dropout=0.0)
    frozen = params_of(model, nnx.All(nnx.Param, nnx.Not(LoraParam)))
    lora_before = params_of(model, LoraParam)
    optimizer = Optimizer(model, adam(), wrt=LoraParam)
    # the optax state only covers the LoRA parameters
    assert set(nnx.to_flat_state(optimizer.opt_state[0].mu).paths) == set(lora_before)
    for step in range(3):
        # gradients w.r.t. every Param: the extra (frozen) entries are ignored
        optimizer.update(model, loss_grads(model, step))
    for path, value in params_of(model, nnx.All(nnx.Param, nnx.Not(LoraParam))).items():
        np.testing.assert_array_equal(value, frozen[path])
    changed = params_of(model, LoraParam)
    assert all(not np.array_equal(changed[p], lora_before[p]) for p in changed)


def test_wrt_lora_matches_plain_optax_on_lora_only() -> None:
    model = lora_mlp(dropout=0.0)
    tx = adam()
    expected = reference_step(model, tx, 2, wrt=LoraParam)
    optimizer = Optimizer(model, tx, wrt=LoraParam)
    train(model, optimizer, 2, wrt=LoraParam)
    for path, value in params_of(model, LoraParam).items():
        np.testing.assert_allclose(value, expected[path], rtol=1e-6, atol=1e-7)


def test_wrt_callable_and_path_filters() -> None:
    model = lora_mlp(dropout=0.0)
    before = params_of(model)
    optimizer = Optimizer(
        model, optax.sgd(0.1), wrt=nnx.All(nnx.Param, nnx.PathContains("linear2"))
    )
    optimizer.update(model, loss_grads(model))
    after = params_of(model)
    for path in before:
        assert np.array_equal(before[path], after[path]) != ("linear2" in path)


# ----------------------------------------------------------------------------- optax variety
@pytest.mark.parametrize(
    "make_tx",
    [
        lambda: optax.sgd(0.1, momentum=0.9),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, eps=1e-3)),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-2, eps=1e-3),
        lambda: optax.masked(adam(), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
        lambda: optax.MultiSteps(adam(), every_k_schedule=2),
        lambda: optax.contrib.schedule_free_adamw(1e-2, eps=1e-3),
    ],
    ids=["momentum", "chain", "inject_hyperparams", "masked", "multisteps", "schedule_free"],
)
def test_optax_transformations_match_plain_optax(make_tx: tp.Callable[[], tp.Any]) -> None:
    model = lora_mlp(dropout=0.0)
    tx = make_tx()
    expected = reference_step(model, tx, 3)
    optimizer = Optimizer(model, tx)
    train(model, optimizer, 3)
    for path, value in params_of(model).items():
        np.testing.assert_allclose(value, expected[path], rtol=1e-5, atol=1e-6)
    # the state survives a split/merge round trip with its structure
    graphdef, state = nnx.split(optimizer)
    clone = nnx.merge(graphdef, state, copy=True)
    assert jax.tree.structure(
        clone.opt_state, is_leaf=lambda x: isinstance(x, nnx.Variable)
    ) == jax.tree.structure(optimizer.opt_state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def test_inject_hyperparams_learning_rate_is_a_variable() -> None:
    model = Linear(2, 2, rngs=nnx.Rngs(0))
    optimizer = Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=0.1))
    learning_rate = optimizer.opt_state.hyperparams["learning_rate"]
    assert isinstance(learning_rate, OptArray)
    learning_rate.value = jnp.asarray(0.0)
    before = np.asarray(model.w.value)
    optimizer.update(nnx.State({"w": jnp.ones((2, 2)), "b": jnp.ones(2)}))
    np.testing.assert_array_equal(model.w.value, before)


# ----------------------------------------------------------------------------- extra args
def _quadratic_model() -> tp.Any:
    class Quadratic(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.array([1.0, -2.0, 3.0]))
            self.b = nnx.Param(jnp.array(0.5))

    return Quadratic()


def _quadratic_loss(model: tp.Any) -> jax.Array:
    scale = jnp.array([1.0, 10.0, 100.0])
    return jnp.sum(scale * (model.w.value - 1.0) ** 2) + (model.b.value + 1.0) ** 2


@pytest.mark.parametrize(
    "make_tx",
    [
        optax.lbfgs,
        lambda: optax.chain(
            optax.sgd(0.01), optax.scale_by_zoom_linesearch(max_linesearch_steps=15)
        ),
    ],
    ids=["lbfgs", "zoom_linesearch"],
)
def test_extra_args_reach_tx_update(make_tx: tp.Callable[[], tp.Any]) -> None:
    model = _quadratic_model()
    graphdef = nnx.graphdef(model)
    tx = make_tx()

    def value_fn(params: tp.Any) -> jax.Array:
        return _quadratic_loss(nnx.merge(graphdef, params, copy=True))

    # hand-written optax on pure arrays
    @jax.jit
    def reference(params: tp.Any, opt_state: tp.Any) -> tuple[tp.Any, tp.Any]:
        value, grad = jax.value_and_grad(value_fn)(params)
        updates, opt_state = tx.update(
            grad, opt_state, params, value=value, grad=grad, value_fn=value_fn
        )
        return optax.apply_updates(params, updates), opt_state

    params = nnx.pure(nnx.state(model))
    opt_state = tx.init(params)
    for _ in range(4):
        params, opt_state = reference(params, opt_state)

    @nnx.jit
    def step(model: tp.Any, optimizer: Optimizer[tp.Any]) -> None:
        value, grads = nnx.value_and_grad(_quadratic_loss)(model)
        optimizer.update(model, grads, value=value, grad=grads, value_fn=value_fn)

    optimizer = Optimizer(model, tx, wrt=nnx.Param)  # Flax 0.12's form
    initial = float(_quadratic_loss(model))
    for _ in range(4):
        step(model, optimizer)
    for path, leaf in nnx.to_flat_state(params):
        np.testing.assert_allclose(nnx.state(model)[path[0]].value, leaf, rtol=1e-6)
    assert float(_quadratic_loss(model)) < initial / 10


def test_extra_args_inside_jit() -> None:
    model = _quadratic_model()
    graphdef = nnx.graphdef(model)
    optimizer = Optimizer(model, optax.lbfgs())

    def value_fn(params: tp.Any) -> jax.Array:
        return _quadratic_loss(nnx.merge(graphdef, params, copy=True))

    @nnx.jit
    def step(optimizer: Optimizer[tp.Any]) -> jax.Array:
        value, grads = nnx.value_and_grad(_quadratic_loss)(optimizer.model)
        optimizer.update(grads, value=value, grad=grads, value_fn=value_fn)
        return value

    losses = [float(step(optimizer)) for _ in range(6)]
    assert losses[-1] < losses[0] / 100
    assert int(optimizer.step.value) == 6


# ----------------------------------------------------------------------------- sharing
def test_sharing_survives_split_merge() -> None:
    model = lora_mlp()
    optimizer = Optimizer(model, optax.adam(1e-3))
    graphdef, state = nnx.split((model, optimizer))
    # the model's Variables appear once, under the model
    assert all(
        path[0] == 0 for path in nnx.state(model).flat_state().paths for path in [(0, *path)]
    )
    assert not any(p[:2] == (1, "model") for p in state.flat_state().paths)
    new_model, new_optimizer = nnx.merge(graphdef, state, copy=True)
    assert new_optimizer.model is new_model and new_model is not model
    # merging the optimizer alone brings its model along
    graphdef, state = nnx.split(optimizer)
    alone = nnx.merge(graphdef, state, copy=True)
    assert isinstance(alone.model, type(model))
    alone.update(loss_grads(alone.model))
    assert int(alone.step.value) == 1 and int(optimizer.step.value) == 0
    # clone keeps the sharing inside the copy
    copied_model, copied_optimizer = nnx.clone((model, optimizer))
    assert copied_optimizer.model is copied_model


def test_update_grads_inside_nnx_jit_updates_callers_model() -> None:
    model = lora_mlp()
    optimizer = Optimizer(model, adam())

    @nnx.jit
    def train_step(
        model: tp.Any, optimizer: Optimizer[tp.Any], x: jax.Array, y: jax.Array
    ) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: mse(m, x, y))(model)
        optimizer.update(grads)  # the seed's spelling: the optimizer's own model
        return loss

    losses = []
    for step in range(30):
        losses.append(float(train_step(model, optimizer, *batch(step % 2))))
    assert losses[-1] < losses[0]
    assert int(optimizer.step.value) == 30
    assert optimizer.model is model
    assert isinstance(model.linear1, LoraLinear)


def test_jit_with_only_the_optimizer() -> None:
    model = lora_mlp(dropout=0.0)
    reference = nnx.clone(model)
    optimizer = Optimizer(model, adam())
    reference_optimizer = Optimizer(reference, adam())

    @nnx.jit
    def train_step(optimizer: Optimizer[tp.Any], x: jax.Array, y: jax.Array) -> None:
        grads = nnx.grad(lambda m: mse(m, x, y))(optimizer.model)
        optimizer.update(optimizer.model, grads)

    for step in range(3):
        train_step(optimizer, *batch(step))
        reference_optimizer.update(loss_grads(reference, step))
    for path, value in params_of(model).items():
        # atol: see test_update_forms_match_plain_optax (Adam magnifies rounding).
        np.testing.assert_allclose(value, params_of(reference)[path], rtol=1e-5, atol=1e-5)


def test_surgery_between_jitted_steps_requires_new_optimizer() -> None:
    model = lora_mlp(dropout=0.0)
    optimizer = Optimizer(model, adam())

    @nnx.jit
    def train_step(model: tp.Any, optimizer: Optimizer[tp.Any]) -> None:
        optimizer.update(model, nnx.grad(lambda m: mse(m, *batch(0)))(model))

    train_step(model, optimizer)
    model.head = Linear(3, 3, rngs=nnx.Rngs(1))  # new trainable Variables
    with pytest.raises(nnx.GraphStructureError) as info:
        train_step(model, optimizer)
    message = str(info.value)
    assert "model.head.w" in message and "model.head.b" in message
    assert "no optimizer state" in message and "Fix: create the Optimizer after" in message
    # the failed call left everything as it was
    assert int(optimizer.step.value) == 1


# ----------------------------------------------------------------------------- errors
def test_missing_gradient_names_each_path() -> None:
    model = lora_mlp()
    optimizer = Optimizer(model, optax.sgd(0.1))
    grads = loss_grads(model, wrt=LoraParam)  # only LoRA grads for a Param optimizer
    with pytest.raises(nnx.GraphStructureError) as info:
        optimizer.update(grads)
    message = str(info.value)
    for path in (
        "model.linear1.linear.w",
        "model.linear1.linear.b",
        "model.bn.scale",
        "model.linear2.linear.w",
    ):
        assert path in message
    assert "wrt=Param" in message and "Fix:" in message
    assert int(optimizer.step.value) == 0


def test_argument_errors() -> None:
    model = Linear(2, 2, rngs=nnx.Rngs(0))
    optimizer = Optimizer(model, optax.sgd(0.1))
    with pytest.raises(TypeError, match=r"optimizer.update\(model, grads\)"):
        optimizer.update(model)
    with pytest.raises(TypeError, match="takes \\(model, grads\\)"):
        optimizer.update()
    with pytest.raises(TypeError, match="expected gradients as a State"):
        optimizer.update(jnp.ones(3))
    with pytest.raises(TypeError, match=r"optax\.Adam does not exist"):
        Optimizer(model, "adam")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a Module"):
        Optimizer(jnp.ones(3), optax.sgd(0.1))


def test_unsupported_optax_state_container() -> None:
    class Box:
        def __init__(self, value: tp.Any) -> None:
            self.value = value

    jax.tree_util.register_pytree_node(Box, lambda b: ((b.value,), None), lambda _, c: Box(c[0]))
    tx = optax.GradientTransformation(lambda p: Box(jnp.zeros(())), lambda u, s, p=None: (u, s))
    with pytest.raises(TypeError, match="holds a Box at opt_state") as info:
        Optimizer(Linear(2, 2, rngs=nnx.Rngs(0)), tx)
    assert "NamedTuple" in str(info.value)


def test_repr_mentions_parts() -> None:
    optimizer = Optimizer(Linear(2, 2, rngs=nnx.Rngs(0)), optax.adam(1e-3))
    text = repr(optimizer)
    assert text.startswith("Optimizer(") and "step" in text and "wrt" in text


# ----------------------------------------------------------------------------- TrainState
def test_train_state_compat() -> None:
    model = Linear(2, 3, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    params = nnx.pure(params)
    state = nnx_optim.TrainState.create(graphdef, params=params, tx=optax.sgd(0.1))

    @jax.jit
    def train_step(state: nnx_optim.TrainState, x: jax.Array, y: jax.Array) -> nnx_optim.TrainState:
        def loss(params: tp.Any) -> jax.Array:
            out, _ = state.apply(params)(x)
            return jnp.mean((out - y) ** 2)

        return state.apply_gradients(grads=jax.grad(loss)(state.params))

    x, y = jnp.ones((4, 2)), jnp.zeros((4, 3))
    state = train_step(state, x, y)
    state = train_step(state, x, y)
    assert int(state.step) == 2

    class WithStats(nnx_optim.TrainState):
        batch_stats: tp.Any

    linen_style = WithStats.create(
        apply_fn=lambda p, x: x @ p["w"],
        params={"w": jnp.ones(2)},
        tx=optax.sgd(1.0),
        batch_stats={"mean": jnp.zeros(2)},
    )
    linen_style = linen_style.apply_gradients({"w": jnp.ones(2)}, batch_stats={"mean": jnp.ones(2)})
    assert linen_style.params["w"].tolist() == [0.0, 0.0]
    assert linen_style.batch_stats["mean"].tolist() == [1.0, 1.0]
    assert len(jax.tree.leaves(linen_style)) == 3  # step, params, batch_stats (sgd: no state)


def test_train_state_fields_follow_flax_order() -> None:
    model = Linear(2, 3, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    tx = optax.adam(1e-2)
    # positional, in the order graphdef, params, opt_state, step, tx
    state = nnx_optim.TrainState(graphdef, params, tx.init(params), jnp.asarray(5), tx)
    assert state.graphdef is graphdef and state.tx is tx and state.apply_fn is None
    assert int(state.step) == 5
    names = [f.name for f in dataclasses.fields(nnx_optim.TrainState)]
    assert names == ["graphdef", "params", "opt_state", "step", "tx", "apply_fn"]
    with pytest.raises(TypeError):  # apply_fn is keyword-only
        nnx_optim.TrainState(graphdef, params, tx.init(params), 0, tx, None)  # type: ignore[misc]
    # graphdef and tx are static: the leaves are params, Adam's state and the step
    n_params = len(jax.tree.leaves(params))
    assert len(jax.tree.leaves(state)) == n_params + len(jax.tree.leaves(tx.init(params))) + 1
    stepped = state.apply_gradients(jax.tree.map(jnp.ones_like, params))
    assert int(stepped.step) == 6 and stepped.graphdef is graphdef

    class WithStats(nnx_optim.TrainState):
        stats: tp.Any

    extended = WithStats(graphdef, params, tx.init(params), jnp.asarray(0), tx, {"m": jnp.ones(1)})
    assert extended.stats["m"].tolist() == [1.0]
    params_of = inspect.signature(WithStats).parameters
    assert list(params_of)[4:6] == ["tx", "stats"]
    assert params_of["apply_fn"].kind is inspect.Parameter.KEYWORD_ONLY


def test_missing_is_exported_on_the_flax_paths() -> None:
    from nnx_optim import optimizer as optimizer_module

    assert "MISSING" in optimizer_module.__all__
    sentinel = optimizer_module.MISSING
    assert repr(sentinel) == "MISSING"
    # passing the sentinel explicitly is the same as leaving wrt out
    explicit = Optimizer(Linear(2, 2, rngs=nnx.Rngs(0)), optax.adam(0.1), wrt=sentinel)
    implicit = Optimizer(Linear(2, 2, rngs=nnx.Rngs(0)), optax.adam(0.1))
    assert set(nnx.state(explicit)) == set(nnx.state(implicit)) == {"model", "opt_state", "step"}
    nnx_meta = pytest.importorskip("nnx")
    assert nnx_meta.optimizer.MISSING is sentinel
    assert nnx_meta.training.optimizer.MISSING is sentinel


def test_update_with_grads_of_a_split_state() -> None:
    """Functional style: differentiate w.r.t. the Param State from nnx.split and hand
    those gradients to the optimizer of the Module the State came from."""
    x, y = batch(0)
    model = Linear(x.shape[-1], y.shape[-1], rngs=nnx.Rngs(0))
    opt = Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    before = nnx.clone(params)

    def loss(p: nnx.State, r: nnx.State) -> jax.Array:
        return mse(nnx.merge(graphdef, p, r), x, y)

    grads = nnx.grad(loss)(params, rest)
    opt.update(model, grads)
    new = dict(nnx.state(model, nnx.Param).flat_state())
    old = dict(before.flat_state())
    for path, g in grads.flat_state():
        np.testing.assert_allclose(new[path].value, old[path].value - 0.1 * g.value, rtol=1e-6)
    assert float(loss(params, rest)) < float(loss(before, rest))
