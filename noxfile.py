"""Developer and CI sessions for the nnx monorepo.

    nox -l                       # list sessions
    nox -s tests-cpu             # the suite on every supported Python (3.11, 3.12, 3.13)
    nox -s tests-cpu-3.13        # ... on one of them
    nox -s tests-lowest          # the suite on the lowest versions the floors allow
    nox -s demo                  # the end-to-end demo

What CI runs (.ci/run) is `CI_SESSIONS` below; keep README.md in sync.

Local packages are always installed by path in ONE install call, so the resolver never
looks them up on an index (PyPI has an unrelated `nnx` 0.0.8; never require a bare
`nnx`). `uv` is used when available (it comes with `pip install "nox[uv]"`).
"""

from __future__ import annotations

import glob
import os
import pathlib
import re
import shutil
import subprocess
import tomllib

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
# A session whose Python is missing must fail, not skip and leave a green run. (With the
# uv backend, uv downloads a missing interpreter first.)
nox.options.error_on_missing_interpreters = True

# Every supported Python; `tests-cpu` is parametrised over them (tests-cpu-3.11, ...).
PYTHONS = ["3.11", "3.12", "3.13"]
# The Python of every other session, and of `tests-lowest`: the oldest supported one.
PYTHON = PYTHONS[0]
# What CI runs, in this order (.ci/run and README.md name the same list).
CI_SESSIONS = [
    "tests-cpu-3.11",
    "tests-cpu-3.13",
    "tests-lowest",
    "typecheck",
    "lint",
    "wheels",
    "docs",
]
ROOT = pathlib.Path(__file__).parent.resolve()

# Distribution name -> import name, in dependency order (nnx-graph first).
MEMBERS = {
    "nnx-graph": "nnx_graph",
    "nnx-nn": "nnx_nn",
    "nnx-optim": "nnx_optim",
    "nnx-viz": "nnx_viz",
}

# Everything the test suite may import besides the packages themselves. Playwright is
# the Python package only: it drives the system Chromium, never `playwright install`.
TEST_DEPS = [
    "pytest",
    "hypothesis",
    "optax",
    "treescope",
    "orbax-checkpoint",
    "safetensors",
    "scikit-learn",
    "matplotlib",
    "tqdm",
    "playwright",
    "nbclient",
    "ipykernel",
]

# Simulated devices for the `multidevice` tests; XLA reads this before jax imports.
MULTIDEVICE_XLA_FLAGS = "--xla_force_host_platform_device_count=8"

LINT_PATHS = ["packages", "src", "tests", "benchmarks", "examples", "noxfile.py"]


