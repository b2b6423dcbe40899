"""Checkpoint a model and its optimizer, restore into an abstract model, keep training.

Shows how training state round-trips through orbax-checkpoint with nnx:

- the state to save is everything a run needs to continue exactly: Params, BatchNorm
  statistics (``nnx.BatchStat``), the Dropout RNG stream (``RngKey``/``RngCount``), the
  optimizer's optax state and its step counter;
- ``nnx.save_checkpoint(path, model, optimizer)`` writes them together (the model the
  optimizer references is stored once);
- the restore target is *abstract*: built with ``nnx.eval_shape``, so no parameter is
  initialised just to be overwritten; ``nnx.restore_checkpoint`` fills it in;
- the same with plain orbax and the Flax-style pure dict
  (``nnx.state`` -> ``nnx.to_pure_dict`` -> ``StandardCheckpointer`` ->
  ``nnx.replace_by_pure_dict`` + ``nnx.update``);
- checks: restored values are bit-identical, the step count matches, and training the
  original and the restored copy on the same batches stays bit-identical (same dropout
  masks, same Adam moments).

Full size (a few seconds more than --small)::

    python examples/checkpoint_restore.py

CI size::

    python examples/checkpoint_restore.py --small
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

import nnx


class Regressor(nnx.Module):
    """``(batch, features)`` -> ``(batch, 1)``, with BatchNorm and Dropout state."""

    def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(features, hidden, rngs=rngs)
        self.norm = nnx.BatchNorm(hidden, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)
        self.linear2 = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear2(self.dropout(nnx.relu(self.norm(self.linear1(x)))))


@nnx.jit
def train_step(model: Regressor, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
    def loss_fn(model: Regressor) -> jax.Array:
        return jnp.mean((model(x) - y) ** 2)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def same_values(a, b) -> bool:
    """True when two States hold bit-identical leaves (PRNG keys compared by their data)."""
    unwrap = lambda v: jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        jnp.array_equal(unwrap(x), unwrap(y)) and x.dtype == y.dtype
        for x, y in zip(leaves_a, leaves_b)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced size for CI")
    parser.add_argument("--steps", type=int, default=None, help="default 300 (20 --small)")
    parser.add_argument("--hidden", type=int, default=None, help="default 256 (16 --small)")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args(argv)
    steps = args.steps or (20 if args.small else 300)
    hidden = args.hidden or (16 if args.small else 256)
    start = time.perf_counter()

    data = np.random.default_rng(args.seed)
    true_w = data.normal(size=(args.features, 1)).astype(np.float32)
    batches = []
    for _ in range(2 * steps):
        x = data.normal(size=(args.batch_size, args.features)).astype(np.float32)
        batches.append((x, np.sin(x @ true_w) + 0.05 * data.normal(size=(args.batch_size, 1))))

    tx = optax.adam(1e-3)

    def create() -> tuple[Regressor, nnx.Optimizer]:
        model = Regressor(args.features, hidden, rngs=nnx.Rngs(params=args.seed, dropout=1))
        return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

    # 1. Train for `steps` steps, then save model + optimizer together.
    model, optimizer = create()
    for step, (x, y) in enumerate(batches[:steps], 1):
        loss = train_step(model, optimizer, x, y)
        if step == 1 or step % max(1, steps // 4) == 0:
            print(f"step {step:4d}  loss {float(loss):.4f}")
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="nnx_checkpoint_"))
    checkpoint = workdir / f"step_{steps}"
    nnx.save_checkpoint(checkpoint, model, optimizer, overwrite=True)
    print(f"saved model + optimizer at step {int(optimizer.step.value)} to {checkpoint}")

    # 2. Restore into an abstract model/optimizer: eval_shape builds the structure with
    #    jax.ShapeDtypeStruct leaves, without initialising any weights.
    abstract_model, abstract_optimizer = nnx.eval_shape(create)
    print(f"abstract kernel before restore: {abstract_model.linear1.kernel.value}")
    restored_model, restored_optimizer = nnx.restore_checkpoint(
        checkpoint, abstract_model, abstract_optimizer
    )
    print(
        f"restored: kernel {restored_model.linear1.kernel.value.shape} "
        f"{restored_model.linear1.kernel.value.dtype}, step "
        f"{int(restored_optimizer.step.value)}"
    )
    restored_equal = same_values(nnx.state(model), nnx.state(restored_model)) and same_values(
        nnx.state(optimizer), nnx.state(restored_optimizer)
    )
    step_matches = int(restored_optimizer.step.value) == int(optimizer.step.value) == steps
    print(f"restored state bit-identical: {restored_equal}; step matches: {step_matches}")

    # 3. Continue training the original and the restored copy on the same batches.
    for x, y in batches[steps:]:
        loss = train_step(model, optimizer, x, y)
        restored_loss = train_step(restored_model, restored_optimizer, x, y)
    continued_equal = (
        same_values(nnx.state(model), nnx.state(restored_model))
        and same_values(nnx.state(optimizer), nnx.state(restored_optimizer))
        and float(loss) == float(restored_loss)
    )
    print(
        f"after {steps} more steps: loss {float(loss):.4f} vs restored {float(restored_loss):.4f}; "
        f"states bit-identical: {continued_equal}; steps {int(optimizer.step.value)} / "
        f"{int(restored_optimizer.step.value)}"
    )

    # 4. The same with plain orbax and a pure dict of the model's State (Flax style).
    checkpointer = ocp.StandardCheckpointer()
    pure_path = (workdir / "pure_model").absolute()
    checkpointer.save(pure_path, nnx.to_pure_dict(nnx.state(model, nnx.Param)), force=True)
    checkpointer.wait_until_finished()
    fresh_model, _ = create()
    params = nnx.state(fresh_model, nnx.Param)
    nnx.replace_by_pure_dict(params, checkpointer.restore(pure_path))
    nnx.update(fresh_model, params)
    checkpointer.close()
    pure_equal = same_values(nnx.state(model, nnx.Param), nnx.state(fresh_model, nnx.Param))
    print(f"plain orbax pure-dict round trip of the Params bit-identical: {pure_equal}")
    if args.dir is None:
        shutil.rmtree(workdir)  # the temporary directory; a --dir is kept
    print(f"total time {time.perf_counter() - start:.1f} s")

    failures = [
        what
        for what, ok in [
            ("restored state differs from the saved one", restored_equal),
            ("restored step count differs", step_matches),
            ("continued training diverged from the original", continued_equal),
            (
                "step count after continuing differs",
                int(restored_optimizer.step.value) == 2 * steps,
            ),
            ("plain orbax round trip differs", pure_equal),
        ]
        if not ok
    ]
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        return 1
    print(
        f"OK: checkpoint restored bit-identical at step {steps}; continued training "
        f"bit-identical to step {2 * steps}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
