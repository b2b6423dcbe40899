"""A small CNN classifying scikit-learn's handwritten digits.

Shows a complete supervised training loop written with nnx:

- a Module built from ``nnx.Conv``, ``nnx.BatchNorm``, ``nnx.avg_pool``,
  ``nnx.Dropout`` and ``nnx.Linear`` (eager init, explicit ``nnx.Rngs`` streams
  ``params`` and ``dropout``);
- ``nnx.Optimizer(model, optax.adamw(...), wrt=nnx.Param)`` and an ``@nnx.jit`` train
  step that updates Params, BatchNorm statistics and the Dropout RNG in place;
- ``nnx.metrics.MultiMetric`` with ``Accuracy`` and ``Average`` accumulated inside a
  jitted eval step;
- ``model.train()`` / ``model.eval()`` to switch Dropout and BatchNorm between training
  and inference behaviour.

The data are scikit-learn's 8x8 digits (1,797 images, 10 classes), which ship inside
the scikit-learn package (no download).

Full size (about a minute on 2 CPU cores; checks test accuracy >= 0.95)::

    python examples/cnn_digits.py

CI size (a few seconds; checks that the training loss went down)::

    python examples/cnn_digits.py --small
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nnx


class CNN(nnx.Module):
    """Two conv blocks, 2x2 average pooling, then a dropout + linear classifier.

    Input ``(batch, 8, 8, 1)`` grey-scale images; output ``(batch, 10)`` logits.
    """

    def __init__(self, features: int, num_classes: int, *, dropout: float, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, features, kernel_size=(3, 3), rngs=rngs)
        self.bn1 = nnx.BatchNorm(features, rngs=rngs)
        self.conv2 = nnx.Conv(features, 2 * features, kernel_size=(3, 3), rngs=rngs)
        self.bn2 = nnx.BatchNorm(2 * features, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(4 * 4 * 2 * features, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn1(self.conv1(x)))  # (B, 8, 8, F)
        x = nnx.relu(self.bn2(self.conv2(x)))  # (B, 8, 8, 2F)
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))  # (B, 4, 4, 2F)
        x = x.reshape(x.shape[0], -1)
        return self.head(self.dropout(x))


def loss_fn(model: CNN, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, logits


@nnx.jit
def train_step(
    model: CNN,
    optimizer: nnx.Optimizer,
    metrics: nnx.metrics.MultiMetric,
    images: jax.Array,
    labels: jax.Array,
) -> jax.Array:
    grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
    (loss, logits), grads = grad_fn(model, images, labels)
    metrics.update(loss=loss, logits=logits, labels=labels)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def eval_step(
    model: CNN, metrics: nnx.metrics.MultiMetric, images: jax.Array, labels: jax.Array
) -> None:
    loss, logits = loss_fn(model, images, labels)
    metrics.update(loss=loss, logits=logits, labels=labels)


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1) in [0, 1]
    labels = digits.target.astype(np.int32)
    return train_test_split(images, labels, test_size=0.25, random_state=seed, stratify=labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="reduced size for CI")
    parser.add_argument("--epochs", type=int, default=None, help="default 20 (3 with --small)")
    parser.add_argument("--features", type=int, default=None, help="default 32 (8 with --small)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-accuracy", type=float, default=0.95)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.small else 20)
    features = args.features or (8 if args.small else 32)
    start = time.perf_counter()

    x_train, x_test, y_train, y_test = load_data(args.seed)
    print(f"digits: {len(x_train)} train / {len(x_test)} test images of shape {x_train.shape[1:]}")

    model = CNN(features, 10, dropout=args.dropout, rngs=nnx.Rngs(params=args.seed, dropout=1))
    optimizer = nnx.Optimizer(model, optax.adamw(args.lr, weight_decay=1e-4), wrt=nnx.Param)
    metrics = nnx.metrics.MultiMetric(
        accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss")
    )
    num_params = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    print(f"model: {num_params:,} parameters, {epochs} epochs, batch {args.batch_size}")

    shuffle = np.random.default_rng(args.seed)
    steps = len(x_train) // args.batch_size  # drop the ragged last batch: one compiled shape
    history = []
    for epoch in range(1, epochs + 1):
        model.train()  # Dropout active, BatchNorm uses and updates batch statistics
        metrics.reset()
        order = shuffle.permutation(len(x_train))
        for step in range(steps):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            train_step(model, optimizer, metrics, x_train[batch], y_train[batch])
        train = {k: float(v) for k, v in metrics.compute().items()}

        model.eval()  # Dropout off, BatchNorm uses its running averages
        metrics.reset()
        eval_step(model, metrics, x_test, y_test)
        test = {k: float(v) for k, v in metrics.compute().items()}
        history.append((train, test))
        print(
            f"epoch {epoch:2d}/{epochs}  train loss {train['loss']:.4f}  "
            f"train acc {train['accuracy']:.3f}  test loss {test['loss']:.4f}  "
            f"test acc {test['accuracy']:.3f}  (step {int(optimizer.step.value)})"
        )

    first_loss, last_loss = history[0][0]["loss"], history[-1][0]["loss"]
    test_accuracy = history[-1][1]["accuracy"]
    print(f"final test accuracy: {test_accuracy:.4f}")
    print(f"total time {time.perf_counter() - start:.1f} s")
    assert int(optimizer.step.value) == epochs * steps, optimizer.step.value
    if args.small:
        if not last_loss < first_loss:
            print(f"FAILED: training loss did not decrease ({first_loss:.4f} -> {last_loss:.4f})")
            return 1
        print(f"OK: training loss decreased {first_loss:.4f} -> {last_loss:.4f}")
    else:
        if test_accuracy < args.min_accuracy:
            print(f"FAILED: test accuracy {test_accuracy:.4f} < {args.min_accuracy}")
            return 1
        print(f"OK: test accuracy {test_accuracy:.4f} >= {args.min_accuracy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