def _expose_pyenv_interpreters() -> None:
    """Make pyenv's `python3.X` shims work for every version in `PYTHONS`.

    pyenv puts shims on PATH for every installed version, but a shim only runs the
    versions selected by `PYENV_VERSION` (or `.python-version` / the global setting);
    the others fail ("command not found ... exists in these Python versions"). When
    pyenv is present, keep the selected versions first (so `python3` does not change;
    a pyenv shim running nox has already exported `PYENV_VERSION`) and append the
    newest installed patch release of each Python in `PYTHONS`. Without pyenv nothing
    changes: nox looks for `python3.X` on PATH (with uv, uv looks for it too and tries
    to download it) and a missing interpreter is an error, never a skip.
    """
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return
    try:
        selected = subprocess.run(
            [pyenv, "version-name"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        installed = subprocess.run(
            [pyenv, "versions", "--bare", "--skip-aliases"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return
    versions = [v for v in selected.split(":") if v and v != "system"]
    for minor in PYTHONS:
        patches = [v for v in installed if re.fullmatch(rf"{re.escape(minor)}\.\d+", v)]
        if patches and not any(re.fullmatch(rf"{re.escape(minor)}\.\d+", v) for v in versions):
            versions.append(max(patches, key=lambda v: int(v.rsplit(".", 1)[1])))
    if versions:
        os.environ["PYENV_VERSION"] = ":".join(versions)


_expose_pyenv_interpreters()


def _editable_local_packages(extras: dict[str, str] | None = None) -> list[str]:
    """`-e <path>` for every member and the meta-package, for one install call."""
    args: list[str] = []
    for name in MEMBERS:
        extra = f"[{extras[name]}]" if extras and name in extras else ""
        args += ["-e", f"packages/{name}{extra}"]
    return [*args, "-e", "."]


def _install_local(session: nox.Session, *extra: str) -> None:
    session.install(*_editable_local_packages(), *extra)


def _gpu_visible() -> bool:
    """Cheap check for an NVIDIA GPU, without importing jax."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return False
    try:
        result = subprocess.run(
            [nvidia_smi, "-L"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "GPU" in result.stdout


def _pytest(session: nox.Session, build: str) -> None:
    """Run the suite in two pytest processes (single-device, then `multidevice`)."""
    # Exit code 5 means "no tests collected": fine while a marker selects nothing.
    common = ["--ignore=tests/oracle", *session.posargs]
    if build == "cuda12":
        deselect = "not multidevice"
        # The general suite checks float32 results with CPU-sized tolerances; on recent
        # NVIDIA GPUs XLA may compute float32 dots in TF32 by default. The `gpu` tests
        # set the precision they test themselves.
        env = {"JAX_DEFAULT_MATMUL_PRECISION": "highest"}
    else:
        deselect = "not multidevice and not gpu"
        env = {}
    session.run("pytest", "tests", "-q", "-m", deselect, *common, env=env, success_codes=[0, 5])
    # Separate process: XLA_FLAGS must be set before jax is imported. The simulated
    # devices are host (CPU) devices, so pin the platform even in the CUDA build.
    session.run(
        "pytest",
        "tests",
        "-q",
        "-m",
        "multidevice",
        *common,
        env={"XLA_FLAGS": MULTIDEVICE_XLA_FLAGS, "JAX_PLATFORMS": "cpu"},
        success_codes=[0, 5],
    )


def _print_versions(session: nox.Session) -> None:
    names = ["jaxlib", "numpy", *_declared_floors()]
    code = (
        "import importlib.metadata as md, platform; "
        "print('python', platform.python_version()); "
        f"[print(n, md.version(n)) for n in {names!r}]"
    )
    session.run("python", "-c", code, silent=False)


@nox.session(name="tests-cpu", python=PYTHONS, tags=["tests"])
def tests_cpu(session: nox.Session) -> None:
    """Test suite on the CPU build of JAX (gpu-marked tests deselected)."""
    _install_local(session, "jax", *TEST_DEPS)
    _print_versions(session)
    _pytest(session, "cpu")


@nox.session(name="tests-cuda12", python=PYTHON, tags=["tests"])
def tests_cuda12(session: nox.Session) -> None:
    """Test suite on jax[cuda12] with the `gpu` tests; skips without a GPU.

    Set NNX_REQUIRE_GPU=1 to make a missing GPU an error instead of a skip.
    """
    if not _gpu_visible():
        reason = "no NVIDIA GPU visible (`nvidia-smi -L` found none)"
        if os.environ.get("NNX_REQUIRE_GPU") == "1":
            session.error(f"NNX_REQUIRE_GPU=1 but {reason}")
        session.skip(f"{reason}; set NNX_REQUIRE_GPU=1 to make this an error")
    _install_local(session, "jax[cuda12]", *TEST_DEPS)
    _print_versions(session)
    # Fail (not skip) the `gpu` tests if JAX cannot use the GPU, e.g. a CUDA mismatch.
    session.env["NNX_REQUIRE_GPU"] = "1"
    _pytest(session, "cuda12")


@nox.session(name="tests-lowest", python=PYTHON, tags=["tests"])
def tests_lowest(session: nox.Session) -> None:
    """Test suite with every declared dependency at the lowest version its floor allows.

    The test tools come first at their newest versions; then every local package is
    installed with `uv pip install --resolution lowest-direct`, which picks the lowest
    version each package's own `dependencies` (and the `checkpoint` extra) allow. The
    installed versions are then checked against the floors, so a floor that cannot be
    installed, or a tool that drags a dependency upwards, fails the session.
    """
    if session.venv_backend != "uv":
        session.error("tests-lowest needs the uv backend: pip install 'nox[uv]'")
    floors = _declared_floors()
    tools = [dep for dep in TEST_DEPS if dep not in floors]
    session.install(*tools)
    # `--reinstall-package`: a dependency a tool already pulled in at a newer version
    # would otherwise count as satisfied and stay.
    reinstall = [arg for name in ["jaxlib", *floors] for arg in ("--reinstall-package", name)]
    session.install(
        "--resolution",
        "lowest-direct",
        *reinstall,
        *_editable_local_packages(extras={"nnx-optim": "checkpoint"}),
    )
    _check_floors_installed(session)
    _print_versions(session)
    _pytest(session, "cpu")


def _declared_floors() -> dict[str, str]:
    """`{name: floor}` for every `name>=floor` in a member's dependencies or extras."""
    floors: dict[str, str] = {}
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        requirements = list(project.get("dependencies", []))
        for extra in project.get("optional-dependencies", {}).values():
            requirements += extra
        for requirement in requirements:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[.*\])?\s*>=\s*([0-9.]+)(,.*)?", requirement)
            if match is None or match.group(1).startswith("nnx"):
                continue
            name, floor = match.group(1), match.group(3)
            if floors.setdefault(name, floor) != floor:
                raise RuntimeError(f"{pyproject}: {name} floor {floor} != {floors[name]} elsewhere")
    return floors


def _check_floors_installed(session: nox.Session) -> None:
    floors = _declared_floors()
    code = "import importlib.metadata as md, sys; [print(n, md.version(n)) for n in sys.argv[1:]]"
    output = session.run("python", "-c", code, *floors, silent=True)
    installed = dict(line.split() for line in str(output).splitlines() if line.strip())
    wrong = []
    for name, floor in floors.items():
        ok = installed.get(name) == floor
        session.log(
            f"{name}>={floor}: installed {installed.get(name)}{'' if ok else '  <-- NOT THE FLOOR'}"
        )
        if not ok:
            wrong.append(name)
    if wrong:
        session.error(f"installed versions differ from the declared floors: {wrong}")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package (configuration in pyproject.toml)."""
    _install_local(session, "mypy", "jax", "optax", "treescope")
    # No paths: `[tool.mypy] packages` names nnx_graph, nnx_nn, nnx_optim, nnx_viz, nnx.
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check (configuration in pyproject.toml)."""
    session.install("ruff")
    paths = [path for path in LINT_PATHS if (ROOT / path).exists()]
    session.run("ruff", "check", *paths, *session.posargs)
    session.run("ruff", "format", "--check", *paths)


def _wheel_for(dist: pathlib.Path, distribution: str) -> str:
    pattern = str(dist / f"{distribution.replace('-', '_')}-*.whl")
    found = glob.glob(pattern)
    if len(found) != 1:
        raise RuntimeError(f"expected one wheel matching {pattern}, found {found}")
    return found[0]


def _fresh_venv(session: nox.Session, location: pathlib.Path) -> str:
    """Create an empty venv at `location` (same interpreter as the session); return its python."""
    if location.exists():
        shutil.rmtree(location)
    base_python = str(pathlib.Path(session.bin) / "python")
    if session.venv_backend == "uv":
        session.run("uv", "venv", "--quiet", "--python", base_python, str(location))
    else:
        session.run(base_python, "-m", "venv", str(location))
    return str(location / "bin" / "python")


def _install_into(session: nox.Session, python: str, *requirements: str) -> None:
    """Install into the venv of `python` (not the session's own venv)."""
    if session.venv_backend == "uv":
        session.run("uv", "pip", "install", "--quiet", "--python", python, *requirements)
    else:
        session.run(python, "-m", "pip", "install", "--quiet", *requirements, external=True)


@nox.session(python=PYTHON)
def wheels(session: nox.Session) -> None:
    """Build every sdist and wheel, `twine check` them; install each wheel alone and import it."""
    tmp = pathlib.Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    dist.mkdir()

    session.install("twine", *([] if session.venv_backend == "uv" else ["build"]))
    projects = [*(f"packages/{name}" for name in MEMBERS), "."]
    for project in projects:
        # Both build the sdist first and the wheel from the unpacked sdist, so a file
        # missing from an sdist breaks the wheel build here rather than for users.
        if session.venv_backend == "uv":
            session.run("uv", "build", "--out-dir", str(dist), project)
        else:
            session.run("python", "-m", "build", "--outdir", str(dist), project)
    sdists = sorted(dist.glob("*.tar.gz"))
    wheel_files = sorted(dist.glob("*.whl"))
    session.log("built: " + ", ".join(p.name for p in [*sdists, *wheel_files]))
    if len(sdists) != len(projects) or len(wheel_files) != len(projects):
        session.error(f"expected {len(projects)} sdists and wheels, found {sdists + wheel_files}")
    # Metadata and README rendering of every artifact, as PyPI would check it on upload.
    session.run("twine", "check", "--strict", *map(str, [*sdists, *wheel_files]))

    graph_wheel = _wheel_for(dist, "nnx-graph")
    # Run imports from the temp dir so nothing in the checkout can shadow the wheels.
    with session.chdir(tmp):
        for distribution, import_name in MEMBERS.items():
            python = _fresh_venv(session, tmp / f"venv-{distribution}")
            wheel = _wheel_for(dist, distribution)
            # Members other than nnx-graph get the nnx-graph wheel by path: its version
            # must satisfy their declared range, and the name is never looked up online.
            local = [wheel] if wheel == graph_wheel else [wheel, graph_wheel]
            _install_into(session, python, "--find-links", str(dist), *local)
            session.run(python, "-c", _import_check(distribution, import_name), external=True)

        python = _fresh_venv(session, tmp / "venv-nnx")
        # The floor rules out PyPI's unrelated nnx 0.0.8; the members come from dist.
        _install_into(session, python, "--find-links", str(dist), "nnx>=0.1")
        session.run(python, "-c", _import_check("nnx", "nnx"), external=True)


def _import_check(distribution: str, import_name: str) -> str:
    """A one-liner that imports the package and checks it came from the built wheel."""
    return (
        "import importlib, importlib.metadata as md, pathlib, sys; "
        f"module = importlib.import_module({import_name!r}); "
        "where = pathlib.Path(module.__file__).resolve(); "
        "assert 'site-packages' in where.parts, where; "
        f"print({distribution!r}, md.version({distribution!r}), 'OK from', where.parent)"
    )


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Train the digits classifier of examples/demo.py (the README's main job)."""
    _install_local(
        session,
        "jax",
        "optax",
        "treescope",
        "orbax-checkpoint",
        "scikit-learn",
        "matplotlib",
        "tqdm",
    )
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the jax.jit floor, flax.nnx and equinox."""
    if not (ROOT / "benchmarks" / "run.py").exists():
        session.skip("benchmarks/run.py does not exist yet")
    _install_local(session, "jax", "optax", "treescope", "flax", "equinox")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python=PYTHON)
def oracle(session: nox.Session) -> None:
    """Numerical comparison with flax.nnx (the only session that installs flax)."""
    if not (ROOT / "tests" / "oracle").exists():
        session.skip("tests/oracle does not exist yet")
    _install_local(session, "jax", "flax", *TEST_DEPS)
    session.run("pytest", "tests/oracle", "-q", "-m", "oracle", *session.posargs)


# The documentation site: Sphinx + myst-nb (as the JAX, Flax and optax docs).
DOCS_DEPS = [
    "sphinx>=8",
    "myst-nb>=1.2",
    "sphinx-book-theme>=1.1",
    "sphinx-copybutton>=0.5",
    "ipykernel",
]
DOCS_HTML = ROOT / "docs" / "_build" / "html"


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site (docs/_build/html) and check it in Chromium.

    Sphinx runs with warnings as errors and executes every guide notebook; then
    tests/docs/test_docs_browser.py opens three pages in headless Chromium.
    """
    _install_local(
        session,
        "jax",
        "optax",
        "treescope",
        "orbax-checkpoint",
        "safetensors",
        *DOCS_DEPS,
        "pytest",
        "playwright",
    )
    env = {"JAX_PLATFORMS": "cpu"}
    session.run(
        "sphinx-build",
        "-b",
        "html",
        "-E",  # fresh environment: every page, notebook and API entry is rebuilt
        "-W",
        "--keep-going",
        "-j",
        "auto",  # pages (and so notebooks) are read in parallel, one process per core
        "-d",
        str(ROOT / "docs" / "_build" / "doctrees"),
        "docs",
        str(DOCS_HTML),
        *session.posargs,
        env=env,
    )
    session.run(
        "pytest",
        "tests/docs/test_docs_browser.py",
        "-q",
        "-m",
        "browser",
        env={**env, "NNX_REQUIRE_DOCS": "1"},
    )
    session.log(f"documentation built: {DOCS_HTML / 'index.html'}")


# Plain `nox` runs what CI runs.
nox.options.sessions = CI_SESSIONS


@nox.session(name="flax-suite", python=PYTHON)
def flax_suite(session: nox.Session) -> None:
    """Drop-in measurement: Flax NNX's own tests (downloaded from PyPI at run time, never
    stored here) against flax.nnx and, with the import changed, against nnx."""
    _install_local(session, "jax", "flax", "absl-py", "pip", *TEST_DEPS)
    session.run("python", "benchmarks/flax_suite.py", *session.posargs)
