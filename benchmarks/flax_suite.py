"""Drop-in measurement: run Flax NNX's own test suite against nnx.

Downloads the flax sdist of the given version from PyPI into a scratch directory
(nothing of it is kept in this repository), makes two copies of its ``tests/nnx``
(without the Linen ``bridge`` tests), and in the second copy makes the one change a
user makes: ``from flax import nnx`` becomes ``import nnx`` (and ``flax.nnx.`` paths
become ``nnx.``). Both copies run under pytest; the report counts how many of the
tests that pass against flax.nnx also pass against nnx, per test file, and lists the
most common failure messages.

Usage (needs flax, absl-py and nnx installed; ``nox -s flax-suite`` does that)::

    python benchmarks/flax_suite.py --version 0.12.8 [--workdir DIR] [-k EXPR]

Tests that exercise Flax internals (``flax.errors``, ``flax.config``, Linen, private
graph classes) are counted like any other: the number is what a user with the whole
suite would see.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET

REWRITES = [
    (re.compile(r"^(\s*)from flax import nnx$", re.M), r"\1import nnx"),
    (re.compile(r"^from flax import (.*)\bnnx, (.*)$", re.M), r"from flax import \1\2\nimport nnx"),
    (re.compile(r"^from flax import (.*), nnx$", re.M), r"from flax import \1\nimport nnx"),
    (re.compile(r"\bfrom flax\.nnx\."), "from nnx."),
    (re.compile(r"\bfrom flax\.nnx import\b"), "from nnx import"),
    (re.compile(r"^import flax\.nnx as nnx$", re.M), "import nnx"),
]


def fetch(version: str, workdir: pathlib.Path) -> pathlib.Path:
    """Download (with pip, so the configured package index is used) and unpack the
    flax sdist; return its ``tests/nnx`` directory."""
    archive = workdir / f"flax-{version}.tar.gz"
    if not archive.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"flax=={version}",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--no-build-isolation",
                "-d",
                str(workdir),
            ],
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / f"flax-{version}" / "tests" / "nnx"


def prepare(source: pathlib.Path, workdir: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Copy the suite twice; rewrite the imports of the second copy."""
    flax_side, nnx_side = workdir / "flax_side", workdir / "nnx_side"
    for target in (flax_side, nnx_side):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("bridge"))
    for path in nnx_side.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern, replacement in REWRITES:
            text = pattern.sub(replacement, text)
        path.write_text(text, encoding="utf-8")
    return flax_side, nnx_side


def run(directory: pathlib.Path, extra: list[str]) -> dict[str, tuple[str, str]]:
    """Run pytest in ``directory``; map test id -> (outcome, first line of failure)."""
    report = directory.with_suffix(".xml")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "-W",
            "ignore::DeprecationWarning",
            f"--junitxml={report}",
            *extra,
            ".",
        ],
        cwd=directory,
        check=False,
    )
    return read(report)


def read(report: pathlib.Path) -> dict[str, tuple[str, str]]:
    """Outcomes recorded in a junit XML report."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "pass", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "fail"
                first = (child.get("message") or "").strip().splitlines()[:1]
                message = first[0][:110] if first else ""
            elif child.tag == "skipped":
                outcome = "skip"
        outcomes[key] = (outcome, message)
    return outcomes


def summarise(flax: dict[str, tuple[str, str]], ours: dict[str, tuple[str, str]]) -> str:
    baseline = [key for key, (outcome, _) in flax.items() if outcome == "pass"]
    passed = [key for key in baseline if ours.get(key, ("missing", ""))[0] == "pass"]
    per_file: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for key in baseline:
        module = key.split("::")[0].rsplit(".", 1)[0]
        per_file[module][1] += 1
        per_file[module][0] += ours.get(key, ("missing", ""))[0] == "pass"
    lines = [
        f"Flax NNX test suite: {len(baseline)} tests pass against flax.nnx; "
        f"{len(passed)} of them ({100 * len(passed) / max(len(baseline), 1):.1f}%) "
        "pass against nnx with the import changed.",
        "",
        "| test file | pass on nnx / pass on flax |",
        "|---|---|",
    ]
    lines += [f"| {name} | {hit}/{total} |" for name, (hit, total) in sorted(per_file.items())]
    failures = collections.Counter(
        ours[key][1] for key in baseline if key in ours and ours[key][0] == "fail"
    )
    lines += ["", "Most common failure messages on nnx:"]
    lines += [f"- {count} x {message}" for message, count in failures.most_common(15)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="0.12.8")
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    parser.add_argument(
        "--baseline",
        type=pathlib.Path,
        default=None,
        help="reuse the flax-side junit XML of an earlier run instead of re-running it",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k expr)")
    args = parser.parse_args(argv)
    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="flax-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = fetch(args.version, workdir)
    flax_side, nnx_side = prepare(source, workdir)
    flax = read(args.baseline) if args.baseline else run(flax_side, args.pytest_args)
    ours = run(nnx_side, args.pytest_args)
    print(summarise(flax, ours))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
