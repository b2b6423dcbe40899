"""Checkpoints: orbax and safetensors round trips, pure dicts, abstract targets,
sharded restore, and the errors for checkpoints that do not match."""

from __future__ import annotations

import pathlib
import re
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optim_models import Linear, LoraParam, batch, jax_grads, lora_mlp, mse

import nnx_graph as nnx
import nnx_optim
from nnx_optim import CheckpointMismatchError, Optimizer


def trained(steps: int = 2, seed: int = 0) -> tuple[tp.Any, Optimizer[tp.Any]]:
    model = lora_mlp(seed)
    optimizer = Optimizer(model, optax.adam(1e-2))
    for step in range(steps):
        optimizer.update(jax_grads(model, *batch(step)))
    return model, optimizer


def flat_values(*objects: tp.Any) -> dict[tp.Any, np.ndarray]:
    out = {}
    for path, leaf in nnx.state(objects).flat_state():
        value = leaf.value if isinstance(leaf, nnx.Variable) else leaf
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        out[path] = np.asarray(value)
    return out


def assert_bit_identical(a: dict[tp.Any, np.ndarray], b: dict[tp.Any, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for path in a:
        assert a[path].dtype == b[path].dtype, path
        assert a[path].tobytes() == b[path].tobytes(), path


# ----------------------------------------------------------------------------- orbax
def test_orbax_round_trip_into_existing_objects(tmp_path: pathlib.Path) -> None:
    model, optimizer = trained()
    saved = flat_values(model, optimizer)
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model, optimizer)

    fresh_model = lora_mlp(seed=7)
    fresh_optimizer = Optimizer(fresh_model, optax.adam(1e-2))
    out = nnx_optim.restore_checkpoint(tmp_path / "ckpt", fresh_model, fresh_optimizer)
    assert out == (fresh_model, fresh_optimizer)
    assert_bit_identical(saved, flat_values(fresh_model, fresh_optimizer))
    assert int(fresh_optimizer.step.value) == 2
    assert fresh_optimizer.step.value.dtype == jnp.uint32
    assert fresh_optimizer.model is fresh_model
    # training continues identically from the restored state
    for opt in (optimizer, fresh_optimizer):
        opt.update(jax_grads(opt.model, *batch(5)))
    assert_bit_identical(flat_values(model, optimizer), flat_values(fresh_model, fresh_optimizer))


def test_orbax_restore_into_abstract_model(tmp_path: pathlib.Path) -> None:
    model, optimizer = trained()
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model, optimizer)

    abstract_model, abstract_optimizer = nnx.eval_shape(
        lambda: (lambda m: (m, Optimizer(m, optax.adam(1e-2))))(lora_mlp(seed=3))
    )
    assert isinstance(abstract_model.linear1.A.value, jax.ShapeDtypeStruct)
    assert abstract_optimizer.model is abstract_model
    nnx_optim.restore_checkpoint(tmp_path / "ckpt", abstract_model, abstract_optimizer)
    assert isinstance(abstract_model.linear1.A.value, jax.Array)
    assert_bit_identical(
        flat_values(model, optimizer), flat_values(abstract_model, abstract_optimizer)
    )
    # the restored RNG streams continue where the saved ones were
    assert int(abstract_model.dropout.rngs.dropout.count.value) == int(
        model.dropout.rngs.dropout.count.value
    )


