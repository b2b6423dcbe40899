"""What ``import nnx`` adds to ``import jax, optax``, in fresh interpreters.

Two measurements, both medians over several fresh interpreters:

* wall time of ``python -c "import jax, optax"`` vs ``python -c "import jax, optax,
  nnx"`` (runs interleaved); the difference is what a user waits for;
* ``python -X importtime -c "import jax, optax; import nnx"``: the cumulative import
  time of the top-level ``nnx`` entry, i.e. everything importing nnx pulls in beyond
  jax and optax (less noisy than the wall-time difference).

The subprocesses run without ``PYTHONDONTWRITEBYTECODE`` after one untimed warm-up,
so bytecode caches exist as they would after a normal ``pip install``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from _common import Settings, Table

__all__ = ["ImportReport", "run"]

BASE = "import jax, optax"
WITH_NNX = "import jax, optax, nnx"
IMPORTTIME = "import jax, optax; import nnx"
IMPORTTIME_GC_OFF = "import gc; gc.disable(); import jax, optax; import nnx"
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _child(args: list[str], cwd: str) -> tuple[float, float, str]:
    """Run a fresh interpreter; return (wall ms, CPU ms of the child, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args],
        check=True,
        env=_env(),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = (time.perf_counter() - start) * 1e3
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3
    return wall, cpu, proc.stderr


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
class ImportReport:
    importtime_ms: list[float]  # cumulative `nnx` entry, per run
    base_importtime_ms: list[float]  # cumulative jax + optax entries, per run
    heaviest: list[tuple[float, str]]
    gc_off_ms: list[float] = dataclasses.field(default_factory=list)  # same, gc disabled
    wall_base_ms: list[float] = dataclasses.field(default_factory=list)
    wall_nnx_ms: list[float] = dataclasses.field(default_factory=list)
    cpu_base_ms: list[float] = dataclasses.field(default_factory=list)
    cpu_nnx_ms: list[float] = dataclasses.field(default_factory=list)

    @property
    def added_ms(self) -> float:
        """The figure compared with the target: median cumulative `nnx` importtime."""
        return statistics.median(self.importtime_ms)


def measure_imports(settings: Settings) -> ImportReport:
    """``-X importtime`` runs always; wall/CPU pairs of fresh interpreters unless quick."""
    runs = settings.import_runs
    with tempfile.TemporaryDirectory() as cwd:
        _child(["-c", WITH_NNX], cwd)  # warm-up: bytecode caches, disk cache
        report = ImportReport([], [], [])
        for _ in range(runs):
            top, children = _parse_importtime(
                _child(["-X", "importtime", "-c", IMPORTTIME], cwd)[2]
            )
            report.importtime_ms.append(top["nnx"])
            report.base_importtime_ms.append(top["jax"] + top["optax"])
            if not report.heaviest:
                report.heaviest = children[:5]
            top, _ = _parse_importtime(
                _child(["-X", "importtime", "-c", IMPORTTIME_GC_OFF], cwd)[2]
            )
            report.gc_off_ms.append(top["nnx"])
        if not settings.quick:
            for i in range(runs):
                pair = [
                    (BASE, report.wall_base_ms, report.cpu_base_ms),
                    (WITH_NNX, report.wall_nnx_ms, report.cpu_nnx_ms),
                ]
                for code, wall, cpu in pair if i % 2 == 0 else pair[::-1]:
                    w, c, _ = _child(["-c", code], cwd)
                    wall.append(w)
                    cpu.append(c)
    return report


def run(settings: Settings) -> tuple[list[Table], ImportReport]:
    r = measure_imports(settings)
    med = statistics.median
    table = Table(
        "import nnx on top of import jax, optax (fresh interpreters)",
        ["measurement", "jax, optax", "jax, optax, nnx", "added by nnx"],
        note=(
            f"Medians over {len(r.importtime_ms)} `-X importtime` runs"
            + (
                ""
                if not r.wall_base_ms
                else f" and {len(r.wall_base_ms)} interleaved pairs of plain runs (wall and CPU "
                "time of the whole interpreter, startup included)"
            )
            + ". The target uses the `-X importtime` figure (cumulative time of the "
            "top-level `nnx` entry: everything nnx imports beyond jax and optax). "
            "With gc disabled it shows the import work alone: the difference is a full "
            "garbage collection of the heap jax built, which nnx's allocations trigger "
            "(it shows up as the self time of whichever module is loading then). "
            "Heaviest modules under nnx (self time, first run): "
            + ", ".join(f"{name} {ms:.1f} ms" for ms, name in r.heaviest)
        ),
    )
    base_it = med(r.base_importtime_ms)
    table.add(
        "-X importtime (cumulative)",
        f"{base_it:.0f} ms",
        f"{base_it + r.added_ms:.0f} ms",
        f"+{r.added_ms:.1f} ms",
    )
    table.add("-X importtime, gc disabled", "", "", f"+{med(r.gc_off_ms):.1f} ms")
    for what, base, with_nnx in (
        ("wall time", r.wall_base_ms, r.wall_nnx_ms),
        ("CPU time", r.cpu_base_ms, r.cpu_nnx_ms),
    ):
        if base:
            table.add(
                f"{what} of the interpreter",
                f"{med(base):.0f} ms",
                f"{med(with_nnx):.0f} ms",
                f"{med(with_nnx) - med(base):+.1f} ms",
            )
    return [table], r


if __name__ == "__main__":
    print(run(Settings(quick="--quick" in sys.argv))[0][0].text())
