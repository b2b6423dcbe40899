"""Data- and tensor-parallel training on 8 simulated CPU devices.

Shows how nnx models are sharded with JAX's own machinery:

- a 2-D device mesh ``('data', 'model')`` (4 x 2 here) from 8 CPU devices that XLA
  simulates (``--xla_force_host_platform_device_count=8``, set before JAX loads);
- kernels annotated at creation with ``nnx.with_partitioning``: a Megatron-style MLP
  whose first kernel is split by columns and second by rows over ``'model'``;
- sharded initialisation inside ``@nnx.jit``: ``nnx.get_partition_spec`` of the state
  of the model *and* its optimizer (Adam's moments inherit the kernels' annotations),
  ``jax.lax.with_sharding_constraint`` and ``nnx.update``, so every array is created
  directly on its devices; ``nnx.get_named_sharding`` gives the expected
  ``NamedSharding`` of every Variable, which is checked;
- each batch sharded over ``'data'``; an ``@nnx.jit`` train step that XLA partitions
  over the mesh (gradient all-reduce over 'data', activation collectives over 'model');
- the same run on one device for comparison: losses and final weights must agree.

Full size::

    python examples/sharded_training.py

CI size::

    python examples/sharded_training.py --small
"""

import os

# Must happen before JAX is imported: simulate 8 CPU devices (keeps any other flags).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import nnx


class MLP(nnx.Module):
    """``(batch, features)`` -> ``(batch, 1)``; tensor-parallel hidden layer.

    ``up`` is split by output columns over 'model' and ``down`` by input rows, so the
    hidden activations stay sharded between them (one all-reduce after ``down``).
    """

    def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.lecun_normal()
        zeros = nnx.initializers.zeros_init()
        self.up = nnx.Linear(
            features,
            hidden,
            kernel_init=nnx.with_partitioning(init, (None, "model")),
            bias_init=nnx.with_partitioning(zeros, ("model",)),
            rngs=rngs,
        )
        self.down = nnx.Linear(
            hidden,
            hidden,
            kernel_init=nnx.with_partitioning(init, ("model", None)),
            bias_init=nnx.with_partitioning(zeros, (None,)),
            rngs=rngs,
        )
        self.head = nnx.Linear(hidden, 1, rngs=rngs)  # small: replicated

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(nnx.relu(self.down(nnx.relu(self.up(x)))))


def create(features: int, hidden: int, seed: int) -> tuple[MLP, nnx.Optimizer]:
    model = MLP(features, hidden, rngs=nnx.Rngs(seed))
    return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    def loss_fn(model: MLP) -> jax.Array:
        return jnp.mean((model(x) - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced size for CI")
    parser.add_argument("--steps", type=int, default=None, help="default 200 (5 --small)")
    parser.add_argument("--hidden", type=int, default=None, help="default 1024 (16 --small)")
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 (16 --small)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.small else 200)
    hidden = args.hidden or (16 if args.small else 1024)
    batch_size = args.batch_size or (16 if args.small else 256)
    start = time.perf_counter()

    devices = jax.devices()
    assert len(devices) == 8, f"expected 8 simulated devices, found {len(devices)}"
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    print(f"mesh: {dict(mesh.shape)} over {len(devices)} {devices[0].platform} devices")

    data = np.random.default_rng(args.seed)
    true_w = data.normal(size=(args.features, 1)).astype(np.float32)
    batches = []
    for _ in range(steps):
        x = data.normal(size=(batch_size, args.features)).astype(np.float32)
        batches.append((x, np.tanh(x @ true_w)))

    # Sharded init: build model + optimizer inside nnx.jit and constrain every Variable
    # to the partition spec its annotations give, so XLA creates each shard in place.
    @nnx.jit
    def create_sharded() -> tuple[MLP, nnx.Optimizer]:
        model, optimizer = create(args.features, hidden, args.seed)
        state = nnx.state((model, optimizer))
        specs = nnx.get_partition_spec(state)
        nnx.update((model, optimizer), jax.lax.with_sharding_constraint(state, specs))
        return model, optimizer

    with jax.set_mesh(mesh):
        model, optimizer = create_sharded()

    # Every Variable is where its annotation says.
    expected = nnx.get_named_sharding(nnx.state((model, optimizer)), mesh)
    actual = jax.tree.map(lambda a: a.sharding, nnx.state((model, optimizer)))
    placement_ok = all(
        a.is_equivalent_to(e, jnp.ndim(v))
        for a, e, v in zip(
            jax.tree.leaves(actual), jax.tree.leaves(expected),
            jax.tree.leaves(nnx.state((model, optimizer))),
        )
    )  # fmt: skip
    print("parameter shardings (spec, shape of the shard on device 0):")
    for path, param in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        value = param.value
        print(
            f"    {'.'.join(map(str, path)):12s} {value.sharding.spec!s:24s} "
            f"global {value.shape} shard {value.addressable_shards[0].data.shape}"
        )
    for path, moment in nnx.to_flat_state(nnx.state(optimizer, nnx.OptState)):
        if "up" in path and "kernel" in path:  # Adam's mu and nu follow the kernel
            where = ".".join(map(str, path))
            print(f"    optimizer {where}: {moment.value.sharding.spec}")

    data_sharding = NamedSharding(mesh, P("data", None))
    losses = []
    with jax.set_mesh(mesh):
        for step, (x, y) in enumerate(batches, 1):
            x, y = jax.device_put(x, data_sharding), jax.device_put(y, data_sharding)
            losses.append(float(train_step(model, optimizer, x, y)))
            if step == 1 or step == steps or step % max(1, steps // 5) == 0:
                print(f"sharded step {step:4d}  loss {losses[-1]:.6f}")
    x_shard = jax.device_put(batches[0][0], data_sharding).addressable_shards[0].data.shape
    print(f"batch {batches[0][0].shape} sharded over 'data': {x_shard} per device")
    still_sharded = model.up.kernel.value.sharding.spec == P(None, "model")

    # The same training on one device, from the same seed.
    single_model, single_optimizer = create(args.features, hidden, args.seed)  # no mesh
    single_losses = [float(train_step(single_model, single_optimizer, x, y)) for x, y in batches]
    print(f"single-device final loss {single_losses[-1]:.6f} vs sharded {losses[-1]:.6f}")
    # Sharded matmuls sum in another order, so results agree to float rounding, not
    # bit for bit; Adam divides by sqrt(nu) and so magnifies rounding in weights whose
    # gradients are ~0. Compare losses absolutely and weights relative to their scale.
    loss_gap = max(abs(a - b) for a, b in zip(losses, single_losses))
    weight_gap = max(
        float(jnp.max(jnp.abs(np.asarray(a) - np.asarray(b))) / (jnp.max(jnp.abs(b)) + 1e-12))
        for a, b in zip(
            jax.tree.leaves(nnx.state(model, nnx.Param)),
            jax.tree.leaves(nnx.state(single_model, nnx.Param)),
        )
    )
    print(f"max |loss difference| {loss_gap:.2e}, max relative weight difference {weight_gap:.2e}")
    print(f"total time {time.perf_counter() - start:.1f} s")

    failures = [
        what
        for what, ok in [
            ("a Variable is not placed as its annotation says", placement_ok),
            ("up.kernel lost its sharding during training", still_sharded),
            ("sharded and single-device losses differ", loss_gap < 1e-4),
            ("sharded and single-device weights differ", weight_gap < 1e-2),
            ("loss did not decrease", losses[-1] < losses[0]),
        ]
        if not ok
    ]
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        return 1
    print(
        f"OK: sharded training matches one device (loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
        f"max relative weight difference {weight_gap:.1e})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
