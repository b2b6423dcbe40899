"""Oracle: ``nnx.Optimizer``'s state against flax.nnx 0.12's.

The same model is built in both libraries with identical parameters; both
optimizers take the same steps (real gradients of the same loss on the same data).
``nnx.state(optimizer)`` must then agree with Flax's: the same paths (optax's field
names, no model), the same Variable types and the same values. A Flax optimizer's
state can also be loaded into ours by path (and back), which is what checkpoints
rely on.
"""

from __future__ import annotations

import typing as tp

import numpy as np
import pytest

flax = pytest.importorskip("flax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

import nnx  # noqa: E402

pytestmark = pytest.mark.oracle

Path = tuple[tp.Any, ...]


def make_model(lib: tp.Any) -> tp.Any:
    """A two-layer MLP written once against either library's API."""

    class Block(lib.Module):  # type: ignore[misc, name-defined]
        def __init__(self, din: int, dout: int, rngs: tp.Any) -> None:
            self.linear = lib.Linear(din, dout, rngs=rngs)
            self.scale = lib.Param(jnp.ones((dout,)))

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear(x) * self.scale

    class MLP(lib.Module):  # type: ignore[misc, name-defined]
        def __init__(self, rngs: tp.Any) -> None:
            self.blocks = lib.List([Block(4, 8, rngs), Block(8, 2, rngs)])
            self.count = lib.BatchStat(jnp.array(0))  # not trained

        def __call__(self, x: jax.Array) -> jax.Array:
            self.count.value = self.count.value + 1
            return self.blocks[1](jax.nn.relu(self.blocks[0](x)))

    return MLP(lib.Rngs(0))


def copy_params(source: tp.Any, target: tp.Any) -> None:
    """Flax model -> our model, Variable by Variable (paths must agree)."""
    flat = {p: np.asarray(v.get_value()) for p, v in fnnx.to_flat_state(fnnx.state(source))}
    ours = dict(nnx.state(target).flat_state())
    assert set(flat) == set(ours)
    for path, variable in ours.items():
        variable.value = jnp.asarray(flat[path])


def data(step: int) -> tuple[jax.Array, jax.Array]:
    rng = np.random.default_rng(step)
    return (
        jnp.asarray(rng.normal(size=(16, 4)).astype(np.float32)),
        jnp.asarray(rng.normal(size=(16, 2)).astype(np.float32)),
    )


def loss_fn(model: tp.Any, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model(x) - y) ** 2)


def train_step(lib: tp.Any) -> tp.Callable[..., jax.Array]:
    @lib.jit  # type: ignore[misc]
    def step(model: tp.Any, optimizer: tp.Any, x: jax.Array, y: jax.Array) -> jax.Array:
        loss, grads = lib.value_and_grad(loss_fn)(model, x, y)
        optimizer.update(model, grads)
        return loss

    return step  # type: ignore[no-any-return]


def flat_optimizer_state(lib: tp.Any, optimizer: tp.Any) -> dict[Path, tuple[str, np.ndarray]]:
    return {
        path: (type(v).__name__, np.asarray(v.get_value()))
        for path, v in lib.to_flat_state(lib.state(optimizer))
    }


TRANSFORMS: dict[str, tp.Callable[[], optax.GradientTransformation]] = {
    "adam": lambda: optax.adam(1e-2),
    "sgd_momentum": lambda: optax.sgd(1e-2, momentum=0.9, nesterov=True),
    "chain_clip_adamw": lambda: optax.chain(
        optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=1e-2)
    ),
    "inject_hyperparams": lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
    "masked": lambda: optax.masked(
        optax.adam(1e-2), lambda p: jax.tree.map(lambda x: jnp.ndim(x) > 1, p)
    ),
    "multi_transform": lambda: optax.multi_transform(
        {"adam": optax.adam(1e-2), "sgd": optax.sgd(1e-2, momentum=0.5)},
        lambda p: jax.tree.map(lambda x: "adam" if jnp.ndim(x) > 1 else "sgd", p),
    ),
    "lion_schedule": lambda: optax.lion(optax.cosine_decay_schedule(1e-3, 10)),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_optimizer_state_equals_flax(name: str) -> None:
    flax_model = make_model(fnnx)
    our_model = make_model(nnx)
    copy_params(flax_model, our_model)
    flax_opt = fnnx.Optimizer(flax_model, TRANSFORMS[name](), wrt=fnnx.Param)
    our_opt = nnx.Optimizer(our_model, TRANSFORMS[name](), wrt=nnx.Param)

    initial_flax = flat_optimizer_state(fnnx, flax_opt)
    initial_ours = flat_optimizer_state(nnx, our_opt)
    assert sorted(initial_ours, key=repr) == sorted(initial_flax, key=repr)

    flax_step, our_step = train_step(fnnx), train_step(nnx)
    for step in range(3):
        flax_loss = flax_step(flax_model, flax_opt, *data(step))
        our_loss = our_step(our_model, our_opt, *data(step))
        np.testing.assert_allclose(our_loss, flax_loss, rtol=1e-5, atol=1e-7)

    expected = flat_optimizer_state(fnnx, flax_opt)
    got = flat_optimizer_state(nnx, our_opt)
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    for path, (type_name, value) in expected.items():
        assert got[path][0] == type_name, path
        assert got[path][1].dtype == value.dtype, path
        np.testing.assert_allclose(got[path][1], value, rtol=1e-5, atol=1e-6, err_msg=str(path))
    # the model's Params agree too
    flax_params = {
        p: np.asarray(v.get_value())
        for p, v in fnnx.to_flat_state(fnnx.state(flax_model, fnnx.Param))
    }
    for path, variable in nnx.state(our_model, nnx.Param).flat_state():
        np.testing.assert_allclose(variable.value, flax_params[path], rtol=1e-5, atol=1e-6)


