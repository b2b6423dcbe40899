"""Multi-host data- and tensor-parallel training on JAX's distributed runtime.

One script for one machine and for many:

- ``--processes N`` is a tiny local launcher: it starts N worker processes of this
  script on ``127.0.0.1`` (each with ``--local-devices`` simulated CPU devices and gloo
  collectives) and waits for them, the way a cluster scheduler would;
- without ``--processes`` the script is one worker. Under SLURM (``srun``), on a Cloud
  TPU pod or any cluster that ``jax.distributed.initialize()`` recognises, it finds
  the coordinator, the number of processes and its own rank by itself; elsewhere,
  pass them with ``--coordinator``, ``--num-processes`` and ``--process-id`` (or the
  ``NNX_COORDINATOR``/``NNX_NUM_PROCESSES``/``NNX_PROCESS_ID`` variables, which is
  what the launcher does).

Every worker then runs the same program (SPMD):

- a global 2-D mesh ``('data', 'model')`` over the devices of *all* processes;
- a Megatron-style MLP whose kernels are annotated with ``nnx.with_partitioning``,
  created inside ``@nnx.jit`` with every Variable (and Adam's moments) constrained to
  its partition spec, so each process only ever materialises its own shards;
- per-process batches: each process builds only the rows of the global batch that its
  devices hold and assembles the global array with
  ``jax.make_array_from_process_local_data``;
- an ``@nnx.jit`` train step with an ``nnx.Optimizer`` that XLA partitions over the
  mesh (the gradient all-reduce over ``'data'`` crosses processes);
- at the end, ``nnx.save_checkpoint`` from all processes (orbax writes each process's
  shards into one directory) and ``nnx.restore_checkpoint`` into a fresh, sharded model
  and optimizer, checked shard by shard against the trained ones.

Run it locally on 2 processes x 2 CPU devices, or as one process with 4 devices (the
same mesh, so the same losses up to float rounding)::

    python examples/multihost_training.py --processes 2 --local-devices 2
    python examples/multihost_training.py --processes 1 --local-devices 4

On a SLURM cluster, one task per host (the GPUs of each host are its local devices)::

    srun --nodes=2 --ntasks-per-node=1 python examples/multihost_training.py \\
        --checkpoint-dir /shared/filesystem/ckpt

On a TPU pod slice, the same command on every host::

    gcloud compute tpus tpu-vm ssh NAME --worker=all \\
        --command="python multihost_training.py --checkpoint-dir gs://bucket/ckpt"

The checkpoint directory must be visible to every process (a shared file system or a
bucket). ``--losses-file 'losses-{process}.json'`` writes each process's per-step
losses as JSON (the tests compare them with a one-process run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

# Environment variables the launcher passes to its workers.
COORDINATOR = "NNX_COORDINATOR"
NUM_PROCESSES = "NNX_NUM_PROCESSES"
PROCESS_ID = "NNX_PROCESS_ID"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    launch = parser.add_argument_group("local launcher")
    launch.add_argument(
        "--processes", type=int, default=None, help="start N local worker processes and wait"
    )
    launch.add_argument(
        "--local-devices",
        type=int,
        default=2,
        help="simulated CPU devices per local worker (default 2)",
    )
    launch.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before the workers are killed"
    )
    worker = parser.add_argument_group("worker (set by the launcher; auto-detected on clusters)")
    worker.add_argument("--coordinator", default=os.environ.get(COORDINATOR))
    worker.add_argument("--num-processes", type=int, default=_env_int(NUM_PROCESSES))
    worker.add_argument("--process-id", type=int, default=_env_int(PROCESS_ID))
    worker.add_argument(
        "--single-process",
        action="store_true",
        help="do not call jax.distributed.initialize (one process, its own devices)",
    )
    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=int, default=20)
    training.add_argument("--batch-size", type=int, default=32, help="global batch size")
    training.add_argument("--features", type=int, default=8)
    training.add_argument("--hidden", type=int, default=32)
    training.add_argument("--model-parallel", type=int, default=2, help="size of 'model'")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--checkpoint-dir", default=None, help="default: a temporary dir")
    training.add_argument(
        "--losses-file",
        default=None,
        help="write the losses as JSON; '{process}' in the name is replaced by the rank",
    )
    return parser.parse_args(argv)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return None if value is None else int(value)


# ----------------------------------------------------------------------------- launcher
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def launch(args: argparse.Namespace, argv: list[str]) -> int:
    """Start ``args.processes`` workers on this machine; return the first failure."""
    n = args.processes
    # The workers get the same arguments minus the launcher's own.
    forwarded: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("--processes", "--local-devices", "--timeout"):
            skip = True
            continue
        if item.split("=")[0] in ("--processes", "--local-devices", "--timeout"):
            continue
        forwarded.append(item)
    if args.checkpoint_dir is None:  # every worker must write to the same directory
        forwarded += ["--checkpoint-dir", tempfile.mkdtemp(prefix="nnx-multihost-") + "/ckpt"]
    coordinator = f"127.0.0.1:{_free_port()}"
    workers = []
    for rank in range(n):
        env = dict(os.environ)
        # Simulated CPU devices: the flag is read when JAX starts, so each worker gets
        # its own (replacing any device count inherited from this process).
        flags = [
            flag
            for flag in env.get("XLA_FLAGS", "").split()
            if not flag.startswith("--xla_force_host_platform_device_count")
        ]
        flags.append(f"--xla_force_host_platform_device_count={args.local_devices}")
        env["XLA_FLAGS"] = " ".join(flags)
        env["JAX_PLATFORMS"] = "cpu"
        if n > 1:
            env.update({COORDINATOR: coordinator, NUM_PROCESSES: str(n), PROCESS_ID: str(rank)})
            extra = []
        else:
            for name in (COORDINATOR, NUM_PROCESSES, PROCESS_ID):
                env.pop(name, None)
            extra = ["--single-process"]
        command = [sys.executable, os.path.abspath(__file__), *forwarded, *extra]
        workers.append(subprocess.Popen(command, env=env))
    print(f"launcher: {n} worker(s) x {args.local_devices} CPU device(s), {coordinator}")
    deadline = time.monotonic() + args.timeout
    codes: list[int | None] = [None] * n
    while any(code is None for code in codes):
        for rank, worker in enumerate(workers):
            if codes[rank] is None:
                codes[rank] = worker.poll()
        failed = [code for code in codes if code not in (None, 0)]
        if failed or time.monotonic() > deadline:
            # One worker failed (or we timed out): the others would wait for it forever.
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
            for worker in workers:
                worker.wait()
            if not failed:
                print(f"launcher: FAILED, workers still running after {args.timeout:.0f} s")
                return 1
            print(f"launcher: FAILED, exit codes {[w.returncode for w in workers]}")
            return next(code for code in failed if code is not None)
        time.sleep(0.1)
    print("launcher: all workers finished")
    return 0


# ------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> int:
    import jax

    # CPU collectives across processes go through gloo (TPU/GPU backends ignore this).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if not args.single_process:
        # Explicit values (from the launcher or the command line) win; with none of
        # them, JAX detects SLURM, Cloud TPU, MPI, ... by itself.
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    try:
        return train(args)
    finally:
        if not args.single_process:
            jax.distributed.shutdown()


def train(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import nnx

    rank, count = jax.process_index(), jax.process_count()

    def log(message: str) -> None:
        print(f"[process {rank}/{count}] {message}", flush=True)

    class MLP(nnx.Module):
        """``up`` split by columns and ``down`` by rows over 'model'; ``head`` replicated."""

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
            self.head = nnx.Linear(hidden, 1, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.head(nnx.relu(self.down(nnx.relu(self.up(x)))))

    devices = jax.devices()  # every process's devices, in the same order everywhere
    model_parallel = args.model_parallel
    if len(devices) % model_parallel:
        log(f"FAILED: {len(devices)} devices cannot be split into 'model' = {model_parallel}")
        return 2
    data_parallel = len(devices) // model_parallel
    if args.batch_size % data_parallel:
        log(f"FAILED: batch size {args.batch_size} is not divisible by 'data' = {data_parallel}")
        return 2
    mesh = jax.make_mesh(
        (data_parallel, model_parallel), ("data", "model"), axis_types=(AxisType.Auto,) * 2
    )
    log(
        f"{jax.local_device_count()} local of {len(devices)} {devices[0].platform} devices; "
        f"mesh {dict(mesh.shape)}"
    )

    def create(seed: int) -> tuple[MLP, nnx.Optimizer]:
        model = MLP(args.features, args.hidden, rngs=nnx.Rngs(seed))
        return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    def create_sharded(seed: int) -> tuple[MLP, nnx.Optimizer]:
        # Inside nnx.jit every Variable is constrained to its partition spec, so each
        # process creates only the shards its own devices hold.
        @nnx.jit
        def build() -> tuple[MLP, nnx.Optimizer]:
            model, optimizer = create(seed)
            state = nnx.state((model, optimizer))
            specs = nnx.get_partition_spec(state)
            nnx.update((model, optimizer), jax.lax.with_sharding_constraint(state, specs))
            return model, optimizer

        with jax.set_mesh(mesh):
            return build()

    @nnx.jit
    def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
        def loss_fn(model: MLP) -> jax.Array:
            return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    model, optimizer = create_sharded(args.seed)

    # The global batch for a step is defined by the seed and the step; each process
    # materialises only the rows its devices hold (on a real cluster: its data shard).
    data_sharding = NamedSharding(mesh, P("data", None))
    global_shape = (args.batch_size, args.features)
    rows: set[int] = set()
    for index in data_sharding.addressable_devices_indices_map(global_shape).values():
        rows.update(range(*index[0].indices(args.batch_size)))
    start, stop = min(rows), max(rows) + 1
    if rows != set(range(start, stop)):
        log(f"FAILED: this process's rows are not contiguous: {sorted(rows)}")
        return 2
    log(f"feeds rows {start}:{stop} of each global batch of {args.batch_size}")
    true_w = np.random.default_rng(args.seed).normal(size=(args.features, 1)).astype(np.float32)

    def local_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.random.default_rng([args.seed, step]).normal(size=global_shape)
        x = rows[start:stop].astype(np.float32)  # a real loader would read only these
        return x, np.tanh(x @ true_w)

    losses: list[float] = []
    with jax.set_mesh(mesh):
        for step in range(args.steps):
            x_local, y_local = local_batch(step)
            x = jax.make_array_from_process_local_data(data_sharding, x_local, global_shape)
            y = jax.make_array_from_process_local_data(data_sharding, y_local, (args.batch_size, 1))
            loss = train_step(model, optimizer, x, y)
            # The loss is replicated: every process holds the full value.
            losses.append(float(np.asarray(loss.addressable_data(0))))
            if step == 0 or step + 1 == args.steps or (step + 1) % max(1, args.steps // 5) == 0:
                log(f"step {step + 1:4d}  loss {losses[-1]:.6f}")

    # Checkpoint from all processes, restore into a fresh sharded model and optimizer.
    directory = args.checkpoint_dir or os.path.join(tempfile.mkdtemp(), "ckpt")
    nnx.save_checkpoint(directory, model, optimizer)
    log(f"saved a checkpoint to {directory}")
    restored_model, restored_optimizer = create_sharded(args.seed + 1)
    nnx.restore_checkpoint(directory, restored_model, restored_optimizer)

    mismatches = []
    trained = list(nnx.to_flat_state(nnx.state((model, optimizer))))
    restored = list(nnx.to_flat_state(nnx.state((restored_model, restored_optimizer))))
    for (path, a), (_, b) in zip(trained, restored):
        a_value, b_value = a.value, b.value
        if not isinstance(a_value, jax.Array):
            continue
        if a_value.sharding != b_value.sharding and not a_value.sharding.is_equivalent_to(
            b_value.sharding, a_value.ndim
        ):
            mismatches.append(f"{path}: sharding {b_value.sharding} != {a_value.sharding}")
            continue
        for shard_a, shard_b in zip(a_value.addressable_shards, b_value.addressable_shards):
            same = np.array_equal(
                np.asarray(jax.random.key_data(shard_a.data))
                if jnp.issubdtype(shard_a.data.dtype, jax.dtypes.prng_key)
                else np.asarray(shard_a.data),
                np.asarray(jax.random.key_data(shard_b.data))
                if jnp.issubdtype(shard_b.data.dtype, jax.dtypes.prng_key)
                else np.asarray(shard_b.data),
            )
            if not same:
                mismatches.append(f"{path}: shard {shard_a.index} differs after restore")
    if len(trained) != len(restored):
        mismatches.append(f"{len(trained)} Variables saved, {len(restored)} restored")

    if args.losses_file:
        with open(args.losses_file.format(process=rank), "w") as handle:
            json.dump({"process": rank, "processes": count, "losses": losses}, handle)
    failures = [*mismatches]
    if not losses[-1] < losses[0]:
        failures.append(f"loss did not decrease ({losses[0]:.6f} -> {losses[-1]:.6f})")
    for failure in failures:
        log(f"FAILED: {failure}")
    if failures:
        return 1
    log(f"OK: loss {losses[0]:.4f} -> {losses[-1]:.4f}; checkpoint restored shard for shard")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.processes is not None:
        return launch(args, argv)
    return worker(args)


if __name__ == "__main__":
    sys.exit(main())
