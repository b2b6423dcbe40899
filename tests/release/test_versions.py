"""Release hygiene: versions, pins, CHANGELOGs and the CI session list agree.

- each package's version (``src/<pkg>/__about__.py``, read by hatch) is the top
  released entry (``## [x.y.z]``; an ``[Unreleased]`` section above it is allowed) of
  its CHANGELOG (the meta-package's is at the root);
- every requirement naming a member (the ``nnx`` meta-package's pins and the members'
  requirements on each other) admits that member's current version, and the meta
  package pins each member to a range with an upper bound;
- ``.ci/run`` runs exactly the sessions ``noxfile.py`` lists as ``CI_SESSIONS``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = sorted(path.name for path in (ROOT / "packages").iterdir() if path.is_dir())
VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
RELEASE_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\]", re.MULTILINE)


def _project(directory: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((directory / "pyproject.toml").read_text())[
        "project"
    ]
    return project


def _version(directory: Path) -> Version:
    """The version hatch reads from the file named in ``[tool.hatch.version] path``."""
    config = tomllib.loads((directory / "pyproject.toml").read_text())
    about = directory / config["tool"]["hatch"]["version"]["path"]
    match = VERSION_LINE.search(about.read_text())
    assert match is not None, f'{about}: no line `__version__ = "..."`'
    return Version(match.group(1))


def _versions() -> dict[str, Version]:
    versions = {name: _version(ROOT / "packages" / name) for name in MEMBERS}
    versions["nnx"] = _version(ROOT)
    return versions


def _requirements(directory: Path) -> list[Requirement]:
    project = _project(directory)
    found = [Requirement(text) for text in _strings(project.get("dependencies"))]
    extras = project.get("optional-dependencies") or {}
    assert isinstance(extras, dict)
    for texts in extras.values():
        found += [Requirement(text) for text in texts]
    return found


def _strings(value: object) -> list[str]:
    assert isinstance(value, list | type(None)), value
    return [str(item) for item in value or []]


def test_members_are_the_expected_packages() -> None:
    assert MEMBERS == ["nnx-graph", "nnx-nn", "nnx-optim", "nnx-viz"]
    for name in MEMBERS:
        assert _project(ROOT / "packages" / name)["name"] == name
    assert _project(ROOT)["name"] == "nnx"


@pytest.mark.parametrize("member", MEMBERS)
def test_changelog_top_release_is_the_package_version(member: str) -> None:
    directory = ROOT / "packages" / member
    changelog = (directory / "CHANGELOG.md").read_text()
    releases = [m.group("name") for m in RELEASE_HEADING.finditer(changelog)]
    released = [name for name in releases if name.lower() != "unreleased"]
    assert released, f"{member}/CHANGELOG.md has no `## [x.y.z]` release entry"
    # Only an [Unreleased] section may come before the newest release.
    assert all(name.lower() == "unreleased" for name in releases[: releases.index(released[0])])
    assert Version(released[0]) == _version(directory), (
        f"{member}: CHANGELOG's top release is {released[0]}, __about__.py says "
        f"{_version(directory)}. Fix: add a `## [{_version(directory)}]` entry (or bump)."
    )


def test_root_changelog_top_release_is_the_meta_package_version() -> None:
    changelog = ROOT / "CHANGELOG.md"
    released = [
        m.group("name")
        for m in RELEASE_HEADING.finditer(changelog.read_text())
        if m.group("name").lower() != "unreleased"
    ]
    assert released, "CHANGELOG.md has no `## [x.y.z]` release entry"
    assert Version(released[0]) == _version(ROOT), (released[0], _version(ROOT))


@pytest.mark.parametrize("directory", [".", *(f"packages/{name}" for name in MEMBERS)])
def test_requirements_on_members_admit_their_current_versions(directory: str) -> None:
    versions = _versions()
    checked = 0
    for requirement in _requirements(ROOT / directory):
        if requirement.name not in versions:
            continue
        checked += 1
        version = versions[requirement.name]
        assert requirement.specifier.contains(version), (
            f"{directory}/pyproject.toml requires {requirement}, but {requirement.name} "
            f"is {version}. Fix: widen the range or bump consistently."
        )
        # PyPI's unrelated `nnx` 0.0.8 must never satisfy a requirement on a member.
        assert not requirement.specifier.contains("0.0.8"), requirement
    if directory == ".":
        assert checked == len(MEMBERS)


def test_meta_package_pins_every_member_to_a_bounded_range() -> None:
    pins = {r.name: r for r in _requirements(ROOT)}
    assert set(pins) == set(MEMBERS)
    for requirement in pins.values():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {"<", "==", "~="}, f"nnx pins {requirement} without an upper bound"


def _ci_run_sessions() -> list[str]:
    text = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"^SESSIONS=\(([^)]*)\)", text, re.MULTILINE)
    assert match is not None, ".ci/run: no SESSIONS=(...) line"
    return match.group(1).split()


def _noxfile_ci_sessions() -> list[str]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "CI_SESSIONS" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(item) for item in value]
    raise AssertionError("noxfile.py defines no CI_SESSIONS list")


def test_ci_runs_the_sessions_the_noxfile_lists() -> None:
    sessions = _ci_run_sessions()
    assert sessions == _noxfile_ci_sessions()
    assert {"tests-cpu-3.11", "tests-cpu-3.13", "tests-lowest", "wheels"} <= set(sessions)
