"""Run every benchmark in one process and print ratio tables against baselines
measured in the same run; also write them to ``benchmarks/results.md``.

    python benchmarks/run.py            # full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer iterations (under two minutes)
    python benchmarks/run.py --only transforms,hlo

Sections: ``transforms`` (nnx.jit per-call overhead vs the flat jax.jit floor, flax.nnx
and equinox), ``train_step`` (a full nnx.jit + nnx.value_and_grad + nnx.Optimizer step
vs a hand-written jax.jit + optax step and flax.nnx; wall clock, medians), ``graph``
(split/merge vs flax.nnx), ``import`` (what ``import nnx`` adds to ``import jax,
optax``), ``hlo`` (a train step through nnx.jit compiles to the same program as
hand-written jax), and ``optimizer`` when ``benchmarks/bench_optimizer.py`` exists
(run as ``python benchmarks/bench_optimizer.py [--quick]``, output included
verbatim).  Flax and equinox columns read "n/a (not installed)" without them.

Only ratios are compared with the DESIGN.md targets, and only for information: the
exit code is 0 whatever the numbers (machines differ; CI must not flake on timing).
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import time
import typing as tp

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `python benchmarks/run.py` puts HERE first already
    sys.path.insert(0, str(HERE))

from _common import NA, Settings, Table, Timing, fmt_ratio, optional  # noqa: E402

SECTIONS = ("transforms", "train_step", "graph", "import", "hlo", "optimizer")


def _versions() -> str:
    import jax

    parts = [f"python {platform.python_version()}", f"jax {jax.__version__}"]
    try:
        import nnx

        parts.append(f"nnx {getattr(nnx, '__version__', '?')}")
    except ImportError:
        pass
    for name in ("flax", "equinox", "optax"):
        module = optional(name)
        version = getattr(module, "__version__", None) if module is not None else None
        parts.append(f"{name} {version or 'not installed'}")
    return ", ".join(parts)


def _source() -> str:
    """Which nnx code is measured: the nnx_graph location and the checkout's commit."""
    import nnx_graph

    where = pathlib.Path(nnx_graph.__file__).resolve().parents[4]
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        # e.g. a `git archive` snapshot: whoever made it can name the commit
        commit = os.environ.get("NNX_BENCH_COMMIT", "no git checkout")
    return f"nnx code from {where} ({commit})"


def _load() -> str:
    try:
        return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def _mark(ok: bool | None) -> str:
    return NA if ok is None else ("PASS" if ok else "MISS")


def _ratio_cell(num: Timing, den: Timing, clock: str) -> tuple[float, str]:
    """The ratio under ``clock``, and a cell that also shows it under the other clock."""
    other = "wall" if clock == "cpu" else "cpu"
    ratio = num.get(clock) / den.get(clock)
    return ratio, f"{fmt_ratio(ratio)} ({other}: {fmt_ratio(num.get(other) / den.get(other))})"


def _targets(results: dict[str, tp.Any], clock: str) -> Table:
    """The DESIGN.md performance targets, measured in this run (informational)."""
    table = Table(
        "Targets (DESIGN.md 'Performance targets'; informational, exit code 0 regardless)",
        ["target", "measured", "result"],
        note=(
            f"PASS/MISS use the {clock} clock; for ratios the other clock's figure is in "
            "parentheses."
        ),
    )
    transforms = results.get("transforms")
    if transforms is not None:
        from bench_transforms import DEPTHS, FLOOR, NNX

        for step, limit, what in (("empty", 2.0, "empty step"), ("update", 1.3, "full update")):
            for depth in DEPTHS:
                ratio, cell = _ratio_cell(
                    transforms[(step, depth, NNX)], transforms[(step, depth, FLOOR)], clock
                )
                table.add(
                    f"nnx.jit {what} <= {limit}x floor, depth {depth}", cell, _mark(ratio <= limit)
                )
    train = results.get("train_step")
    if train is not None:
        from bench_train_step import DEPTHS as TRAIN_DEPTHS
        from bench_train_step import NNX as TRAIN_NNX

        for depth in TRAIN_DEPTHS:
            ratio = train[("ratio", depth, TRAIN_NNX)]
            table.add(
                f"train step <= 1.15x floor, depth {depth} (wall clock, median)",
                fmt_ratio(ratio),
                _mark(ratio <= 1.15),
            )
    graph = results.get("graph")
    if graph is not None:
        from bench_graph import DEPTHS as GRAPH_DEPTHS

        for op in ("split", "merge"):
            for depth in GRAPH_DEPTHS:
                what = f"{op} >= 5x faster than flax.nnx, depth {depth}"
                flax_t = graph.get((op, depth, "flax"))
                if flax_t is None:
                    table.add(what, NA, NA)
                    continue
                speedup, cell = _ratio_cell(flax_t, graph[(op, depth, "nnx")], clock)
                table.add(what, cell, _mark(speedup >= 5))
    hlo = results.get("hlo")
    if hlo is not None:
        mismatches = hlo.mismatches()
        table.add(
            "compiled train step: same memory_analysis and HLO as hand-written jax",
            "equal" if hlo.equal else "differs: " + ", ".join(mismatches or ["parameters"]),
            "PASS" if hlo.equal else "MISS",
        )
    imports = results.get("import")
    if imports is not None:
        field = "nnx_cpu" if clock == "cpu" else "nnx_wall"
        added = imports.median(field)
        no_gc = imports.median(field, no_gc=True)
        table.add(
            "import nnx adds < 50 ms to import jax, optax",
            f"{added:.1f} ms (gc disabled: {no_gc:.1f} ms)",
            _mark(added < 50),
        )
        if clock == "cpu":
            own = imports.own_ms
            table.add(
                "import nnx adds < 50 ms, jax's pending gc collection run first",
                f"{own:.1f} ms",
                _mark(own < 50),
            )
    return table


