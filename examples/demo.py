"""The nnx demo: train a handwritten-digit classifier written in the seed's style.

What it shows, end to end, with ``import nnx`` only:

* a custom ``Linear`` Module holding ``nnx.Param`` Variables, eager init with
  ``nnx.Rngs``; ``nnx.BatchNorm``, ``nnx.Dropout`` and ``nnx.gelu`` from the layers;
* an ``@nnx.jit`` train step that calls ``nnx.value_and_grad`` and the seed-era
  ``optimizer.update(grads)`` (the optimizer holds the model: shared reference);
* LoRA surgery by attribute assignment, then fine-tuning only the ``LoraParam``
  Variables with ``nnx.ModelAndOptimizer(model, tx, wrt=LoraParam)`` (an optimizer
  that holds its model, so the same ``optimizer.update(grads)`` step trains it);
* a checkpoint saved after every epoch that ``--resume`` continues from;
* a training-curve PNG and the model rendered to a standalone HTML page.

The data set is scikit-learn's handwritten digits (8x8 images, 1,797 samples), which
ships inside the scikit-learn package: nothing is downloaded.

Run it with ``nox -s demo`` (or ``python examples/demo.py``). Outputs go to
``out/demo/``: ``checkpoint/``, ``training_curve.png``, ``model.html``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nnx

# --------------------------------------------------------------------- the model
# Written the way the seed writes it: plain Python classes holding Variables.


class Linear(nnx.Module):
    def __init__(self, fin: int, fout: int, *, rngs: nnx.Rngs):
        key = rngs.params()
        limit = jnp.sqrt(6.0 / (fin + fout))  # Glorot-uniform scale
        self.w = nnx.Param(jax.random.uniform(key, (fin, fout), minval=-limit, maxval=limit))
        self.b = nnx.Param(jnp.zeros((fout,)))
        self.din, self.dout = fin, fout

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.dot(x, self.w) + self.b


class MLP(nnx.Module):
    def __init__(self, fin: int, hidden: int, fout: int, *, rngs: nnx.Rngs):
        self.linear1 = Linear(fin, hidden, rngs=rngs)
        self.bn = nnx.BatchNorm(hidden, rngs=rngs)
        self.dropout = nnx.Dropout(rate=0.2, rngs=rngs)
        self.linear2 = Linear(hidden, fout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.gelu(self.dropout(self.bn(self.linear1(x))))
        return self.linear2(x)


class LoraParam(nnx.Param):
    """The only Variables trained in the fine-tuning phase."""


class LoraLinear(nnx.Module):
    def __init__(self, linear: Linear, rank: int, *, rngs: nnx.Rngs):
        self.linear = linear
        self.A = LoraParam(jax.random.normal(rngs(), (linear.din, rank)) / jnp.sqrt(linear.din))
        # B starts at zero so the surgery does not change the model's predictions.
        self.B = LoraParam(jnp.zeros((rank, linear.dout)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear(x) + x @ self.A @ self.B


def lora_surgery(model: MLP, rank: int, rngs: nnx.Rngs) -> None:
    model.linear1 = LoraLinear(model.linear1, rank, rngs=rngs)
    model.linear2 = LoraLinear(model.linear2, rank, rngs=rngs)


# --------------------------------------------------------------------- training
def loss_fn(model: MLP, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(x)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, logits


@nnx.jit
def train_step(model: MLP, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array) -> jax.Array:
    (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
    optimizer.update(grads)  # the optimizer updates the model it holds
    return loss


@nnx.jit
def eval_step(model: MLP, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss, logits = loss_fn(model, x, y)
    return loss, (logits.argmax(-1) == y).mean()


def evaluate(model: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    model.eval()  # BatchNorm uses running statistics, Dropout is off
    loss, accuracy = eval_step(model, jnp.asarray(x), jnp.asarray(y))
    model.train()
    return float(loss), float(accuracy)


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


# --------------------------------------------------------------------- checkpoints
def save(directory: Path, model: MLP, optimizer: nnx.Optimizer, progress: dict) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    nnx.save_checkpoint(tmp / "state", model, optimizer)
    (tmp / "progress.json").write_text(json.dumps(progress))
    # Replace the previous checkpoint only once the new one is complete.
    if directory.exists():
        shutil.rmtree(directory)
    tmp.rename(directory)


def build(phase: str, args: argparse.Namespace) -> tuple[MLP, nnx.Optimizer]:
    """Model + optimizer for a phase, structured exactly as that phase trains them."""
    rngs = nnx.Rngs(params=args.seed, dropout=args.seed + 1)
    model = MLP(64, args.hidden, 10, rngs=rngs)
    if phase == "pretrain":
        return model, nnx.Optimizer(model, optax.adam(args.lr))
    lora_surgery(model, args.rank, nnx.Rngs(args.seed + 2))
    return model, nnx.ModelAndOptimizer(model, optax.adam(args.lr), wrt=LoraParam)


# --------------------------------------------------------------------- main
class Interrupted(Exception):
    """Raised by --stop-after to simulate an interrupted run."""


_epochs_this_run = 0


def run_phase(
    phase: str,
    model: MLP,
    optimizer: nnx.Optimizer,
    data: tuple[np.ndarray, ...],
    args: argparse.Namespace,
    history: list[dict],
    start_epoch: int,
    epochs: int,
) -> None:
    from tqdm import tqdm

    x_train, y_train, x_test, y_test = data
    global _epochs_this_run
    steps = len(x_train) // args.batch_size
    shuffle = np.random.default_rng(args.seed + 17)
    for _ in range(start_epoch):  # keep the data order identical after --resume
        shuffle.permutation(len(x_train))
    for epoch in range(start_epoch, epochs):
        order = shuffle.permutation(len(x_train))
        losses = []
        bar = tqdm(
            range(steps),
            desc=f"{phase} epoch {epoch + 1}/{epochs}",
            leave=False,
            file=sys.stdout,
            disable=args.no_progress,
        )
        for step in bar:
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            loss = train_step(
                model, optimizer, jnp.asarray(x_train[batch]), jnp.asarray(y_train[batch])
            )
            losses.append(loss)
            if step % 5 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}")
        train_loss = float(jnp.mean(jnp.stack(losses)))
        _, train_acc = evaluate(model, x_train, y_train)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        history.append(
            dict(
                phase=phase,
                epoch=epoch + 1,
                train_loss=train_loss,
                train_acc=train_acc,
                test_loss=test_loss,
                test_acc=test_acc,
            )
        )
        print(
            f"{phase:9s} epoch {epoch + 1:2d}/{epochs}  loss {train_loss:.4f}  "
            f"train acc {train_acc:.3f}  test loss {test_loss:.4f}  test acc {test_acc:.3f}  "
            f"(optimizer step {int(optimizer.step.value)})"
        )
        save(
            args.out / "checkpoint",
            model,
            optimizer,
            dict(phase=phase, epoch=epoch + 1, history=history),
        )
        _epochs_this_run += 1
        if args.stop_after is not None and _epochs_this_run >= args.stop_after:
            raise Interrupted


def plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(xs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(xs, [h["test_loss"] for h in history], label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(xs, [h["train_acc"] for h in history], label="train")
    ax_acc.plot(xs, [h["test_acc"] for h in history], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    boundary = sum(h["phase"] == "pretrain" for h in history)
    for ax in (ax_loss, ax_acc):
        if 0 < boundary < len(history):
            ax.axvline(boundary + 0.5, color="gray", linestyle="--", label="LoRA surgery")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except Interrupted:
        print("stopped early (--stop-after); continue with --resume")
        return 0


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="pre-training epochs")
    parser.add_argument("--lora-epochs", type=int, default=5, help="LoRA fine-tuning epochs")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument(
        "--resume", action="store_true", help="continue from out/demo/checkpoint if it exists"
    )
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="N",
        help="stop after N epochs in this run (simulates an interruption; continue with --resume)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"nnx {nnx.__version__} | jax {jax.__version__} on {jax.devices()[0].platform}")

    data = load_data(args.seed)
    print(f"digits: {len(data[0])} train / {len(data[2])} test images of 8x8 pixels")

    history: list[dict] = []
    phase, done = "pretrain", 0
    checkpoint = args.out / "checkpoint"
    if args.resume and checkpoint.exists():
        progress = json.loads((checkpoint / "progress.json").read_text())
        phase, done, history = progress["phase"], progress["epoch"], progress["history"]
        model, optimizer = build(phase, args)
        nnx.restore_checkpoint(checkpoint / "state", model, optimizer)
        print(
            f"resumed from {checkpoint}: phase {phase}, epoch {done}, "
            f"optimizer step {int(optimizer.step.value)}"
        )
    else:
        model, optimizer = build("pretrain", args)

    if phase == "pretrain":
        run_phase("pretrain", model, optimizer, data, args, history, done, args.epochs)
        _, base_acc = evaluate(model, data[2], data[3])
        print(f"after pre-training: test accuracy {base_acc:.3f}")
        # Model surgery: wrap both linears, then train only the LoRA Variables.
        lora_surgery(model, args.rank, nnx.Rngs(args.seed + 2))
        optimizer = nnx.ModelAndOptimizer(model, optax.adam(args.lr), wrt=LoraParam)
        _, surgery_acc = evaluate(model, data[2], data[3])
        print(f"after LoRA surgery (B = 0): test accuracy {surgery_acc:.3f}")
        phase, done = "lora", 0

    base_params = nnx.All(nnx.Param, nnx.Not(LoraParam))
    frozen_before = jax.tree.map(jnp.copy, nnx.state(model, base_params).to_pure_dict())
    run_phase("lora", model, optimizer, data, args, history, done, args.lora_epochs)
    frozen_after = nnx.state(model, base_params).to_pure_dict()
    base_params_frozen = all(
        bool(jnp.array_equal(a, b))
        for a, b in zip(jax.tree.leaves(frozen_before), jax.tree.leaves(frozen_after))
    )

    test_loss, test_acc = evaluate(model, data[2], data[3])
    lora_count = sum(v.size for v in jax.tree.leaves(nnx.state(model, LoraParam)))
    base_count = sum(v.size for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    plot(history, args.out / "training_curve.png")
    nnx.save_html(model, args.out / "model.html")
    print(
        f"LoRA parameters trained: {lora_count:,} of {base_count:,} parameters; "
        f"base parameters unchanged: {base_params_frozen}"
    )
    print(f"final test accuracy: {test_acc:.4f} (loss {test_loss:.4f})")
    digest = sum(float(jnp.sum(jnp.abs(v))) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    print(f"state checksum: {digest:.6f}")
    print(
        f"wrote {args.out / 'checkpoint'}, {args.out / 'training_curve.png'}, "
        f"{args.out / 'model.html'}"
    )
    print(f"total time {time.perf_counter() - start:.1f} s")
    if test_acc < args.min_accuracy:
        print(f"FAILED: test accuracy {test_acc:.4f} < {args.min_accuracy}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
