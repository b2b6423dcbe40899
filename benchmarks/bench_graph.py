"""``split`` / ``merge`` of (model, optimizer holding the model): nnx vs flax.nnx.

Both libraries get the same structure (the classes in :mod:`_models` are defined once
for either library), including the shared model reference.  ``split`` returns
(GraphDef, State); ``merge`` rebuilds the objects from them.
"""

from __future__ import annotations

import typing as tp

from _common import NA, Settings, Table, Timing, fmt_ratio, fmt_us, measure, optional
from _models import graph_models

import nnx_graph

__all__ = ["DEPTHS", "run"]

DEPTHS = (5, 100)
WIDTH = 16


def _runners(lib: tp.Any, depth: int) -> dict[str, tp.Callable[[int], None]]:
    model, opt = graph_models(lib).build(depth, WIDTH)
    roots = (model, opt)
    split, merge = lib.split, lib.merge
    graphdef, state = split(roots)
    m2, o2 = merge(graphdef, state)
    if o2.model is not m2:
        raise AssertionError(f"{lib.__name__}: merge lost the shared model reference")

    def run_split(n: int) -> None:
        for _ in range(n):
            split(roots)

    def run_merge(n: int) -> None:
        for _ in range(n):
            merge(graphdef, state)

    return {"split": run_split, "merge": run_merge}


def run(settings: Settings) -> tuple[list[Table], dict[tuple[str, int, str], Timing]]:
    fnnx = optional("flax.nnx")
    results: dict[tuple[str, int, str], Timing] = {}
    table = Table(
        "split / merge of (model, optimizer holding the model)",
        ["depth", "op", "nnx", "flax.nnx", "speed-up (flax / nnx)"],
        note=(
            "Same structures in both libraries, shared model reference included. "
            f"Times: {'process CPU' if settings.clock == 'cpu' else 'wall-clock'} time "
            "per call, min over interleaved repeats."
        ),
    )
    for depth in DEPTHS:
        variants: dict[str, tp.Callable[[int], None]] = {}
        for op, r in _runners(nnx_graph, depth).items():
            variants[f"nnx {op}"] = r
        if fnnx is not None:
            for op, r in _runners(fnnx, depth).items():
                variants[f"flax {op}"] = r
        timings = measure(variants, settings)
        for op in ("split", "merge"):
            results[(op, depth, "nnx")] = timings[f"nnx {op}"]
            ours = timings[f"nnx {op}"].get(settings.clock)
            theirs = None
            if f"flax {op}" in timings:
                results[(op, depth, "flax")] = timings[f"flax {op}"]
                theirs = timings[f"flax {op}"].get(settings.clock)
            table.add(
                depth,
                op,
                fmt_us(ours),
                fmt_us(theirs) if theirs is not None else NA,
                fmt_ratio(theirs / ours) if theirs is not None else NA,
            )
    return [table], results


if __name__ == "__main__":
    import sys

    print(run(Settings(quick="--quick" in sys.argv))[0][0].text())
