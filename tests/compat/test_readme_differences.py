"""The README's migration section lists exactly the deliberate differences.

The table of deliberate differences from flax.nnx lives in
``tests/oracle/deliberate_differences.py``; each entry carries the line the README
shows. This test reads the README's "Deliberate differences" list and checks it holds
every entry's line, and nothing else, so the two cannot drift apart.
"""

from __future__ import annotations

import importlib.util
import pathlib
import types

ROOT = pathlib.Path(__file__).resolve().parents[2]
START = "<!-- deliberate-differences:start -->"
END = "<!-- deliberate-differences:end -->"


def _table() -> types.ModuleType:
    path = ROOT / "tests" / "oracle" / "deliberate_differences.py"
    spec = importlib.util.spec_from_file_location("deliberate_differences", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_bullets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert START in text and END in text, f"README.md lacks the {START} ... {END} markers"
    section = text.split(START, 1)[1].split(END, 1)[0]
    bullets: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            bullets.append(line[2:].strip())
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()  # a wrapped bullet
    return bullets


def test_readme_lists_exactly_the_deliberate_differences() -> None:
    expected = [difference.readme for difference in _table().DIFFERENCES]
    found = _readme_bullets()
    missing = [line for line in expected if line not in found]
    extra = [line for line in found if line not in expected]
    assert not missing and not extra, (
        "README.md's deliberate-differences list and tests/oracle/deliberate_differences.py "
        f"disagree.\nmissing from README: {missing}\nnot in the table: {extra}\n"
        "Fix: copy each entry's `readme` text into the README list (one bullet each)."
    )
    assert len(found) == len(set(found)), f"a difference is listed twice: {found}"