def test_orbax_single_object_and_states(tmp_path: pathlib.Path) -> None:
    model, optimizer = trained()
    # the optimizer alone carries its model
    nnx_optim.save_checkpoint(tmp_path / "opt", optimizer)
    other = Optimizer(lora_mlp(seed=5), optax.adam(1e-2))
    nnx_optim.restore_checkpoint(tmp_path / "opt", other)
    assert_bit_identical(flat_values(optimizer), flat_values(other))
    # States (from nnx.split) are targets too: the Variables are the model's own
    nnx_optim.save_checkpoint(tmp_path / "params", nnx.state(model, nnx.Param))
    target = lora_mlp(seed=9)
    _, params, _ = nnx.split(target, nnx.Param, ...)
    nnx_optim.restore_checkpoint(tmp_path / "params", params)
    assert_bit_identical(
        flat_values(nnx.state(model, nnx.Param)), flat_values(nnx.state(target, nnx.Param))
    )
    # an existing directory is not overwritten by accident
    with pytest.raises(FileExistsError, match="overwrite=True"):
        nnx_optim.save_checkpoint(tmp_path / "opt", optimizer)
    nnx_optim.save_checkpoint(tmp_path / "opt", optimizer, overwrite=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        nnx_optim.restore_checkpoint(tmp_path / "missing", other)


def test_orbax_dtypes_are_bit_exact(tmp_path: pathlib.Path) -> None:
    class Mixed(nnx.Module):
        def __init__(self) -> None:
            key = jax.random.key(0)
            self.bf16 = nnx.Param(jax.random.normal(key, (3, 5), jnp.bfloat16))
            self.f16 = nnx.Param(jax.random.normal(key, (4,), jnp.float16))
            self.i8 = nnx.Variable(jnp.arange(-3, 3, dtype=jnp.int8))
            self.flag = nnx.Variable(jnp.array([True, False]))
            self.key = nnx.Variable(jax.random.split(jax.random.key(4), 3))
            self.raw = jnp.linspace(0, 1, 7)

    source = Mixed()
    source.raw = source.raw * 3.0
    nnx_optim.save_checkpoint(tmp_path / "mixed", source)
    target = Mixed()
    target.key.value = jax.random.split(jax.random.key(99), 3)
    nnx_optim.restore_checkpoint(tmp_path / "mixed", target)
    assert_bit_identical(flat_values(source), flat_values(target))
    assert jnp.issubdtype(target.key.value.dtype, jax.dtypes.prng_key)


def test_pure_dict_round_trip() -> None:
    model, optimizer = trained()
    pure = nnx.to_pure_dict(nnx.state((model, optimizer)))
    assert isinstance(pure[1]["step"], jax.Array)
    # as a checkpoint library hands it back: string keys, numpy arrays
    stored = jax.tree.map(
        lambda a: a if jnp.issubdtype(a.dtype, jax.dtypes.prng_key) else np.asarray(a), pure
    )

    def stringify(tree: tp.Any) -> tp.Any:
        return {str(k): stringify(v) for k, v in tree.items()} if isinstance(tree, dict) else tree

    fresh_model = lora_mlp(seed=4)
    fresh_optimizer = Optimizer(fresh_model, optax.adam(1e-2))
    state = nnx.state((fresh_model, fresh_optimizer))
    nnx.replace_by_pure_dict(state, stringify(stored))
    nnx.update((fresh_model, fresh_optimizer), state)
    assert_bit_identical(flat_values(model, optimizer), flat_values(fresh_model, fresh_optimizer))
    assert int(fresh_optimizer.step.value) == 2


# ----------------------------------------------------------------------------- errors
def test_mismatch_error_names_every_path(tmp_path: pathlib.Path) -> None:
    model = lora_mlp()
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model)
    target = lora_mlp()
    target.linear2.linear = Linear(16, 5, rngs=nnx.Rngs(0))  # wrong output size
    target.head = Linear(3, 3, rngs=nnx.Rngs(0))  # not in the checkpoint
    del target.linear1.B  # only in the checkpoint
    target.bn.var.value = target.bn.var.value.astype(jnp.float16)  # wrong dtype
    before = flat_values(target)
    with pytest.raises(CheckpointMismatchError) as info:
        nnx_optim.restore_checkpoint(tmp_path / "ckpt", target)
    message = str(info.value)
    assert "(6 problems)" in message
    lines = message.splitlines()
    expected = [
        "target.linear2.linear.w: expected shape (16, 5) float32 (from the target), found "
        "shape (16, 3) float32 in the checkpoint",
        "target.linear2.linear.b: expected shape (5,) float32 (from the target), found "
        "shape (3,) float32 in the checkpoint",
        "target.head.w: missing from the checkpoint; expected shape (3, 3) float32",
        "target.head.b: missing from the checkpoint; expected shape (3,) float32",
        "target.linear1.B: found in the checkpoint (shape (4, 16) float32) but not in the target",
        "target.bn.var: expected shape (16,) float16 (from the target), found shape (16,) "
        "float32 in the checkpoint",
    ]
    for text in expected:
        assert any(text in line for line in lines), text
    assert lines[-1].startswith("Fix: restore into objects built exactly like the saved ones")
    assert isinstance(info.value, nnx.GraphStructureError)
    assert_bit_identical(before, flat_values(target))  # nothing was modified


