"""Metrics: values against numpy, masks, reset, MultiMetric, use inside nnx.jit."""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnx
import nnx_graph
from nnx_optim import metrics


def test_meta_package_exposes_metrics() -> None:
    assert nnx.metrics is metrics
    assert nnx.metrics.Average is metrics.Average


def test_average() -> None:
    avg = metrics.Average()
    assert np.isnan(float(avg.compute()))
    avg.update(values=jnp.array([1.0, 2.0, 3.0]))
    avg.update(values=jnp.array([[4.0, 5.0]]))
    avg.update(values=5)
    assert float(avg.compute()) == pytest.approx(20 / 6)
    assert avg.count.value.dtype == jnp.int32 and avg.total.value.dtype == jnp.float32
    avg.reset()
    assert int(avg.count.value) == 0 and float(avg.total.value) == 0.0


def test_average_mask_and_argname() -> None:
    avg = metrics.Average("loss")
    values = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    avg.update(loss=values, mask=jnp.array([True, False]))  # broadcast over rows
    assert float(avg.compute()) == pytest.approx((1.0 + 3.0) / 2)
    with pytest.raises(TypeError, match="Expected keyword argument 'loss'") as info:
        avg.update(values=values)
    assert "found keywords ['values']" in str(info.value) and "Fix: metric.update(loss=" in str(
        info.value
    )
    with pytest.raises(ValueError, match="If mask is provided, loss should be a jax array") as err:
        avg.update(loss=1.0, mask=jnp.array(True))
    assert "loss=1.0 (a Python float)" in str(err.value) and "Fix:" in str(err.value)
    assert int(avg.count.value) == 2  # the failed updates changed nothing


def test_accuracy_multiclass_and_binary() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=20)
    acc = metrics.Accuracy()
    acc.update(logits=jnp.asarray(logits[:10]), labels=jnp.asarray(labels[:10]))
    acc.update(logits=jnp.asarray(logits[10:]), labels=jnp.asarray(labels[10:]))
    assert float(acc.compute()) == pytest.approx(np.mean(logits.argmax(-1) == labels))

    binary = metrics.Accuracy(threshold=0.5)
    binary.update(logits=jnp.array([0.2, 0.7, 0.9, 0.4]), labels=jnp.array([0, 1, 0, 1]))
    assert float(binary.compute()) == pytest.approx(0.5)

    masked = metrics.Accuracy()
    masked.update(logits=jnp.eye(3), labels=jnp.array([0, 2, 2]), mask=jnp.array([1, 1, 0]))
    assert float(masked.compute()) == pytest.approx(0.5)


def test_accuracy_errors() -> None:
    # Flax's exception types and key phrases, then the shapes found and the fix
    acc = metrics.Accuracy()
    with pytest.raises(ValueError) as info:
        acc.update(logits=jnp.ones(3), labels=jnp.ones(3, jnp.int32))
    message = str(info.value)
    assert "For multi-class classification, expected logits.ndim==labels.ndim+1, got 1 and 1" in (
        message
    )
    assert "logits of shape (3,)" in message and "Accuracy(threshold=0.5)" in message
    binary = metrics.Accuracy(threshold=0.5)
    with pytest.raises(ValueError) as info:
        binary.update(logits=jnp.ones((3, 2)), labels=jnp.ones(3, jnp.int32))
    message = str(info.value)
    assert "For binary classification, expected logits.ndim==labels.ndim, got 2 and 1" in message
    assert "labels of shape (3,)" in message and "Fix:" in message
    with pytest.raises(ValueError, match=r"Expected labels\.dtype==jnp\.int32, got float32"):
        acc.update(logits=jnp.ones((3, 2)), labels=jnp.ones(3))
    with pytest.raises(TypeError, match="Expected threshold to be a float, got <class 'int'>"):
        metrics.Accuracy(threshold=1)  # type: ignore[arg-type]
    assert int(acc.count.value) == 0 and int(binary.count.value) == 0
    with pytest.raises(ValueError, match=r"Expected labels\.dtype==jnp\.int32, got uint8"):
        acc.update(logits=jnp.eye(2), labels=jnp.array([0, 0], jnp.uint8))
    acc.update(logits=jnp.eye(2), labels=np.array([0, 0], np.int64))
    assert float(acc.compute()) == pytest.approx(0.5)


def test_multi_metric_errors_name_the_metric() -> None:
    multi = metrics.MultiMetric(accuracy=metrics.Accuracy(), loss=metrics.Average("loss"))
    with pytest.raises(TypeError) as info:
        multi.update(logits=jnp.eye(2), labels=jnp.array([0, 1]))  # no loss=
    message = str(info.value)
    assert "Expected keyword argument 'loss'" in message
    assert "(in MultiMetric metric 'loss')" in message
    with pytest.raises(ValueError, match="in MultiMetric metric 'accuracy'"):
        multi.update(logits=jnp.ones(2), labels=jnp.array([0, 1]), loss=1.0)


