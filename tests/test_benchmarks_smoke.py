"""Smoke test of benchmarks/: the modules import, and the compiled-train-step check
(nnx.jit + nnx.grad vs hand-written jax: same memory_analysis, cost and HLO
instruction count, same result) holds at a small size.  No timing assertions."""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
MODULES = (
    "_common",
    "_models",
    "bench_transforms",
    "bench_graph",
    "bench_import",
    "bench_hlo",
    "run",
)


@pytest.fixture(scope="module")
def bench() -> types.SimpleNamespace:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return types.SimpleNamespace(
            **{name.lstrip("_"): importlib.import_module(name) for name in MODULES}
        )
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_compiled_train_step_matches_hand_written_jax(bench: types.SimpleNamespace) -> None:
    report = bench.bench_hlo.compare(depth=2, width=8, batch=4)
    assert report.same_result, report.max_abs_diff
    assert not report.mismatches(), {
        k: (report.nnx[k], report.hand[k]) for k in report.mismatches()
    }
    assert report.equal
    assert report.nnx["HLO instructions"] > 0
    assert report.nnx["argument_size_in_bytes"] > 0
    assert "PASS" in report.table().text()


def test_floor_and_nnx_cases_agree(bench: types.SimpleNamespace) -> None:
    """The update step does the same thing through nnx.jit and on the flat leaves."""
    bt = bench.bench_transforms
    for step in bt.STEPS:
        cases = {v: bt.make_case(v, step, 2) for v in (bt.FLOOR, bt.NNX)}
        bt._check(cases, step, 2)


def test_importtime_parser(bench: types.SimpleNamespace) -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      1000 |      90000 | jax",
            "import time:       500 |      20000 | optax",
            "import time:       300 |        300 |     nnx_graph._errors",
            "import time:      2000 |       2500 |   nnx_graph",
            "import time:       100 |       3000 | nnx",
        ]
    )
    top, children = bench.bench_import._parse_importtime(stderr)
    assert top == {"jax": 90.0, "optax": 20.0, "nnx": 3.0}
    assert children[0] == (2.0, "nnx_graph")
