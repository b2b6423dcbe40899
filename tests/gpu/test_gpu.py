"""What differs on a GPU: device placement, donation, bf16 compute, sharding over real
devices and ``memory_analysis``.

Every test here is marked ``gpu``: ``nox -s tests-cpu`` deselects them, ``nox -s
tests-cuda12`` runs them (with ``NNX_REQUIRE_GPU=1``). Collected anywhere else they
skip when JAX has no GPU backend, and fail instead when ``NNX_REQUIRE_GPU=1``, so a
CUDA install that silently fell back to the CPU cannot pass.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import nnx

pytestmark = pytest.mark.gpu

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def gpus() -> list[jax.Device]:
    """The GPU devices; skip (or fail with NNX_REQUIRE_GPU=1) when there are none."""
    try:
        devices = jax.devices("gpu")
        reason = ""
    except RuntimeError as error:  # no CUDA backend, or JAX_PLATFORMS excludes it
        devices, reason = [], f": {error}"
    if not devices:
        message = f"JAX has no GPU device{reason}"
        if os.environ.get("NNX_REQUIRE_GPU") == "1":
            pytest.fail(f"NNX_REQUIRE_GPU=1 but {message}")
        pytest.skip(message)
    return devices


def _mse(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model(x) - y) ** 2)


def _batch(features: int, outputs: int, rows: int = 64) -> tuple[jax.Array, jax.Array]:
    data = np.random.default_rng(0)
    x = data.normal(size=(rows, features)).astype(np.float32)
    w = data.normal(size=(features, outputs)).astype(np.float32) / np.sqrt(features)
    return jnp.asarray(x), jnp.asarray(np.tanh(x @ w))


# ------------------------------------------------------------------ device placement
def test_variables_are_created_on_the_gpu_and_move_with_device_put(
    gpus: list[jax.Device],
) -> None:
    assert jax.devices()[0].platform == "gpu", "the default backend should be the GPU"
    model = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
    for path, variable in nnx.to_flat_state(nnx.state(model)):
        assert variable.value.devices() == {gpus[0]}, path

    x, _ = _batch(8, 4)
    forward = nnx.jit(lambda model, x: model(x))
    on_gpu = forward(model, x)
    assert on_gpu.devices() == {gpus[0]}

    # The whole state to the host and back, through the public graph API.
    cpu = jax.devices("cpu")[0]
    nnx.update(model, jax.device_put(nnx.state(model), cpu))
    for path, variable in nnx.to_flat_state(nnx.state(model)):
        assert variable.value.devices() == {cpu}, path
    on_cpu = forward(model, jax.device_put(x, cpu))
    assert on_cpu.devices() == {cpu}
    nnx.update(model, jax.device_put(nnx.state(model), gpus[0]))
    assert model.kernel.value.devices() == {gpus[0]}
    # Same weights: the GPU and host results agree (float32 on both, TF32 excluded).
    with jax.default_matmul_precision("highest"):
        np.testing.assert_allclose(
            np.asarray(forward(model, x)), np.asarray(on_cpu), rtol=1e-5, atol=1e-6
        )


# ------------------------------------------------------------------------- donation
def _train_step_and_state() -> tuple[nnx.Linear, nnx.Optimizer, jax.Array, jax.Array]:
    model = nnx.Linear(256, 256, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    x, y = _batch(256, 256)
    return model, optimizer, x, y


def _step(model: nnx.Linear, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    loss, grads = nnx.value_and_grad(_mse)(model, x, y)
    optimizer.update(model, grads)
    return loss


def test_donated_model_and_optimizer_buffers_are_reused(gpus: list[jax.Device]) -> None:
    donated = nnx.jit(_step, donate_argnums=(0, 1))
    kept = nnx.jit(_step)

    model, optimizer, x, y = _train_step_and_state()
    before = model.kernel.value
    kept(model, optimizer, x, y)
    assert not before.is_deleted()  # without donation the old buffer stays valid

    model, optimizer, x, y = _train_step_and_state()
    before = model.kernel.value
    expected = np.array(before, copy=True)  # no view may keep the buffer alive
    losses = [float(donated(model, optimizer, x, y)) for _ in range(3)]
    # On a GPU the donated input buffer is handed to the output: the old array is gone,
    # and the model holds the new, valid one.
    assert before.is_deleted()
    assert not model.kernel.value.is_deleted()
    assert model.kernel.value.devices() == {gpus[0]}
    assert not np.array_equal(np.asarray(model.kernel.value), expected)
    assert losses[-1] < losses[0]

    # The compiled step aliases at least the params and both Adam moments.
    model, optimizer, x, y = _train_step_and_state()
    memory = donated.lower(model, optimizer, x, y).compile().memory_analysis()
    assert memory is not None
    kernel_bytes = 256 * 256 * 4
    assert memory.alias_size_in_bytes >= 3 * kernel_bytes
    memory_kept = kept.lower(model, optimizer, x, y).compile().memory_analysis()
    assert memory_kept.alias_size_in_bytes == 0


# ---------------------------------------------------------------------- bf16 compute
def test_bf16_compute_with_float32_params(gpus: list[jax.Device]) -> None:
    layer = nnx.Linear(256, 128, dtype=jnp.bfloat16, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    x, y = _batch(256, 128)
    forward = nnx.jit(lambda layer, x: layer(x))

    out = forward(layer, x)
    assert out.dtype == jnp.bfloat16
    assert out.devices() == {gpus[0]}
    assert layer.kernel.value.dtype == jnp.float32
    # The matmul itself runs on bf16 operands (what the GPU's tensor cores take).
    assert "256xbf16>" in forward.lower(layer, x).as_text()

    kernel = np.asarray(layer.kernel.value, np.float64)
    bias = np.asarray(layer.bias.value, np.float64)
    exact = np.asarray(x, np.float64) @ kernel + bias
    # bf16 keeps 8 significant bits (relative rounding 2**-8 per operand and on output),
    # accumulation is float32: a few parts per hundred of the output's scale.
    scale = float(np.max(np.abs(exact)))
    np.testing.assert_allclose(np.asarray(out, np.float32), exact, rtol=0, atol=0.03 * scale)

    # Gradients flow back to the float32 Params in float32; training still works.
    optimizer = nnx.Optimizer(layer, optax.adam(1e-2), wrt=nnx.Param)
    step = nnx.jit(_step)
    losses = [float(step(layer, optimizer, x, y)) for _ in range(20)]
    grads = nnx.grad(_mse)(layer, x, y)
    for path, grad in nnx.to_flat_state(grads):
        assert grad.value.dtype == jnp.float32, path
    assert layer.kernel.value.dtype == jnp.float32
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------- sharding over real GPUs
class _TensorParallelMLP(nnx.Module):
    def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.lecun_normal()
        self.up = nnx.Linear(
            features, hidden, kernel_init=nnx.with_partitioning(init, (None, "model")), rngs=rngs
        )
        self.down = nnx.Linear(
            hidden, features, kernel_init=nnx.with_partitioning(init, ("model", None)), rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down(nnx.relu(self.up(x)))


def test_sharding_over_two_gpus_matches_one_gpu(gpus: list[jax.Device]) -> None:
    if len(gpus) < 2:
        pytest.skip(f"needs 2 GPUs, found {len(gpus)}")
    mesh = Mesh(
        np.array(gpus[:2]).reshape(1, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2
    )

    def create() -> tuple[_TensorParallelMLP, nnx.Optimizer]:
        model = _TensorParallelMLP(64, 128, rngs=nnx.Rngs(0))
        return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def create_sharded() -> tuple[_TensorParallelMLP, nnx.Optimizer]:
        model, optimizer = create()
        state = nnx.state((model, optimizer))
        nnx.update(
            (model, optimizer),
            jax.lax.with_sharding_constraint(state, nnx.get_partition_spec(state)),
        )
        return model, optimizer

    with jax.set_mesh(mesh):
        model, optimizer = create_sharded()
    kernel = model.up.kernel.value
    assert kernel.sharding.spec == P(None, "model")
    # Each GPU holds one half of the columns, in its own memory.
    assert {shard.device for shard in kernel.addressable_shards} == set(gpus[:2])
    assert {shard.data.shape for shard in kernel.addressable_shards} == {(64, 64)}

    x, y = _batch(64, 64)
    step = nnx.jit(_step)
    with jax.default_matmul_precision("highest"):
        with jax.set_mesh(mesh):
            batch = NamedSharding(mesh, P("data", None))
            sharded = [
                float(step(model, optimizer, jax.device_put(x, batch), jax.device_put(y, batch)))
                for _ in range(5)
            ]
        single_model, single_optimizer = create()  # on gpus[0] only
        single = [float(step(single_model, single_optimizer, x, y)) for _ in range(5)]
    assert model.up.kernel.value.sharding.spec == P(None, "model")
    # Partial sums of the row-split kernel are added by an all-reduce: rounding only.
    np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------- memory_analysis
@pytest.fixture(scope="module")
def bench() -> types.ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_optimizer")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_memory_analysis_of_the_train_step_matches_hand_written_jax(
    gpus: list[jax.Device], bench: types.ModuleType
) -> None:
    # The GPU compiler assigns buffers differently from the CPU one (fusion, cuBLAS
    # workspaces): the nnx step must still need exactly what the hand-written
    # jax + optax step needs there.
    report = bench.compare(depth=2, width=256, batch=64)
    for variant in report.COMPARED:
        assert report.mismatches(variant) == [], (variant, report.metrics)
    hand = report.metrics["hand-written"]
    assert hand["alias_size_in_bytes"] >= report.state_bytes - 4  # donation on the GPU

    model, optimizer, x, y = _train_step_and_state()
    compiled = nnx.jit(_step, donate_argnums=(0, 1))
    memory = compiled.lower(model, optimizer, x, y).compile().memory_analysis()
    params = 256 * 256 * 4 + 256 * 4
    # Arguments: params, Adam's two moments, the step count and the batch.
    assert memory.argument_size_in_bytes >= 3 * params + 2 * 64 * 256 * 4
    assert memory.temp_size_in_bytes >= 0