def test_multi_metric_follows_flax_interface() -> None:
    multi = metrics.MultiMetric(accuracy=metrics.Accuracy(), loss=metrics.Average("loss"))
    assert multi._metric_names == ("accuracy", "loss")
    assert isinstance(multi.accuracy, metrics.Accuracy)
    graphdef, state = multi.split()
    assert set(state.flat_state().paths) == {
        ("accuracy", "count"),
        ("accuracy", "total"),
        ("loss", "count"),
        ("loss", "total"),
    }
    merged: tp.Any = nnx_graph.merge(graphdef, state)
    merged.update(logits=jnp.eye(2), labels=jnp.array([0, 0]), loss=jnp.array(3.0))
    assert {k: float(v) for k, v in merged.compute().items()} == {"accuracy": 0.5, "loss": 3.0}
    stats = metrics.Welford()
    stats.update(values=jnp.arange(4.0))
    result = stats.compute()
    assert float(result.replace(mean=jnp.array(0.0)).mean) == 0.0
    assert float(result.mean) == pytest.approx(1.5)


def test_welford_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.normal(3.0, 2.0, size=n).astype(np.float32) for n in (5, 17, 1, 40)]
    welford = metrics.Welford()
    for chunk in chunks:
        welford.update(values=jnp.asarray(chunk))
    welford.update(values=2.5)
    everything = np.concatenate([*chunks, [2.5]])
    stats = welford.compute()
    assert float(stats.mean) == pytest.approx(everything.mean(), rel=1e-5)
    assert float(stats.standard_deviation) == pytest.approx(everything.std(), rel=1e-5)
    assert float(stats.standard_error_of_mean) == pytest.approx(
        everything.std() / np.sqrt(everything.size), rel=1e-5
    )
    welford.reset()
    assert int(welford.count.value) == 0


def test_multi_metric() -> None:
    multi = metrics.MultiMetric(accuracy=metrics.Accuracy(), loss=metrics.Average("loss"))
    logits = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    multi.update(
        logits=logits,
        labels=jnp.array([1, 1, 1]),
        loss=jnp.array([1.0, 2.0, 3.0]),
        mask={"accuracy": jnp.array([1, 1, 0])},
    )
    result = multi.compute()
    assert float(result["accuracy"]) == pytest.approx(0.5)
    assert float(result["loss"]) == pytest.approx(2.0)
    assert sorted(nnx_graph.state(multi, metrics.MetricState).to_pure_dict()) == [
        "accuracy",
        "loss",
    ]
    multi.reset()
    assert all(np.isnan(float(v)) for v in multi.compute().values())
    with pytest.raises(ValueError, match="clash with its methods"):
        metrics.MultiMetric(update=metrics.Average())


def test_custom_metric_base_class() -> None:
    with pytest.raises(NotImplementedError):
        metrics.Metric()
    graphdef, state = metrics.Average().split()
    assert isinstance(graphdef, nnx_graph.GraphDef) and set(state) == {"count", "total"}


def test_metrics_inside_nnx_jit() -> None:
    multi = metrics.MultiMetric(
        loss=metrics.Average("loss"), stats=metrics.Welford("loss"), accuracy=metrics.Accuracy()
    )

    @nnx.jit
    def eval_step(multi: metrics.MultiMetric, logits: jax.Array, labels: jax.Array) -> None:
        loss = jnp.mean((logits.argmax(-1) - labels) ** 2, dtype=jnp.float32)
        multi.update(loss=loss, logits=logits, labels=labels)

    rng = np.random.default_rng(2)
    losses, correct = [], []
    for _ in range(4):
        logits = rng.normal(size=(8, 3)).astype(np.float32)
        labels = rng.integers(0, 3, size=8)
        eval_step(multi, jnp.asarray(logits), jnp.asarray(labels))
        losses.append(np.mean((logits.argmax(-1) - labels) ** 2))
        correct.append(logits.argmax(-1) == labels)
    result = multi.compute()
    assert float(result["loss"]) == pytest.approx(np.mean(losses), rel=1e-6)
    assert float(result["stats"].mean) == pytest.approx(np.mean(losses), rel=1e-6)
    assert float(result["accuracy"]) == pytest.approx(np.mean(correct))
    assert int(multi.loss.count.value) == 4


def test_metric_state_flows_through_split_merge() -> None:
    avg = metrics.Average()
    avg.update(values=jnp.array([2.0, 4.0]))
    graphdef, state = nnx_graph.split(avg)
    clone: tp.Any = nnx_graph.merge(graphdef, state, copy=True)
    clone.update(values=jnp.array([6.0]))
    assert float(clone.compute()) == pytest.approx(4.0)
    assert float(avg.compute()) == pytest.approx(3.0)
