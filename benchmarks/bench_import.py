"""What ``import nnx`` adds to ``import jax, optax``, in fresh interpreters.

Each run starts a fresh interpreter that imports jax and optax, then nnx, reading the
process CPU time and the wall clock around each import; medians over several runs.
CPU time is the primary figure (a process waiting for a core on a busy machine
accrues none), wall time is shown too.  The same probe runs once more per run with
the garbage collector disabled: a full collection of the large heap jax leaves behind
may or may not be triggered by nnx's allocations, and lands in nnx's figure if it is.
One ``python -X importtime`` run lists the heaviest modules nnx brings in.

The subprocesses run without ``PYTHONDONTWRITEBYTECODE`` after one untimed warm-up,
so bytecode caches exist, as after a normal ``pip install``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile

from _common import Settings, Table

__all__ = ["ImportReport", "run"]

PROBE = """
import gc, sys, time
if "--no-gc" in sys.argv:
    gc.disable()
c0, w0 = time.process_time(), time.perf_counter()
import jax, optax
c1, w1 = time.process_time(), time.perf_counter()
import nnx
c2, w2 = time.process_time(), time.perf_counter()
print((c1 - c0) * 1e3, (c2 - c1) * 1e3, (w1 - w0) * 1e3, (w2 - w1) * 1e3)
"""
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
    """One fresh interpreter: ms for ``import jax, optax`` and then ``import nnx``."""

    base_cpu: float
    nnx_cpu: float
    base_wall: float
    nnx_wall: float


@dataclasses.dataclass
class ImportReport:
    probes: list[Probe]
    probes_no_gc: list[Probe]
    importtime_nnx_ms: float
    heaviest: list[tuple[float, str]]

    def median(self, field: str, no_gc: bool = False) -> float:
        probes = self.probes_no_gc if no_gc else self.probes
        return float(statistics.median(getattr(p, field) for p in probes))

    @property
    def added_ms(self) -> float:
        """The figure compared with the target: median CPU time of ``import nnx``."""
        return self.median("nnx_cpu")

    @property
    def added_wall_ms(self) -> float:
        return self.median("nnx_wall")


def measure_imports(settings: Settings) -> ImportReport:
    runs = settings.import_runs
    with tempfile.TemporaryDirectory() as cwd:
        _child(["-c", IMPORTTIME], cwd)  # warm-up: bytecode caches, disk cache
        probes: list[Probe] = []
        no_gc: list[Probe] = []
        for _ in range(runs):
            for args, out in (([], probes), (["--no-gc"], no_gc)):
                values = [float(v) for v in _child(["-c", PROBE, *args], cwd).stdout.split()]
                out.append(Probe(*values))
        top, children = _parse_importtime(
            _child(["-X", "importtime", "-c", IMPORTTIME], cwd).stderr
        )
    return ImportReport(probes, no_gc, top["nnx"], children[:6])


def run(settings: Settings) -> tuple[list[Table], ImportReport]:
    r = measure_imports(settings)
    table = Table(
        "import nnx on top of import jax, optax (fresh interpreters)",
        ["measurement", "import jax, optax", "then import nnx (added)"],
        note=(
            f"Medians over {len(r.probes)} fresh interpreters each. The target uses the CPU "
            "time with the garbage collector on (what a user gets); gc disabled shows the "
            "import work without the collections of jax's large heap that nnx's allocations "
            "may trigger. `-X importtime` (one run, wall clock): nnx cumulative "
            f"{r.importtime_nnx_ms:.1f} ms; heaviest modules under nnx by self time: "
            + ", ".join(f"{name} {ms:.1f} ms" for ms, name in r.heaviest)
        ),
    )
    for label, no_gc in (("gc on", False), ("gc disabled", True)):
        for clock in ("cpu", "wall"):
            table.add(
                f"{'CPU' if clock == 'cpu' else 'wall'} time, {label}",
                f"{r.median(f'base_{clock}', no_gc):.0f} ms",
                f"+{r.median(f'nnx_{clock}', no_gc):.1f} ms",
            )
    return [table], r


if __name__ == "__main__":
    print(run(Settings(quick="--quick" in sys.argv))[0][0].text())
