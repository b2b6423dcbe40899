"""The compiled Optimizer train step is the hand-written jax + optax program: same
memory_analysis, cost and HLO op counts (benchmarks/bench_optimizer.py at a small
size). No timing assertions."""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> types.ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("bench_optimizer")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_optimizer_step_compiles_like_hand_written_optax(bench: types.ModuleType) -> None:
    report = bench.compare(depth=2, width=16, batch=4)
    for variant in report.COMPARED:
        assert report.mismatches(variant) == [], (variant, report.metrics)
        assert report.op_differences(variant) == {}, variant
        assert report.max_abs_diff[variant] == 0.0, variant
    hand = report.metrics["hand-written"]
    # donation: the outputs alias the donated params + optimizer state (one copy)
    assert hand["alias_size_in_bytes"] >= report.state_bytes - 4
    undonated = report.metrics["nnx.jit, no donation"]
    assert undonated["alias_size_in_bytes"] == 0
    assert undonated["peak estimate"] > report.metrics["Optimizer, nnx.jit"]["peak estimate"]
    assert report.equal
