"""Metrics: running statistics whose state lives in ``MetricState`` Variables.

Each metric is a graph node, so it can be passed to ``nnx.jit`` (its Variables are
updated in place like a model's) and checkpointed.  ``update`` accumulates,
``compute`` reads the result, ``reset`` starts over.
"""

from __future__ import annotations

import dataclasses
import typing as tp

import jax
import jax.numpy as jnp

import nnx_graph

__all__ = [
    "Accuracy",
    "Average",
    "Metric",
    "MetricState",
    "MultiMetric",
    "Statistics",
    "Welford",
]

A = tp.TypeVar("A")


class MetricState(nnx_graph.Variable[A]):
    """The Variable type holding a metric's accumulators.

    Example::

        >>> import nnx_graph, nnx_optim
        >>> avg = nnx_optim.metrics.Average()
        >>> sorted(nnx_graph.state(avg, nnx_optim.metrics.MetricState))
        ['count', 'total']
    """

    __slots__ = ()


class Metric(nnx_graph.Pytree):
    """Base class of metrics: subclasses implement ``__init__``, ``reset``,
    ``update(**kwargs)`` and ``compute``, keeping their state in
    :class:`MetricState` Variables.

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> class Maximum(nnx_optim.metrics.Metric):
        ...     def __init__(self):
        ...         self.best = nnx_optim.metrics.MetricState(jnp.array(-jnp.inf))
        ...     def reset(self):
        ...         self.best.value = jnp.array(-jnp.inf)
        ...     def update(self, *, values, **_):
        ...         self.best.value = jnp.maximum(self.best.value, jnp.max(values))
        ...     def compute(self):
        ...         return self.best.value
        >>> m = Maximum(); m.update(values=jnp.array([1.0, 3.0])); float(m.compute())
        3.0
    """

    def __init__(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must override __init__().")

    def reset(self) -> None:
        """Return to the initial (empty) state."""
        raise NotImplementedError(f"{type(self).__name__} must override reset().")

    def update(self, **kwargs: tp.Any) -> None:
        """Accumulate a batch of values (in place)."""
        raise NotImplementedError(f"{type(self).__name__} must override update().")

    def compute(self) -> tp.Any:
        """The metric's value over everything accumulated since the last reset."""
        raise NotImplementedError(f"{type(self).__name__} must override compute().")

    def split(self, *filters: tp.Any) -> tuple[tp.Any, ...]:
        """``nnx.split(self, *filters)``."""
        return nnx_graph.split(self, *filters)


def _argument(metric: Metric, argname: str, kwargs: dict[str, tp.Any]) -> tp.Any:
    if argname not in kwargs:
        raise TypeError(
            f"Expected keyword argument {argname!r}: {type(metric).__name__}.update reads "
            f"the values from {argname}=...; found keywords {sorted(kwargs) or 'none'}."
            f"\nFix: metric.update({argname}=...), or construct it with "
            f"{type(metric).__name__}(argname=...) to read another keyword."
        )
    return kwargs[argname]


class Average(Metric):
    """The mean of every value passed to ``update`` (arrays count element-wise).

    Arguments:
        argname: the keyword of ``update`` holding the values (default ``'values'``).

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> avg = nnx_optim.metrics.Average()
        >>> avg.update(values=jnp.array([1.0, 2.0, 3.0]))
        >>> avg.update(values=6.0)
        >>> float(avg.compute())
        3.0
        >>> avg.update(values=jnp.array([18.0, 100.0]), mask=jnp.array([True, False]))
        >>> float(avg.compute())
        6.0
    """

    def __init__(self, argname: str = "values") -> None:
        self.argname = argname
        self.total = MetricState(jnp.array(0, dtype=jnp.float32))
        self.count = MetricState(jnp.array(0, dtype=jnp.int32))

    def reset(self) -> None:
        self.total.value = jnp.zeros_like(self.total.value)
        self.count.value = jnp.zeros_like(self.count.value)

    def update(self, mask: jax.Array | None = None, **kwargs: tp.Any) -> None:
        """Add ``kwargs[argname]`` (a number or an array); ``mask`` (broadcastable
        to the values) excludes entries where it is false."""
        values = _argument(self, self.argname, kwargs)
        if isinstance(values, (int, float)):
            if mask is not None:
                raise ValueError(
                    f"If mask is provided, {self.argname} should be a jax array: "
                    f"{type(self).__name__}.update got a mask with {self.argname}="
                    f"{values!r} (a Python {type(values).__name__}).\nFix: pass "
                    f"{self.argname}=jnp.asarray(...) with the mask's shape, or drop mask."
                )
            self.total.value = self.total.value + values
            self.count.value = self.count.value + 1
            return
        values = jnp.asarray(values)
        if mask is None:
            self.total.value = self.total.value + values.sum()
            self.count.value = self.count.value + values.size
        else:
            mask = jnp.broadcast_to(jnp.asarray(mask), values.shape)
            self.total.value = self.total.value + (values * mask.astype(values.dtype)).sum()
            self.count.value = self.count.value + mask.sum().astype(self.count.value.dtype)

    def compute(self) -> jax.Array:
        """``total / count`` (``nan`` before any update)."""
        return self.total.value / self.count.value


@dataclasses.dataclass(frozen=True)
class Statistics:
    """What :class:`Welford` computes."""

    mean: jax.Array
    standard_error_of_mean: jax.Array
    standard_deviation: jax.Array

    def replace(self, **changes: tp.Any) -> Statistics:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


jax.tree_util.register_dataclass(
    Statistics,
    data_fields=["mean", "standard_error_of_mean", "standard_deviation"],
    meta_fields=[],
)


class Welford(Metric):
    """Running mean and (population) standard deviation, merged batch by batch
    with Welford's / Chan's numerically stable update.

    Arguments:
        argname: the keyword of ``update`` holding the values (default ``'values'``).

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> w = nnx_optim.metrics.Welford()
        >>> w.update(values=jnp.array([1.0, 2.0]))
        >>> w.update(values=jnp.array([3.0, 4.0]))
        >>> stats = w.compute()
        >>> float(stats.mean), round(float(stats.standard_deviation), 4)
        (2.5, 1.118)
    """

    def __init__(self, argname: str = "values") -> None:
        self.argname = argname
        self.count = MetricState(jnp.array(0, dtype=jnp.int32))
        self.mean = MetricState(jnp.array(0, dtype=jnp.float32))
        self.m2 = MetricState(jnp.array(0, dtype=jnp.float32))

    def reset(self) -> None:
        self.count.value = jnp.zeros_like(self.count.value)
        self.mean.value = jnp.zeros_like(self.mean.value)
        self.m2.value = jnp.zeros_like(self.m2.value)

    def update(self, **kwargs: tp.Any) -> None:
        """Merge the values ``kwargs[argname]`` (a number or an array) in."""
        values = _argument(self, self.argname, kwargs)
        if isinstance(values, (int, float)):
            batch_count: tp.Any = 1
            batch_mean: tp.Any = values
            batch_m2: tp.Any = 0.0
        else:
            values = jnp.asarray(values)
            batch_count = values.size
            batch_mean = values.mean()
            batch_m2 = ((values - batch_mean) ** 2).sum()
        old_count = self.count.value
        new_count = old_count + batch_count
        delta = batch_mean - self.mean.value
        self.mean.value = self.mean.value + delta * (batch_count / new_count)
        self.m2.value = (
            self.m2.value + batch_m2 + delta**2 * (old_count * (batch_count / new_count))
        )
        self.count.value = new_count

    def compute(self) -> Statistics:
        """Mean, standard error of the mean and standard deviation."""
        variance = self.m2.value / self.count.value
        standard_deviation = variance**0.5
        return Statistics(
            mean=self.mean.value,
            standard_error_of_mean=standard_deviation / self.count.value**0.5,
            standard_deviation=standard_deviation,
        )


class Accuracy(Average):
    """Fraction of correct predictions.

    Multi-class: ``logits`` has one more (trailing) axis than ``labels`` and is
    arg-maxed. Binary: pass ``threshold``; ``logits >= threshold`` is compared
    with ``labels > 0``.

    Arguments:
        threshold: for binary classification, the decision threshold.
        argname: kept for compatibility with :class:`Average`.

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> acc = nnx_optim.metrics.Accuracy()
        >>> logits = jnp.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
        >>> acc.update(logits=logits, labels=jnp.array([1, 0, 0]))
        >>> round(float(acc.compute()), 4)
        0.6667
    """

    def __init__(self, threshold: float | None = None, *args: tp.Any, **kwargs: tp.Any) -> None:
        if threshold is not None and not isinstance(threshold, float):
            raise TypeError(
                f"Expected threshold to be a float, got {type(threshold)}: "
                f"Accuracy(threshold={threshold!r}).\nFix: Accuracy(threshold=0.5) "
                "(a float)."
            )
        self.threshold = threshold
        super().__init__(*args, **kwargs)

    def update(  # type: ignore[override]
        self,
        *,
        logits: jax.Array,
        labels: jax.Array,
        mask: jax.Array | None = None,
        **_: tp.Any,
    ) -> None:
        """Count the correct predictions of ``logits`` against integer ``labels``."""
        logits, labels = jnp.asarray(logits), jnp.asarray(labels)
        if self.threshold is not None and logits.ndim != labels.ndim:
            raise ValueError(
                "For binary classification, expected logits.ndim==labels.ndim, got "
                f"{logits.ndim} and {labels.ndim}: Accuracy(threshold={self.threshold}) "
                f"found logits of shape {logits.shape} and labels of shape "
                f"{labels.shape}.\nFix: one logit per label (squeeze a trailing axis of "
                "size 1), or Accuracy() for multi-class logits."
            )
        if self.threshold is None and logits.ndim != labels.ndim + 1:
            raise ValueError(
                "For multi-class classification, expected logits.ndim==labels.ndim+1, "
                f"got {logits.ndim} and {labels.ndim}: Accuracy() found logits of shape "
                f"{logits.shape} and labels of shape {labels.shape}; logits need a "
                "trailing class axis.\nFix: for binary predictions use "
                "Accuracy(threshold=0.5)."
            )
        if labels.dtype not in (jnp.int32, jnp.int64):
            raise ValueError(
                f"Expected labels.dtype==jnp.int32, got {labels.dtype}: Accuracy needs "
                "int32 (or int64) class labels.\nFix: labels.astype(jnp.int32)."
            )
        if self.threshold is not None:
            correct = (logits >= self.threshold) == (labels > 0)
        else:
            correct = logits.argmax(axis=-1) == labels
        super().update(mask=mask, values=correct)


_RESERVED = frozenset({"reset", "update", "compute", "split"})


class MultiMetric(Metric):
    """Several metrics updated together: every keyword of ``update`` is passed to
    every metric, which reads the ones it needs.

    ``mask`` may be one array for all metrics or a dict ``{metric_name: mask}``.

    Example::

        >>> import jax.numpy as jnp, nnx_optim
        >>> from nnx_optim import metrics
        >>> m = metrics.MultiMetric(accuracy=metrics.Accuracy(),
        ...                         loss=metrics.Average("loss"))
        >>> m.update(logits=jnp.array([[0.0, 1.0], [1.0, 0.0]]),
        ...          labels=jnp.array([1, 1]), loss=jnp.array(0.5))
        >>> {k: float(v) for k, v in m.compute().items()}
        {'accuracy': 0.5, 'loss': 0.5}
    """

    def __init__(self, **metrics: Metric) -> None:
        clash = _RESERVED.intersection(metrics)
        if clash:
            raise ValueError(
                f"MultiMetric metric names {sorted(clash)} clash with its methods. "
                "Fix: choose other names."
            )
        self._metric_names = tuple(metrics)
        for name, metric in metrics.items():
            setattr(self, name, metric)

    def _metrics(self) -> list[tuple[str, Metric]]:
        return [(name, getattr(self, name)) for name in self._metric_names]

    def reset(self) -> None:
        for _, metric in self._metrics():
            metric.reset()

    def update(self, **updates: tp.Any) -> None:
        """Call every metric's ``update`` with all of ``updates``; ``mask`` may be one
        array or a ``{metric_name: mask}`` dict. An error raised by one metric keeps
        its type and gains the metric's name."""
        mask = updates.pop("mask", None)
        for name, metric in self._metrics():
            metric_mask = mask.get(name) if isinstance(mask, dict) else mask
            extra = {} if metric_mask is None else {"mask": metric_mask}
            try:
                metric.update(**updates, **extra)
            except (TypeError, ValueError) as error:
                if type(error) not in (TypeError, ValueError):
                    raise
                raise type(error)(f"{error}\n(in MultiMetric metric {name!r})") from error

    def compute(self) -> dict[str, tp.Any]:
        """``{name: metric.compute()}``."""
        return {name: metric.compute() for name, metric in self._metrics()}
