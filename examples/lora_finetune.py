"""LoRA fine-tuning: adapt a pretrained MLP to a new domain, training only the adapters.

Shows model surgery and filtered optimisation with nnx:

- pretrain an MLP of ``nnx.Linear`` layers on scikit-learn's 8x8 digits (shipped with
  scikit-learn, no download);
- the new domain is the same digits mirrored left-to-right, where the pretrained model
  does poorly;
- surgery by plain attribute assignment: every ``Linear`` is wrapped in
  ``nnx.LoRA(..., base_module=linear)``, which adds ``nnx.LoRAParam`` Variables
  (``lora_b`` starts at zero, so the model's outputs are unchanged by the surgery);
- ``nnx.Optimizer(model, tx, wrt=nnx.LoRAParam)`` and
  ``nnx.value_and_grad(..., argnums=nnx.DiffState(0, nnx.LoRAParam))`` fine-tune ONLY
  the adapters; ``LoRAParam`` is a ``Param`` subclass, so the base weights are selected
  with ``nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))`` and checked to be bit-identical
  after fine-tuning.

Full size (about a minute on 2 CPU cores; checks that mirrored-digit test accuracy
rises above 0.9 with the base weights unchanged)::

    python examples/lora_finetune.py

CI size (a few seconds; checks the fine-tuning loss went down, base weights unchanged)::

    python examples/lora_finetune.py --small
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nnx

BaseParams = nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))  # the pretrained weights


class MLP(nnx.Module):
    """``(batch, 64)`` flattened images -> ``(batch, 10)`` logits."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(64, hidden, rngs=rngs)
        self.linear2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.linear3 = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.linear1(x))
        x = nnx.relu(self.linear2(x))
        return self.linear3(x)


def loss_fn(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@nnx.jit(static_argnames="wrt")
def train_step(
    model: MLP, optimizer: nnx.Optimizer, images: jax.Array, labels: jax.Array, wrt
) -> jax.Array:
    # Differentiate only w.r.t. the Variables the optimizer trains.
    grad_fn = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt))
    loss, grads = grad_fn(model, images, labels)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def accuracy(model: MLP, images: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(model(images), axis=-1) == labels)


def train(model, optimizer, wrt, x, y, epochs, batch_size, seed, name) -> list[float]:
    shuffle = np.random.default_rng(seed)
    steps = len(x) // batch_size
    epoch_losses = []
    for epoch in range(1, epochs + 1):
        order = shuffle.permutation(len(x))
        losses = [
            train_step(model, optimizer, x[batch], y[batch], wrt)
            for batch in np.split(order[: steps * batch_size], steps)
        ]
        epoch_losses.append(float(jnp.mean(jnp.stack(losses))))
        if epoch == 1 or epoch == epochs or epoch % max(1, epochs // 5) == 0:
            print(f"{name} epoch {epoch:3d}/{epochs}  loss {epoch_losses[-1]:.4f}")
    return epoch_losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced size for CI")
    parser.add_argument("--epochs", type=int, default=None, help="default 30 (3 --small)")
    parser.add_argument("--lora-epochs", type=int, default=None, help="default 40 (3 --small)")
    parser.add_argument("--hidden", type=int, default=None, help="default 256 (32 --small)")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lora-lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.small else 30)
    lora_epochs = args.lora_epochs or (3 if args.small else 40)
    hidden = args.hidden or (32 if args.small else 256)
    start = time.perf_counter()

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, random_state=args.seed, stratify=labels
    )
    flat = lambda imgs: imgs.reshape(len(imgs), -1)
    mirror = lambda imgs: flat(imgs[:, :, ::-1])  # the new domain: left-right mirrored
    x_train, x_test, m_train, m_test = flat(x_train), flat(x_test), mirror(x_train), mirror(x_test)

    # 1. Pretrain every Param on the original digits.
    rngs = nnx.Rngs(params=args.seed)
    model = MLP(hidden, rngs=rngs)
    optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
    train(model, optimizer, nnx.Param, x_train, y_train, epochs, args.batch_size, 0, "pretrain")
    pre_acc = float(accuracy(model, x_test, y_test))
    pre_mirror_acc = float(accuracy(model, m_test, y_test))
    print(f"pretrained: test accuracy {pre_acc:.3f}, on mirrored digits {pre_mirror_acc:.3f}")

    # 2. Surgery: wrap each Linear in a LoRA adapter (its base_module keeps the weights).
    probe = x_test[:8]
    before_surgery = model(probe)
    for name in ("linear1", "linear2", "linear3"):
        linear = getattr(model, name)
        adapter = nnx.LoRA(
            linear.in_features, args.rank, linear.out_features, base_module=linear, rngs=rngs
        )
        setattr(model, name, adapter)
    assert jnp.allclose(model(probe), before_surgery, atol=1e-6), "lora_b starts at zero"
    base_before = jax.tree.map(jnp.copy, nnx.state(model, BaseParams))
    num_base = sum(p.size for p in jax.tree.leaves(base_before))
    num_lora = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.LoRAParam)))
    print(f"LoRA surgery: {num_lora:,} trainable LoRAParam values, {num_base:,} frozen base")

    # 3. Fine-tune ONLY the LoRAParam Variables on the mirrored digits.
    lora_optimizer = nnx.Optimizer(model, optax.adam(args.lora_lr), wrt=nnx.LoRAParam)
    lora_losses = train(
        model, lora_optimizer, nnx.LoRAParam, m_train, y_train, lora_epochs,
        args.batch_size, 1, "lora",
    )  # fmt: skip
    lora_mirror_acc = float(accuracy(model, m_test, y_test))
    lora_acc = float(accuracy(model, x_test, y_test))
    print(
        f"LoRA fine-tuned: mirrored-digit test accuracy {pre_mirror_acc:.3f} -> "
        f"{lora_mirror_acc:.3f} (original digits: {lora_acc:.3f})"
    )

    # 4. The base weights must be exactly what pretraining left.
    base_after = nnx.state(model, BaseParams)
    unchanged = jax.tree.map(
        lambda a, b: bool(jnp.array_equal(a, b)), base_before, base_after
    )  # a State of bools, one per base weight
    all_unchanged = all(jax.tree.leaves(unchanged))
    print(f"base weights bit-identical after fine-tuning: {all_unchanged}")
    for path, same in nnx.to_flat_state(unchanged):
        print(f"    {'.'.join(map(str, path))}: {'unchanged' if same else 'CHANGED'}")
    print(f"total time {time.perf_counter() - start:.1f} s")

    failures = []
    if not all_unchanged:
        failures.append("fine-tuning changed base weights")
    if int(lora_optimizer.step.value) != lora_epochs * (len(m_train) // args.batch_size):
        failures.append(f"unexpected LoRA optimizer step {int(lora_optimizer.step.value)}")
    if not lora_losses[-1] < lora_losses[0]:
        failures.append(
            f"LoRA loss did not decrease ({lora_losses[0]:.4f} -> {lora_losses[-1]:.4f})"
        )
    if not args.small and lora_mirror_acc < args.min_accuracy:
        failures.append(f"mirrored accuracy {lora_mirror_acc:.3f} < {args.min_accuracy}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        return 1
    print(
        f"OK: only LoRAParams trained (loss {lora_losses[0]:.4f} -> {lora_losses[-1]:.4f}), "
        f"mirrored accuracy {pre_mirror_acc:.3f} -> {lora_mirror_acc:.3f}, base unchanged"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