def test_mismatch_with_several_targets(tmp_path: pathlib.Path) -> None:
    model, optimizer = trained(steps=1)
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model, optimizer)
    other_model = lora_mlp()
    lora_only = Optimizer(other_model, optax.adam(1e-2), wrt=LoraParam)
    with pytest.raises(CheckpointMismatchError) as info:
        nnx_optim.restore_checkpoint(tmp_path / "ckpt", other_model, lora_only)
    message = str(info.value)
    # Adam state for the non-LoRA parameters is in the checkpoint only (the
    # opt_state path in between depends on optax's state layout)
    assert re.search(
        r"targets\[1\]\.opt_state\S*\.linear1\.linear\.w: found in the checkpoint", message
    )
    assert re.search(r"targets\[1\]\.opt_state\S*\.bn\.scale: found in the checkpoint", message)


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_round_trip_and_names(tmp_path: pathlib.Path) -> None:
    import safetensors.numpy

    model, _ = trained()
    file = tmp_path / "model.safetensors"
    nnx_optim.save_safetensors(file, model, only=nnx.Param)
    names = sorted(safetensors.numpy.load_file(str(file)))
    assert names == [
        "bn.bias",
        "bn.scale",
        "linear1.A",
        "linear1.B",
        "linear1.linear.b",
        "linear1.linear.w",
        "linear2.A",
        "linear2.B",
        "linear2.linear.b",
        "linear2.linear.w",
    ]
    target = nnx.eval_shape(lambda: lora_mlp(seed=6))
    nnx_optim.load_safetensors(file, target, only=nnx.Param)
    assert_bit_identical(
        flat_values(nnx.state(model, nnx.Param)), flat_values(nnx.state(target, nnx.Param))
    )
    # everything (BatchStats, RNG keys and counts) with the default filter
    nnx_optim.save_safetensors(tmp_path / "all.safetensors", model)
    everything = lora_mlp(seed=8)
    nnx_optim.load_safetensors(tmp_path / "all.safetensors", everything)
    assert_bit_identical(flat_values(model), flat_values(everything))


def test_safetensors_list_paths_and_errors(tmp_path: pathlib.Path) -> None:
    import safetensors.numpy

    class Stack(nnx.Module):
        def __init__(self, sizes: list[int]) -> None:
            self.layers = [Linear(n, n, rngs=nnx.Rngs(n)) for n in sizes]

    file = tmp_path / "stack.safetensors"
    nnx_optim.save_safetensors(file, Stack([2, 3]))
    assert "layers.1.w" in safetensors.numpy.load_file(str(file))
    with pytest.raises(CheckpointMismatchError) as info:
        nnx_optim.load_safetensors(file, Stack([2, 4, 5]))
    message = str(info.value)
    assert (
        "'layers.1.w': expected shape (4, 4) float32 (from the target), found shape (3, 3)"
        in message
    )
    assert "'layers.2.b': missing from the file" in message
    assert "Fix: load into a model built like the saved one" in message


