"""Does a compiled train step with ``nnx_optim.Optimizer`` cost what hand-written
jax + optax costs?

The step, on an MLP of Linear layers (ReLU between them): mean-squared-error loss,
gradients, ``optax.adam``, parameters and optimizer state updated, step counter + 1.
Variants (all compiled with the parameters and optimizer state donated):

* ``hand-written``: ``jax.jit`` over dicts of arrays, ``tx.update`` +
  ``optax.apply_updates``, a ``uint32`` step counter (what ``Optimizer`` counts).
* ``Optimizer, jax.jit``: ``jax.jit`` over ``nnx.merge`` / ``Optimizer.update`` /
  ``nnx.state`` (public API only).
* ``Optimizer, nnx.jit``: the seed program's ``@nnx.jit`` train step with
  ``nnx.value_and_grad`` and ``optimizer.update(grads)``; its inner ``jax.jit`` is
  lowered with ``bench_hlo.nnx_jit_lowered`` (nnx.jit has no public ``.lower``).
* ``Optimizer, nnx.jit, no donation``: for contrast.

Compared: ``compiled.memory_analysis()`` (argument, output, alias, temp bytes and an
estimate of the peak: argument + output - alias + temp), ``compiled.cost_analysis()``
(flops, bytes accessed), instructions in the optimized HLO, StableHLO ops (total and
per op name) in the lowered program.  The variants also train three steps from the
same arrays and must end with identical parameters.  No timings: nothing here
depends on machine load.

Run: ``python benchmarks/bench_optimizer.py [--quick]``.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import sys
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import Table
from bench_hlo import count_hlo_ops, nnx_jit_lowered

import nnx_graph
import nnx_optim

__all__ = ["OptimizerReport", "compare", "run"]

MEMORY_FIELDS = (
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "alias_size_in_bytes",
    "temp_size_in_bytes",
)
CHECKED = (
    *MEMORY_FIELDS,
    "peak estimate",
    "flops",
    "bytes accessed",
    "HLO instructions",
    "StableHLO ops",
)
_STABLEHLO_OP = re.compile(r"\b((?:stablehlo|chlo)\.[a-z_]+)")


# ----------------------------------------------------------------------------- models
class Linear(nnx_graph.Module):
    def __init__(self, kernel: jax.Array, bias: jax.Array) -> None:
        self.kernel = nnx_graph.Param(kernel)
        self.bias = nnx_graph.Param(bias)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel.value + self.bias.value


class MLP(nnx_graph.Module):
    def __init__(self, arrays: list[dict[str, jax.Array]]) -> None:
        self.layers = nnx_graph.List([Linear(a["kernel"], a["bias"]) for a in arrays])

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x


def hand_forward(params: dict[str, tp.Any], x: jax.Array) -> jax.Array:
    layers = params["layers"]
    for i in range(len(layers)):
        x = x @ layers[i]["kernel"] + layers[i]["bias"]
        if i < len(layers) - 1:
            x = jax.nn.relu(x)
    return x


def init_arrays(depth: int, width: int) -> list[dict[str, jax.Array]]:
    keys = jax.random.split(jax.random.key(0), depth)
    return [
        {"kernel": jax.random.normal(k, (width, width)) / np.sqrt(width), "bias": jnp.zeros(width)}
        for k in keys
    ]


def _copy(arrays: list[dict[str, jax.Array]]) -> list[dict[str, jax.Array]]:
    # donation consumes buffers: every variant starts from its own copy
    return jax.tree.map(lambda a: jnp.array(a, copy=True), arrays)


# ----------------------------------------------------------------------------- steps
def make_tx() -> optax.GradientTransformation:
    return optax.adam(1e-3)


def hand_written(arrays: list[dict[str, jax.Array]]) -> tuple[tp.Any, tp.Any]:
    """The hand-written step and its initial arguments."""
    tx = make_tx()
    params = {"layers": dict(enumerate(_copy(arrays)))}
    opt_state = tx.init(params)

    def step(
        params: tp.Any, opt_state: tp.Any, count: jax.Array, x: jax.Array, y: jax.Array
    ) -> tuple[tp.Any, tp.Any, jax.Array, jax.Array]:
        def loss_fn(params: tp.Any) -> jax.Array:
            return jnp.mean((hand_forward(params, x) - y) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, count + 1, loss

    jitted = jax.jit(step, donate_argnums=(0, 1, 2))
    return jitted, [params, opt_state, jnp.zeros((), jnp.uint32)]


def _loss(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((model(x) - y) ** 2)


def optimizer_jax_jit(arrays: list[dict[str, jax.Array]]) -> tuple[tp.Any, tp.Any]:
    """jax.jit over split/merge: the Optimizer through public graph APIs only."""
    model = MLP(_copy(arrays))
    optimizer = nnx_optim.Optimizer(model, make_tx())
    graphdef, state = nnx_graph.split((model, optimizer))

    def step(state: tp.Any, x: jax.Array, y: jax.Array) -> tuple[tp.Any, jax.Array]:
        model, optimizer = nnx_graph.merge(graphdef, state, copy=True)
        params_def, params, rest = nnx_graph.split(model, nnx_graph.Param, ...)

        def loss_fn(params: tp.Any) -> jax.Array:
            return _loss(nnx_graph.merge(params_def, params, rest, copy=True), x, y)

        loss, grads = jax.value_and_grad(loss_fn)(nnx_graph.pure(params))
        optimizer.update(model, grads)
        return nnx_graph.pure(nnx_graph.state((model, optimizer))), loss

    jitted = jax.jit(step, donate_argnums=(0,))
    return jitted, [nnx_graph.pure(state)]


def _nnx_train_step(
    model: MLP, optimizer: nnx_optim.Optimizer[MLP], x: jax.Array, y: jax.Array
) -> jax.Array:
    loss, grads = nnx_graph.value_and_grad(_loss)(model, x, y)
    optimizer.update(grads)
    return loss


def optimizer_nnx_jit(
    arrays: list[dict[str, jax.Array]], donate: bool = True
) -> tuple[tp.Any, tp.Any]:
    model = MLP(_copy(arrays))
    optimizer = nnx_optim.Optimizer(model, make_tx())
    jitted = nnx_graph.jit(_nnx_train_step, donate_argnums=(0, 1) if donate else None)
    return jitted, [model, optimizer]


# ----------------------------------------------------------------------------- metrics
def _metrics(lowered: jax.stages.Lowered) -> tuple[dict[str, float], collections.Counter[str]]:
    compiled = lowered.compile()
    memory = compiled.memory_analysis()
    out = {k: float(getattr(memory, k)) for k in MEMORY_FIELDS}
    out["peak estimate"] = (
        out["argument_size_in_bytes"]
        + out["output_size_in_bytes"]
        - out["alias_size_in_bytes"]
        + out["temp_size_in_bytes"]
    )
    cost = compiled.cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    out["flops"] = float(cost.get("flops", -1.0))
    out["bytes accessed"] = float(cost.get("bytes accessed", -1.0))
    out["HLO instructions"] = float(count_hlo_ops(compiled.as_text()))
    ops = collections.Counter(_STABLEHLO_OP.findall(lowered.as_text()))
    out["StableHLO ops"] = float(sum(ops.values()))
    return out, ops


@dataclasses.dataclass
class OptimizerReport:
    depth: int
    width: int
    batch: int
    state_bytes: int  # params + optimizer state + step: one copy
    metrics: dict[str, dict[str, float]]
    ops: dict[str, collections.Counter[str]]
    max_abs_diff: dict[str, float]

    BASELINE: tp.ClassVar[str] = "hand-written"
    COMPARED: tp.ClassVar[tuple[str, ...]] = ("Optimizer, jax.jit", "Optimizer, nnx.jit")

    def mismatches(self, variant: str) -> list[str]:
        base = self.metrics[self.BASELINE]
        return [k for k in CHECKED if self.metrics[variant][k] != base[k]]

    def op_differences(self, variant: str) -> dict[str, tuple[int, int]]:
        base, other = self.ops[self.BASELINE], self.ops[variant]
        return {
            op: (other[op], base[op])
            for op in sorted(set(base) | set(other))
            if other[op] != base[op]
        }

    @property
    def equal(self) -> bool:
        return all(not self.mismatches(v) and self.max_abs_diff[v] == 0.0 for v in self.COMPARED)

    def tables(self) -> list[Table]:
        variants = list(self.metrics)
        main = Table(
            f"Compiled Adam train step: Optimizer vs hand-written jax+optax (MLP depth "
            f"{self.depth}, width {self.width}, batch {self.batch})",
            ["metric", *variants, "Optimizer = hand-written"],
            note=(
                f"One copy of params + Adam state + step = {self.state_bytes:,} bytes. With "
                "donation the outputs alias the inputs, so the peak estimate (argument + "
                "output - alias + temp) stays one copy of the state plus the batch, the "
                "loss and temporaries. Parameters after 3 steps, max |difference| from "
                "hand-written: " + ", ".join(f"{v}: {d:g}" for v, d in self.max_abs_diff.items())
            ),
        )
        for key in CHECKED:
            cells = [f"{self.metrics[v][key]:,.0f}" for v in variants]
            equal = all(
                self.metrics[v][key] == self.metrics[self.BASELINE][key] for v in self.COMPARED
            )
            main.add(key, *cells, "yes" if equal else "NO")
        peak = {v: self.metrics[v]["peak estimate"] / self.state_bytes for v in variants}
        main.add("peak / state copy", *(f"{peak[v]:.2f}x" for v in variants), "")
        main.add("ALL EQUAL", *([""] * len(variants)), "PASS" if self.equal else "FAIL")
        ops = Table(
            "StableHLO ops per name (lowered), hand-written vs Optimizer + nnx.jit",
            ["op", "hand-written", "Optimizer, nnx.jit"],
            note="Every op name; identical counts mean the same traced program up to order.",
        )
        base, other = self.ops[self.BASELINE], self.ops["Optimizer, nnx.jit"]
        for op in sorted(set(base) | set(other)):
            ops.add(op, base[op], other[op])
        return [main, ops]


def compare(depth: int = 4, width: int = 256, batch: int = 64) -> OptimizerReport:
    """Compile every variant for the same arrays, collect metrics, train 3 steps."""
    arrays = init_arrays(depth, width)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, width)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(batch, width)).astype(np.float32))
    metrics: dict[str, dict[str, float]] = {}
    ops: dict[str, collections.Counter[str]] = {}
    final: dict[str, list[np.ndarray]] = {}

    hand, hand_args = hand_written(arrays)
    metrics["hand-written"], ops["hand-written"] = _metrics(hand.lower(*hand_args, x, y))
    params, opt_state, count = hand_args
    for _ in range(3):
        params, opt_state, count, _loss_value = hand(params, opt_state, count, x, y)
    final["hand-written"] = [
        np.asarray(params["layers"][i][k]) for i in range(depth) for k in ("bias", "kernel")
    ]
    state_bytes = sum(a.nbytes for a in jax.tree.leaves((params, opt_state, count)))

    step, (state,) = optimizer_jax_jit(arrays)
    metrics["Optimizer, jax.jit"], ops["Optimizer, jax.jit"] = _metrics(step.lower(state, x, y))
    for _ in range(3):
        state, _loss_value = step(state, x, y)
    final["Optimizer, jax.jit"] = [
        np.asarray(state[0]["layers"][i][k]) for i in range(depth) for k in ("bias", "kernel")
    ]

    for name, donate in (("Optimizer, nnx.jit", True), ("nnx.jit, no donation", False)):
        jitted, (model, optimizer) = optimizer_nnx_jit(arrays, donate)
        lowered = nnx_jit_lowered(jitted, model, optimizer, x, y)  # runs 2 steps
        metrics[name], ops[name] = _metrics(lowered)
        jitted(model, optimizer, x, y)
        assert int(optimizer.step.value) == 3
        final[name] = [
            np.asarray(getattr(layer, k).value)
            for layer in model.layers
            for k in ("bias", "kernel")
        ]

    diffs = {
        name: max(float(np.max(np.abs(a - b))) for a, b in zip(final[name], final["hand-written"]))
        for name in final
        if name != "hand-written"
    }
    return OptimizerReport(depth, width, batch, state_bytes, metrics, ops, diffs)


def run(quick: bool = False) -> tuple[list[Table], OptimizerReport]:
    report = compare(depth=2, width=32, batch=8) if quick else compare()
    return report.tables(), report


if __name__ == "__main__":
    tables, report = run(quick="--quick" in sys.argv)
    for table in tables:
        print(table.text())
        print()
    for variant in report.COMPARED:
        if report.mismatches(variant):
            print(
                f"{variant}: differs from hand-written in {report.mismatches(variant)}; "
                f"StableHLO op differences (variant, hand-written): "
                f"{report.op_differences(variant)}"
            )