def test_path_filters_find_the_moments_like_flax() -> None:
    flax_opt = fnnx.Optimizer(make_model(fnnx), optax.adam(1e-3), wrt=fnnx.Param)
    our_opt = nnx.Optimizer(make_model(nnx), optax.adam(1e-3), wrt=nnx.Param)
    for key in ("mu", "nu", "count", "step"):
        flax_paths = set(fnnx.to_flat_state(fnnx.state(flax_opt, fnnx.PathContains(key))).paths)
        our_paths = set(nnx.state(our_opt, nnx.PathContains(key)).flat_state().paths)
        assert our_paths == flax_paths and our_paths, key
    flax_types = {
        p: type(v).__name__ for p, v in fnnx.to_flat_state(fnnx.state(flax_opt, fnnx.OptState))
    }
    our_types = {p: type(v).__name__ for p, v in nnx.state(our_opt, nnx.OptState).flat_state()}
    assert our_types == flax_types


def test_plain_jax_jit_key_paths_equal_flax() -> None:
    flax_opt = fnnx.Optimizer(make_model(fnnx), optax.adam(1e-3), wrt=fnnx.Param)
    our_opt = nnx.Optimizer(make_model(nnx), optax.adam(1e-3), wrt=nnx.Param)

    def keys(tree: tp.Any) -> list[str]:
        return sorted(
            jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
        )

    assert keys(our_opt) == keys(flax_opt)
    roundtrip = jax.jit(lambda o: o)(our_opt)
    assert isinstance(roundtrip, nnx.Optimizer) and keys(roundtrip) == keys(flax_opt)


def test_flax_optimizer_state_loads_into_ours_by_pure_dict_and_back() -> None:
    flax_model = make_model(fnnx)
    flax_opt = fnnx.Optimizer(flax_model, optax.adam(1e-2), wrt=fnnx.Param)
    flax_step = train_step(fnnx)
    for step in range(2):
        flax_step(flax_model, flax_opt, *data(step))
    pure = jax.tree.map(np.asarray, fnnx.state(flax_opt).to_pure_dict())

    our_opt = nnx.Optimizer(make_model(nnx), optax.adam(1e-2), wrt=nnx.Param)
    state = nnx.state(our_opt)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(our_opt, state)
    assert int(our_opt.step.value) == 2
    np.testing.assert_array_equal(
        our_opt.opt_state[0].mu["blocks"][0]["linear"]["kernel"].value,
        pure["opt_state"][0]["mu"]["blocks"][0]["linear"]["kernel"],
    )
    # and back: our pure dict fits Flax's optimizer
    fresh = fnnx.Optimizer(make_model(fnnx), optax.adam(1e-2), wrt=fnnx.Param)
    flax_state = fnnx.state(fresh)
    fnnx.replace_by_pure_dict(
        flax_state, jax.tree.map(np.asarray, nnx.state(our_opt).to_pure_dict())
    )
    fnnx.update(fresh, flax_state)
    assert flat_optimizer_state(fnnx, fresh).keys() == flat_optimizer_state(fnnx, flax_opt).keys()
    for path, (_, value) in flat_optimizer_state(fnnx, flax_opt).items():
        np.testing.assert_array_equal(flat_optimizer_state(fnnx, fresh)[path][1], value)


def test_zoom_linesearch_update_matches_flax() -> None:
    """``update(model, grads, value=, grad=, value_fn=)`` with a line-search chain."""

    def run(lib: tp.Any) -> tuple[list[float], dict[Path, np.ndarray]]:
        model = make_model(lib)
        if lib is nnx:
            copy_params(make_model(fnnx), model)
        x, y = data(0)
        graphdef, _, rest = lib.split(model, lib.Param, ...)
        tx = optax.chain(optax.sgd(0.1), optax.scale_by_zoom_linesearch(max_linesearch_steps=10))
        optimizer = lib.Optimizer(model, tx, wrt=lib.Param)

        def value_fn(params: tp.Any) -> jax.Array:
            return loss_fn(lib.merge(graphdef, params, rest, copy=True), x, y)

        @lib.jit  # type: ignore[misc]
        def step(model: tp.Any, optimizer: tp.Any) -> jax.Array:
            loss, grads = lib.value_and_grad(loss_fn)(model, x, y)
            optimizer.update(model, grads, value=loss, grad=grads, value_fn=value_fn)
            return loss

        losses = [float(step(model, optimizer)) for _ in range(4)]
        params = {
            p: np.asarray(v.get_value()) for p, v in lib.to_flat_state(lib.state(model, lib.Param))
        }
        return losses, params

    flax_losses, flax_params = run(fnnx)
    our_losses, our_params = run(nnx)
    np.testing.assert_allclose(our_losses, flax_losses, rtol=1e-5)
    assert our_losses[-1] < our_losses[0]
    assert our_params.keys() == flax_params.keys()
    for path, value in flax_params.items():
        np.testing.assert_allclose(our_params[path], value, rtol=1e-5, atol=1e-6)
