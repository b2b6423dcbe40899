"""Shared helpers for the benchmarks: optional imports, interleaved min-of-repeats
timing, and tables that render as aligned text and as markdown.

Timing rules (every benchmark follows them):

* Each variant is a ``run(n)`` callable that performs ``n`` calls (and, where the
  calls produce arrays, waits for the last result), so the loop overhead is the
  caller's own and identical for every variant.
* Warm-up first (compilation, caches), then a calibration that picks ``n`` so one
  batch takes about ``target_s`` seconds, then ``repeats`` batches per variant,
  *interleaved* (variant order rotates each round) so a burst of load from other
  processes on a shared machine hits every variant alike.
* The reported figure is the minimum over batches of the per-call time: the least
  disturbed estimate of the cost.  The garbage collector is off while a batch runs
  (as in :mod:`timeit`).
* Each batch is timed with two clocks: the process CPU time (``time.process_time``,
  all threads, so XLA's compute threads count too) and the wall clock
  (``time.perf_counter``).  On a machine shared with other jobs the CPU time is far
  more stable (a preempted process accrues no CPU time), so it is the default
  (``--clock cpu``); ``--clock wall`` reports wall-clock figures instead.  Both
  minima are kept, so the Targets table shows the ratios under both clocks.
* Only ratios against a baseline measured in the same run are compared with
  targets; absolute microseconds are printed for information.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import importlib.util
import time
import types
import typing as tp

__all__ = [
    "NA",
    "Settings",
    "Timing",
    "Table",
    "fmt_ratio",
    "fmt_us",
    "measure",
    "optional",
]

NA = "n/a (not installed)"


def optional(name: str) -> types.ModuleType | None:
    """Import ``name`` if it is installed, else return None (no error)."""
    if importlib.util.find_spec(name.split(".")[0]) is None:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@dataclasses.dataclass(frozen=True)
class Settings:
    """How long to measure.  ``quick`` keeps the whole run well under two minutes."""

    quick: bool = False
    clock: str = "cpu"  # "cpu" (process CPU time) or "wall"

    @property
    def repeats(self) -> int:
        return 5 if self.quick else 15

    @property
    def target_s(self) -> float:
        """Duration of one timed batch."""
        return 0.01 if self.quick else 0.04

    @property
    def warmup(self) -> int:
        return 2 if self.quick else 5

    @property
    def import_runs(self) -> int:
        return 3 if self.quick else 7


Runner = tp.Callable[[int], None]


@dataclasses.dataclass(frozen=True)
class Timing:
    """Minimum per-call time of one variant in µs, under each clock."""

    cpu: float
    wall: float

    def get(self, clock: str) -> float:
        return self.cpu if clock == "cpu" else self.wall


def _batch(run: Runner, n: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``run(n)`` with the garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        run(n)
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        if enabled:
            gc.enable()


def measure(variants: tp.Mapping[str, Runner], settings: Settings) -> dict[str, Timing]:
    """Per-call time of each variant: min over interleaved batches, both clocks."""
    names = list(variants)
    number: dict[str, int] = {}
    for name in names:
        run = variants[name]
        run(settings.warmup)
        per_call = _batch(run, 1)[0]
        n = 1
        # grow n until a batch reaches a quarter of the target (autorange, as timeit)
        while per_call * n < settings.target_s / 4 and n < 1_000_000:
            n *= 4
            per_call = min(per_call, _batch(run, n)[0] / n)
        number[name] = max(1, min(1_000_000, round(settings.target_s / max(per_call, 1e-9))))
    cpu = {name: float("inf") for name in names}
    wall = dict(cpu)
    for r in range(settings.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            n = number[name]
            c, w = _batch(variants[name], n)
            cpu[name] = min(cpu[name], c / n)
            wall[name] = min(wall[name], w / n)
    return {name: Timing(cpu[name] * 1e6, wall[name] * 1e6) for name in names}


def fmt_us(us: float | None) -> str:
    if us is None:
        return NA
    if us >= 10_000:
        return f"{us / 1000:.1f} ms"
    if us >= 100:
        return f"{us:.0f} µs"
    return f"{us:.1f} µs"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return NA
    if ratio >= 100:
        return f"{ratio:.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


@dataclasses.dataclass
class Table:
    """A titled table with an optional note; renders as text or markdown."""

    title: str
    headers: list[str]
    rows: list[list[str]] = dataclasses.field(default_factory=list)
    note: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]

        def line(cells: tp.Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        out = [self.title, "=" * len(self.title), line(self.headers)]
        out.append("  ".join("-" * w for w in widths))
        out += [line(row) for row in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join("---" for _ in self.headers) + "|")
        out += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)
