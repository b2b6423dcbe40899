"""What ``import nnx`` adds to ``import jax, optax``, in fresh interpreters.

Each run starts a fresh interpreter that imports jax and optax, then nnx, reading the
process CPU time and the wall clock around each import; medians over several runs.
CPU time is the primary figure (a process waiting for a core on a busy machine
accrues none), wall time is shown too.  The same probe runs once more per run with
the garbage collector disabled: a full collection of the large heap jax leaves behind
may or may not be triggered by nnx's allocations, and lands in nnx's figure if it is.

That collection is not nnx's: right after ``import jax, optax`` the collector owes one
full pass over jax's heap (tens of thousands of objects), and the next ~2,000 container
allocations of *any* code trigger it (``[[] for _ in range(3000)]`` does). A third
probe therefore runs ``gc.collect()`` between the two imports (its time is shown) and
times ``import nnx`` after it, with the collector on: what nnx's import itself costs.
When flax is installed, ``import flax.nnx`` is probed the same ways for reference.
One ``python -X importtime`` run lists the heaviest modules nnx brings in.

The subprocesses run without ``PYTHONDONTWRITEBYTECODE`` after one untimed warm-up,
so bytecode caches exist, as after a normal ``pip install``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile

from _common import Settings, Table

__all__ = ["ImportReport", "run"]

PROBE = """
import gc, importlib, sys, time
if "--no-gc" in sys.argv:
    gc.disable()
c0, w0 = time.process_time(), time.perf_counter()
import jax, optax
c1, w1 = time.process_time(), time.perf_counter()
collect = 0.0
if "--settle" in sys.argv:  # jax's pending full collection, before the import
    gc.collect()
    collect = (time.process_time() - c1) * 1e3
    c1, w1 = time.process_time(), time.perf_counter()
importlib.import_module(sys.argv[1])
c2, w2 = time.process_time(), time.perf_counter()
print((c1 - c0) * 1e3, (c2 - c1) * 1e3, (w1 - w0) * 1e3, (w2 - w1) * 1e3, collect)
"""
MODES = {
    "gc on": [],
    "gc on, jax's pending collection run first": ["--settle"],
    "gc disabled": ["--no-gc"],
}
IMPORTTIME = "import jax, optax; import nnx"
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _child(args: list[str], cwd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], check=True, env=_env(), cwd=cwd, capture_output=True, text=True
    )


def _parse_importtime(stderr: str) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Cumulative ms of the top-level entries (jax, optax, nnx, ...), and the modules
    imported by nnx itself, heaviest self time first."""
    top: dict[str, float] = {}
    children: list[tuple[float, str]] = []
    pending: list[tuple[float, str]] = []
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        self_us, cumulative_us, indent, name = m.groups()
        if indent == " ":  # top level (one space after the bar)
            top[name] = int(cumulative_us) / 1e3
            if name == "nnx":
                children = pending
            pending = []
        else:
            pending.append((int(self_us) / 1e3, name))
    return top, sorted(children, reverse=True)


@dataclasses.dataclass
class Probe:
    """One fresh interpreter: ms for ``import jax, optax``, then the import probed,
    and (``--settle``) the ``gc.collect()`` run between them."""

    base_cpu: float
    nnx_cpu: float
    base_wall: float
    nnx_wall: float
    collect_cpu: float = 0.0


@dataclasses.dataclass
class ImportReport:
    """Probes per module (``nnx``, and ``flax.nnx`` when installed) and mode."""

    probes: dict[tuple[str, str], list[Probe]]
    importtime_nnx_ms: float
    heaviest: list[tuple[float, str]]

    def median(
        self, field: str, no_gc: bool = False, *, mode: str = "", module: str = "nnx"
    ) -> float:
        """Median of ``field`` over the runs of ``module`` in ``mode`` (default: gc on,
        or gc disabled with ``no_gc``)."""
        mode = mode or ("gc disabled" if no_gc else "gc on")
        return float(statistics.median(getattr(p, field) for p in self.probes[(module, mode)]))

    @property
    def added_ms(self) -> float:
        """Median CPU time of ``import nnx`` with the collector on."""
        return self.median("nnx_cpu")

    @property
    def own_ms(self) -> float:
        """Median CPU time of ``import nnx`` after jax's pending collection."""
        return self.median("nnx_cpu", mode=SETTLED)

    @property
    def added_wall_ms(self) -> float:
        return self.median("nnx_wall")


SETTLED = "gc on, jax's pending collection run first"


def measure_imports(settings: Settings) -> ImportReport:
    runs = settings.import_runs
    modules = ["nnx"] + (["flax.nnx"] if importlib.util.find_spec("flax") is not None else [])
    probes: dict[tuple[str, str], list[Probe]] = {(m, mode): [] for m in modules for mode in MODES}
    with tempfile.TemporaryDirectory() as cwd:
        _child(["-c", IMPORTTIME], cwd)  # warm-up: bytecode caches, disk cache
        for module in modules[1:]:
            _child(["-c", f"import {module}"], cwd)
        for _ in range(runs):  # interleaved: every module and mode once per round
            for module in modules:
                for mode, args in MODES.items():
                    out = _child(["-c", PROBE, module, *args], cwd).stdout.split()
                    probes[(module, mode)].append(Probe(*(float(v) for v in out)))
        top, children = _parse_importtime(
            _child(["-X", "importtime", "-c", IMPORTTIME], cwd).stderr
        )
    return ImportReport(probes, top["nnx"], children[:6])


def run(settings: Settings) -> tuple[list[Table], ImportReport]:
    r = measure_imports(settings)
    runs = len(r.probes[("nnx", "gc on")])
    table = Table(
        "import nnx on top of import jax, optax (fresh interpreters)",
        ["measurement", "import jax, optax", "then import nnx (added)"],
        note=(
            f"Medians over {runs} fresh interpreters each (rounds interleave the rows). "
            "'gc on' is what a user gets and what the target used so far; it includes the "
            "full collection of jax's heap that the collector owes after import jax, optax "
            "and that the next ~2,000 allocations of any code trigger. The row with jax's "
            "pending collection run first (gc.collect() between the imports; its time in "
            "the middle column) is nnx's import itself; gc disabled shows the import work "
            "without any collection. `-X importtime` (one run, wall clock): nnx cumulative "
            f"{r.importtime_nnx_ms:.1f} ms; heaviest modules under nnx by self time: "
            + ", ".join(f"{name} {ms:.1f} ms" for ms, name in r.heaviest)
        ),
    )
    modules = sorted({m for m, _ in r.probes}, key=lambda m: m != "nnx")
    for module in modules:
        prefix = "" if module == "nnx" else f"{module} (reference): "
        for mode in MODES:
            for clock in ("cpu", "wall"):
                if clock == "wall" and (mode == SETTLED or module != "nnx"):
                    continue
                base = f"{r.median(f'base_{clock}', mode=mode, module=module):.0f} ms"
                if mode == SETTLED:
                    collect = r.median("collect_cpu", mode=mode, module=module)
                    base += f" (+ collection {collect:.0f} ms)"
                table.add(
                    f"{prefix}{'CPU' if clock == 'cpu' else 'wall'} time, {mode}",
                    base,
                    f"+{r.median(f'nnx_{clock}', mode=mode, module=module):.1f} ms",
                )
    return [table], r


if __name__ == "__main__":
    print(run(Settings(quick="--quick" in sys.argv))[0][0].text())
