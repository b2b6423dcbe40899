"""Does a train step through ``nnx.jit`` compile to the same program as hand-written
jax on the same arrays?

The step: forward through the Linear+BatchNorm MLP (batch statistics updated in
place), mean-squared-error loss, gradients w.r.t. the ``Param``s with ``nnx.grad``,
SGD.  The hand-written version does the same with ``jax.grad(has_aux=True)`` over
dicts of arrays.  Compared: ``compiled.memory_analysis()`` (argument, output, alias,
temp and generated-code bytes), ``compiled.cost_analysis()`` (flops, bytes accessed),
the number of instructions in the optimized HLO (``compiled.as_text()``) and the
number of ops in the lowered StableHLO (``lowered.as_text()``, informational: it
shows how much extra the tracing emits before XLA simplifies it).  Both versions
also run two steps from the same initial arrays and must give the same parameters.
"""

from __future__ import annotations

import dataclasses
import re
import typing as tp

import jax
import jax.numpy as jnp
import numpy as np
from _common import Table
from _models import LR, graph_models, hand_forward, init_arrays

import nnx_graph

__all__ = ["HloReport", "compare", "count_hlo_ops", "count_stablehlo_ops", "nnx_jit_lowered"]


class _Recorder:
    """Stands in for a ``jax.jit`` function for one call and records its arguments."""

    def __init__(
        self, jitted: tp.Any, calls: list[tuple[tp.Any, tuple[tp.Any, ...], dict[str, tp.Any]]]
    ) -> None:
        self.jitted = jitted
        self.calls = calls

    def __call__(self, *args: tp.Any, **kwargs: tp.Any) -> tp.Any:
        self.calls.append((self.jitted, args, kwargs))
        return self.jitted(*args, **kwargs)


def nnx_jit_lowered(wrapped: tp.Any, *args: tp.Any) -> jax.stages.Lowered:
    """Lower the inner ``jax.jit`` function that ``nnx.jit`` dispatches to for ``args``.

    How nnx.jit caches it (``nnx_graph/transforms/_jit.py``, private): ``nnx.jit(f)``
    returns a ``JitWrapped``; per tuple of root objects it keeps an entry in
    ``JitWrapped._cache`` whose ``compiled`` (also kept per structure in
    ``JitWrapped._compiled``) holds ``jitted``, the ``jax.jit`` of the inner function
    that takes the Variables' raw values and the other arguments.  Nothing public
    exposes that function's lowering, so this helper:

    1. calls ``wrapped(*args)`` to traverse, trace, compile and fill the caches;
    2. swaps every cached ``compiled.jitted`` for a recorder, calls ``wrapped(*args)``
       again (now through the per-root cache, the fast path), and puts them back;
    3. lowers the recorded ``jax.jit`` function with the recorded arguments.

    It relies only on ``_cache``/``_compiled`` holding objects with a ``jitted``
    attribute, and fails loudly if that changes.  It runs the step twice: the
    arguments' state is updated twice.
    """
    wrapped(*args)
    holders: dict[int, tp.Any] = {}
    for entry in getattr(wrapped, "_cache", {}).values():
        compiled = getattr(entry, "compiled", None)
        if compiled is not None:
            holders[id(compiled)] = compiled
    for compiled in getattr(wrapped, "_compiled", {}).values():
        holders[id(compiled)] = compiled
    if not holders or not all(hasattr(c, "jitted") for c in holders.values()):
        raise RuntimeError(
            "nnx_jit_lowered: JitWrapped internals changed (expected _cache entries / "
            "_compiled values with a `jitted` jax.jit function); update benchmarks/bench_hlo.py"
        )
    calls: list[tuple[tp.Any, tuple[tp.Any, ...], dict[str, tp.Any]]] = []
    originals = {key: c.jitted for key, c in holders.items()}
    try:
        for c in holders.values():
            c.jitted = _Recorder(c.jitted, calls)
        wrapped(*args)
    finally:
        for key, c in holders.items():
            c.jitted = originals[key]
    if len(calls) != 1:
        raise RuntimeError(f"nnx_jit_lowered: expected one inner jax.jit call, saw {len(calls)}")
    jitted, call_args, call_kwargs = calls[0]
    return tp.cast(jax.stages.Lowered, jitted.lower(*call_args, **call_kwargs))


_HLO_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*\S", re.MULTILINE)
_STABLEHLO_OP = re.compile(r"\b(?:stablehlo|chlo)\.[a-z_]+|\bcall @")


def count_hlo_ops(hlo_text: str) -> int:
    """Instructions in an HLO module's text (every ``name = type op(...)`` line, in all
    computations, fusions included)."""
    return len(_HLO_INSTRUCTION.findall(hlo_text))


def count_stablehlo_ops(mlir_text: str) -> int:
    """StableHLO/CHLO operations and function calls in lowered MLIR text."""
    return len(_STABLEHLO_OP.findall(mlir_text))


MEMORY_FIELDS = (
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "alias_size_in_bytes",
    "temp_size_in_bytes",
    "generated_code_size_in_bytes",
)


