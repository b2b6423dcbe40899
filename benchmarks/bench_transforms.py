"""Per-call overhead of ``nnx.jit`` against the flat ``jax.jit`` floor, flax.nnx and
equinox, on (model, optimizer) for MLPs of Linear+BatchNorm blocks.

Two steps:

* ``empty``: the function does nothing.  Floor: ``jax.jit`` over the flat list of
  leaves, inputs only.  Measures the pure cost of getting the state in.
* ``update``: the function writes a new value into every Variable.  Floor:
  ``jax.jit`` over the flat leaves in and out (``leaves = f(leaves)``).  Measures
  getting the state in *and* writing every value back.

Every variant is checked first: after two update calls its step counter is 2 and its
first kernel equals the floor's (so every variant really propagates its updates).
"""

from __future__ import annotations

import dataclasses
import importlib
import typing as tp

import jax
import numpy as np
from _common import NA, Settings, Table, Timing, fmt_ratio, fmt_us, measure, optional
from _models import eqx_models, flat_empty, flat_leaves, flat_update, graph_models

import nnx_graph

__all__ = ["DEPTHS", "STEPS", "VARIANTS", "Case", "make_case", "run"]

DEPTHS = (5, 100)
WIDTH = 16
STEPS = ("empty", "update")

FLOOR = "jax.jit, flat leaves (floor)"
NNX = "nnx.jit (graph mode, default)"
VARIANTS = (
    FLOOR,
    NNX,
    "flax nnx.jit (graph mode, default)",
    "flax nnx.jit(graph=False) (tree mode)*",
    "flax jit_partial(graph=False) (opt-in)*",
    "flax jit_partial(graph_updates=False) (opt-in)",
    "flax cached_partial (opt-in)",
    "equinox filter_jit*",
)
NOTE = (
    "ratio = time / floor at the same depth; time = {clock} per call, min over interleaved "
    "repeats. "
    "`*`: no shared references (flax tree mode and jit_partial(graph=False) reject shared "
    "Variables; equinox has none), so these get the model and an optimizer that does not "
    "hold it: the same leaves. Everything else gets (model, optimizer holding the model). "
    "Leaves: {leaves}."
)


CLOCKS = {"cpu": "process CPU time", "wall": "wall-clock time"}


@dataclasses.dataclass
class Case:
    """One implementation at one depth: ``run(n)`` makes n calls; ``probe()`` returns
    (step counter, first kernel) to check that updates propagate."""

    run: tp.Callable[[int], None]
    probe: tp.Callable[[], tuple[int, np.ndarray]]


def _graph_case(
    lib: tp.Any,
    jit: tp.Callable[..., tp.Any],
    step: str,
    depth: int,
    *,
    partial: str | None = None,
    hold_model: bool = True,
) -> Case:
    """A case for nnx_graph or flax.nnx: ``jit(step_fn)`` called on (model, opt), or a
    partial (flax ``jit_partial``/``cached_partial``) called with no arguments."""
    ns = graph_models(lib)
    model, opt = ns.build(depth, WIDTH, hold_model=hold_model)
    fn = ns.empty_step if step == "empty" else ns.update_step
    if partial is None:
        f = jit(fn)

        def call() -> None:
            f(model, opt)
    else:
        g = jit(fn, model, opt)

        def call() -> None:
            g()

    if step == "empty":

        def run(n: int) -> None:
            for _ in range(n):
                call()
    else:

        def run(n: int) -> None:
            for _ in range(n):
                call()
            opt.step[...].block_until_ready()

    def probe() -> tuple[int, np.ndarray]:
        return int(opt.step[...]), np.asarray(model.blocks[0].kernel[...])

    return Case(run, probe)


def _floor_case(step: str, depth: int) -> Case:
    state = [flat_leaves(depth, WIDTH)]
    if step == "empty":
        f_empty = jax.jit(flat_empty)

        def run(n: int) -> None:
            leaves = state[0]
            for _ in range(n):
                f_empty(leaves)
    else:
        f_update = jax.jit(flat_update)

        def run(n: int) -> None:
            leaves = state[0]
            for _ in range(n):
                leaves = f_update(leaves)
            state[0] = leaves
            leaves[0].block_until_ready()

    def probe() -> tuple[int, np.ndarray]:
        return int(state[0][0]), np.asarray(state[0][1])

    return Case(run, probe)