# ----------------------------------------------------------------------------- sharding
@pytest.mark.multidevice
def test_sharded_restore_on_8_devices(tmp_path: pathlib.Path) -> None:
    if jax.device_count() < 8:
        pytest.skip("needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
    from jax.sharding import NamedSharding, PartitionSpec

    model, optimizer = trained()
    saved = flat_values(model, optimizer)
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model, optimizer)  # on one device

    auto = jax.sharding.AxisType.Auto  # let the compiler propagate shardings in the step
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(auto, auto))

    def spec_for(value: tp.Any) -> PartitionSpec:
        shape = getattr(value, "shape", ())
        if len(shape) == 2 and shape[1] % 4 == 0:
            return PartitionSpec(None, "model")
        if len(shape) == 1 and shape[0] % 8 == 0:
            return PartitionSpec(("data", "model"))
        return PartitionSpec()

    abstract_model, abstract_optimizer = nnx.eval_shape(
        lambda: (lambda m: (m, Optimizer(m, optax.adam(1e-2))))(lora_mlp(seed=3))
    )
    shardings = {}
    for path, leaf in nnx.state((abstract_model, abstract_optimizer)).flat_state():
        value = leaf.value
        sharding = NamedSharding(mesh, spec_for(value))
        leaf.value = jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding)
        shardings[path] = sharding
    nnx_optim.restore_checkpoint(tmp_path / "ckpt", abstract_model, abstract_optimizer)
    restored = nnx.state((abstract_model, abstract_optimizer)).flat_state()
    for path, leaf in restored:
        assert leaf.value.sharding == shardings[path], path
    sharded_kernel = abstract_model.linear2.linear.w.value
    assert len(sharded_kernel.addressable_shards) == 8
    assert sharded_kernel.addressable_shards[0].data.shape == (16, 3)  # (16, 3): 3 % 4 != 0
    lora_b = abstract_model.linear1.B.value  # (4, 16): columns split over "model"
    assert lora_b.addressable_shards[0].data.shape == (4, 4)
    assert_bit_identical(saved, flat_values(abstract_model, abstract_optimizer))

    # and a jitted step runs on the sharded state
    @nnx.jit
    def step(model: tp.Any, optimizer: Optimizer[tp.Any]) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: mse(m, *batch(0)))(model)
        optimizer.update(model, grads)
        return loss

    assert np.isfinite(float(step(abstract_model, abstract_optimizer)))
    assert int(abstract_optimizer.step.value) == 3


@pytest.mark.multidevice
def test_sharded_restore_with_get_abstract_model(tmp_path: pathlib.Path) -> None:
    if jax.device_count() < 8:
        pytest.skip("needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8")
    if not all(hasattr(nnx, n) for n in ("with_partitioning", "get_abstract_model")):
        pytest.skip("nnx_graph does not export with_partitioning/get_abstract_model yet")
    from jax.sharding import PartitionSpec

    class Annotated(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            kernel = nnx.with_partitioning(jax.nn.initializers.lecun_normal(), (None, "model"))
            bias = nnx.with_partitioning(jax.nn.initializers.zeros, ("model",))
            self.w = nnx.Param(kernel(rngs.params(), (8, 16)))
            self.b = nnx.Param(bias(rngs.params(), (16,)))

        def __call__(self, x: jax.Array) -> jax.Array:
            return x @ self.w + self.b

    def create(seed: int) -> tuple[tp.Any, Optimizer[tp.Any]]:
        model = Annotated(nnx.Rngs(seed))
        return model, Optimizer(model, optax.adam(1e-2))

    model, optimizer = create(0)  # no mesh: everything on one device
    optimizer.update(nnx.State({"w": jnp.ones((8, 16)), "b": jnp.ones(16)}))
    saved = flat_values(model, optimizer)
    nnx_optim.save_checkpoint(tmp_path / "ckpt", model, optimizer)

    mesh = jax.make_mesh((2, 4), ("data", "model"))
    graphdef, abstract = nnx.get_abstract_model(lambda: create(1), mesh)
    nnx_optim.restore_checkpoint(tmp_path / "ckpt", abstract)
    restored_model, restored_optimizer = nnx.merge(graphdef, abstract)
    assert restored_optimizer.model is restored_model
    assert_bit_identical(saved, flat_values(restored_model, restored_optimizer))
    assert restored_model.w.value.sharding.spec == PartitionSpec(None, "model")
    # the Adam moments carry the parameters' annotations, so they are sharded alike
    mu = restored_optimizer.opt_state[0].mu
    assert mu["w"].value.sharding.spec == PartitionSpec(None, "model")
    assert mu["b"].value.sharding.spec == PartitionSpec("model")
    assert mu["w"].value.addressable_shards[0].data.shape == (8, 4)