@dataclasses.dataclass
class HloReport:
    depth: int
    width: int
    batch: int
    nnx: dict[str, float]
    hand: dict[str, float]
    same_result: bool
    max_abs_diff: float
    # metrics that must be equal for the check to pass
    checked: tuple[str, ...] = (*MEMORY_FIELDS, "flops", "bytes accessed", "HLO instructions")

    @property
    def equal(self) -> bool:
        return self.same_result and all(self.nnx[k] == self.hand[k] for k in self.checked)

    def mismatches(self) -> list[str]:
        return [k for k in self.checked if self.nnx[k] != self.hand[k]]

    def table(self) -> Table:
        table = Table(
            f"Compiled train step: nnx.jit vs hand-written jax "
            f"(depth {self.depth}, width {self.width}, batch {self.batch})",
            ["metric", "nnx.jit + nnx.grad", "hand-written jax", "equal"],
            note=(
                "SGD step with BatchNorm statistics updated in the forward pass. "
                f"Same parameters after two steps from the same arrays: {self.same_result} "
                f"(max |diff| {self.max_abs_diff:.2g}). The lowered StableHLO op count is "
                "informational (XLA would remove tracing leftovers); the rest must be equal."
            ),
        )
        for key in (*self.checked, "StableHLO ops (lowered)"):
            a, b = self.nnx[key], self.hand[key]
            mark = (
                ("yes" if a == b else "NO")
                if key in self.checked
                else ("yes" if a == b else "differs")
            )
            table.add(key, f"{a:g}", f"{b:g}", mark)
        table.add("ALL CHECKED EQUAL", "", "", "PASS" if self.equal else "FAIL")
        return table


def _metrics(lowered: jax.stages.Lowered) -> dict[str, float]:
    compiled = lowered.compile()
    mem = compiled.memory_analysis()
    out: dict[str, float] = {k: float(getattr(mem, k, -1.0)) for k in MEMORY_FIELDS}
    cost: tp.Any = compiled.cost_analysis() or {}
    if isinstance(cost, list):  # older jax returned one dict per device
        cost = cost[0]
    out["flops"] = float(cost.get("flops", -1.0))
    out["bytes accessed"] = float(cost.get("bytes accessed", -1.0))
    out["HLO instructions"] = float(count_hlo_ops(compiled.as_text() or ""))
    out["StableHLO ops (lowered)"] = float(count_stablehlo_ops(lowered.as_text()))
    return out


def _nnx_train_step(model: tp.Any, x: jax.Array, y: jax.Array) -> None:
    def loss_fn(model: tp.Any) -> jax.Array:
        return jnp.mean((model(x) - y) ** 2)

    grads = nnx_graph.grad(loss_fn)(model)
    params = nnx_graph.state(model, nnx_graph.Param)
    nnx_graph.update(model, jax.tree.map(lambda p, g: p - LR * g, params, grads))


def _hand_train_step(
    params: list[dict[str, jax.Array]],
    stats: list[dict[str, jax.Array]],
    x: jax.Array,
    y: jax.Array,
) -> tuple[list[dict[str, jax.Array]], list[dict[str, jax.Array]]]:
    def loss_fn(params: list[dict[str, jax.Array]]) -> tuple[jax.Array, tp.Any]:
        out, new_stats = hand_forward(params, stats, x)
        return jnp.mean((out - y) ** 2), new_stats

    grads, new_stats = jax.grad(loss_fn, has_aux=True)(params)
    new_params = jax.tree.map(lambda p, g: p - LR * g, params, grads)
    return new_params, new_stats


def compare(depth: int = 5, width: int = 32, batch: int = 16) -> HloReport:
    """Compile both train steps for the same arrays and collect the metrics."""
    arrays = init_arrays(depth, width, seed=1)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(batch, width)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(batch, width)).astype(np.float32))

    params = [{"kernel": a.kernel, "bias": a.bias} for a in arrays]
    stats = [{"mean": a.mean, "var": a.var} for a in arrays]
    hand = jax.jit(_hand_train_step)
    hand_metrics = _metrics(hand.lower(params, stats, x, y))
    hand_params, hand_stats = hand(params, stats, x, y)
    hand_params, _ = hand(hand_params, hand_stats, x, y)

    model = graph_models(nnx_graph).MLP(arrays)
    step = nnx_graph.jit(_nnx_train_step)
    nnx_metrics = _metrics(nnx_jit_lowered(step, model, x, y))  # runs two steps
    diffs = [
        float(jnp.max(jnp.abs(block.kernel[...] - p["kernel"])))
        for block, p in zip(model.blocks, hand_params)
    ] + [
        float(jnp.max(jnp.abs(block.bias[...] - p["bias"])))
        for block, p in zip(model.blocks, hand_params)
    ]
    max_diff = max(diffs)
    return HloReport(depth, width, batch, nnx_metrics, hand_metrics, max_diff <= 1e-6, max_diff)


def run(quick: bool = False) -> tuple[list[Table], HloReport]:
    report = compare()
    return [report.table()], report


if __name__ == "__main__":
    print(run()[0][0].text())