def _eqx_case(step: str, depth: int) -> Case:
    eqx: tp.Any = importlib.import_module("equinox")  # optional: not needed to type-check

    ns = eqx_models()
    state = list(ns.build(depth, WIDTH))
    if step == "empty":
        f_empty = eqx.filter_jit(ns.empty_step)

        def run(n: int) -> None:
            model, opt = state
            for _ in range(n):
                f_empty(model, opt)
    else:
        f_update = eqx.filter_jit(ns.update_step)

        def run(n: int) -> None:
            model, opt = state
            for _ in range(n):
                model, opt = f_update(model, opt)
            state[:] = [model, opt]
            opt.step.block_until_ready()

    def probe() -> tuple[int, np.ndarray]:
        model, opt = state
        return int(opt.step), np.asarray(model.blocks[0].kernel)

    return Case(run, probe)


def make_case(variant: str, step: str, depth: int) -> Case | None:
    """Build one case; None when its library is not installed."""
    if variant == FLOOR:
        return _floor_case(step, depth)
    if variant == NNX:
        return _graph_case(nnx_graph, nnx_graph.jit, step, depth)
    if variant.startswith("equinox"):
        return _eqx_case(step, depth) if optional("equinox") else None
    fnnx = optional("flax.nnx")
    if fnnx is None:
        return None
    if "tree mode" in variant:
        return _graph_case(fnnx, lambda f: fnnx.jit(f, graph=False), step, depth, hold_model=False)
    if "jit_partial(graph=False)" in variant:
        return _graph_case(
            fnnx,
            lambda f, *a: fnnx.jit_partial(f, *a, graph=False),
            step,
            depth,
            partial="jit_partial",
            hold_model=False,
        )
    if "jit_partial(graph_updates=False)" in variant:
        return _graph_case(
            fnnx,
            lambda f, *a: fnnx.jit_partial(f, *a, graph=True, graph_updates=False),
            step,
            depth,
            partial="jit_partial",
        )
    if "cached_partial" in variant:
        return _graph_case(
            fnnx,
            lambda f, *a: fnnx.cached_partial(fnnx.jit(f), *a),
            step,
            depth,
            partial="cached_partial",
        )
    return _graph_case(fnnx, fnnx.jit, step, depth)


def _check(cases: dict[str, Case], step: str, depth: int) -> None:
    """Two calls of every case must leave the same state as two floor calls."""
    expected_step = 2 if step == "update" else 0
    ref_kernel: np.ndarray | None = None
    for name, case in cases.items():
        case.run(2)
        count, kernel = case.probe()
        if ref_kernel is None:
            ref_kernel = kernel
        if count != expected_step or not np.allclose(kernel, ref_kernel, rtol=1e-5, atol=1e-6):
            raise AssertionError(
                f"{name} ({step} step, depth {depth}): after two calls the step counter is "
                f"{count} (expected {expected_step}) or the first kernel differs from the "
                "floor's: its updates do not propagate as the benchmark assumes."
            )


def run(settings: Settings) -> tuple[list[Table], dict[tuple[str, int, str], Timing]]:
    """Measure every (step, depth, variant); return the tables and the timings."""
    results: dict[tuple[str, int, str], Timing] = {}
    tables = []
    leaves = {d: len(flat_leaves(d, WIDTH)) for d in DEPTHS}
    for step in STEPS:
        per_depth: dict[int, dict[str, Timing]] = {}
        for depth in DEPTHS:
            cases: dict[str, Case] = {}
            for variant in VARIANTS:
                case = make_case(variant, step, depth)
                if case is not None:
                    cases[variant] = case
            _check(cases, step, depth)
            timings = measure({name: case.run for name, case in cases.items()}, settings)
            per_depth[depth] = timings
            for name, timing in timings.items():
                results[(step, depth, name)] = timing
            del cases
        what = (
            "empty step (inputs only)"
            if step == "empty"
            else "update step (every Variable written)"
        )
        headers = ["implementation"]
        for depth in DEPTHS:
            headers += [f"depth {depth}: ratio", f"depth {depth}: time"]
        table = Table(
            f"Per-call overhead, {what}, over (model, optimizer)",
            headers,
            note=NOTE.format(
                clock=CLOCKS[settings.clock],
                leaves=", ".join(f"{leaves[d]} at depth {d}" for d in DEPTHS),
            ),
        )
        for variant in VARIANTS:
            cells = [variant]
            for depth in DEPTHS:
                measured = per_depth[depth].get(variant)
                if measured is None:
                    cells += [NA, NA]
                else:
                    us = measured.get(settings.clock)
                    floor = per_depth[depth][FLOOR].get(settings.clock)
                    cells += [fmt_ratio(us / floor), fmt_us(us)]
            table.add(*cells)
        tables.append(table)
    return tables, results


if __name__ == "__main__":
    import sys

    quick = "--quick" in sys.argv
    for t in run(Settings(quick=quick))[0]:
        print(t.text(), end="\n\n")