def _optimizer_section(quick: bool) -> tuple[str, int] | None:
    """Run benchmarks/bench_optimizer.py (owned separately) if it exists."""
    script = HERE / "bench_optimizer.py"
    if not script.exists():
        return None
    cmd = [sys.executable, str(script), *(["--quick"] if quick else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent, check=False)
    text = proc.stdout.rstrip()
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.rstrip().splitlines()[-15:])
        text += f"\n[bench_optimizer.py exited with {proc.returncode}]\n{tail}"
    return text, proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (< 2 minutes)")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="time per call as process CPU time (default; stable on a "
        "shared machine) or wall-clock time",
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        default=HERE / "results.md",
        help="markdown file to (over)write; default benchmarks/results.md",
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    settings = Settings(quick=args.quick, clock=args.clock)

    started = time.perf_counter()
    header = [
        f"{'quick' if args.quick else 'full'} run, "
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"{_versions()}",
        _source(),
        f"{platform.machine()}, {os.cpu_count()} CPUs, {_load()} at start",
        f"times are {'process CPU' if args.clock == 'cpu' else 'wall-clock'} time per call, "
        "min over interleaved repeats (`--clock` switches)",
    ]
    print("nnx benchmarks\n" + "\n".join(header) + "\n", flush=True)

    tables: list[Table] = []
    results: dict[str, tp.Any] = {}
    extra_md: list[str] = []
    timings: list[str] = []
    for section in SECTIONS:
        if section not in sections:
            continue
        t0 = time.perf_counter()
        new: list[Table] = []
        if section == "transforms":
            import bench_transforms

            new, results[section] = bench_transforms.run(settings)
        elif section == "train_step":
            import bench_train_step

            new, results[section] = bench_train_step.run(settings)
        elif section == "graph":
            import bench_graph

            new, results[section] = bench_graph.run(settings)
        elif section == "import":
            import bench_import

            new, results[section] = bench_import.run(settings)
        elif section == "hlo":
            import bench_hlo

            new, results[section] = bench_hlo.run(args.quick)
        elif section == "optimizer":
            out = _optimizer_section(args.quick)
            if out is None:
                continue
            text, _ = out
            print(
                "Optimizer benchmarks (benchmarks/bench_optimizer.py)\n" + text + "\n", flush=True
            )
            extra_md.append(
                "### Optimizer benchmarks (benchmarks/bench_optimizer.py)\n\n```\n" + text + "\n```"
            )
        for table in new:
            print(table.text() + "\n", flush=True)
        tables += new
        timings.append(f"{section} {time.perf_counter() - t0:.0f} s")

    targets = _targets(results, args.clock)
    print(targets.text() + "\n")
    footer = f"Took {time.perf_counter() - started:.0f} s ({', '.join(timings)}); {_load()} at end."
    print(footer)

    md = [
        "# nnx benchmark results",
        "",
        "Written by `python benchmarks/run.py` (overwritten on every run).",
        "",
        *(f"- {line}" for line in header),
        "",
        *(t.markdown() + "\n" for t in tables),
        *(m + "\n" for m in extra_md),
        targets.markdown(),
        "",
        footer,
        "",
    ]
    args.output.write_text("\n".join(md), encoding="utf-8")
    print(f"Markdown written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
