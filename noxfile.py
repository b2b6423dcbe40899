"""Developer and CI sessions for the nnx monorepo.

    nox -l                                   # list sessions
    nox -s tests-cpu typecheck lint wheels   # what CI runs (.ci/run)
    nox -s demo                              # the end-to-end demo

Local packages are always installed by path in ONE install call, so the resolver never
looks them up on an index (PyPI has an unrelated `nnx` 0.0.8; never require a bare
`nnx`). `uv` is used when available (it comes with `pip install "nox[uv]"`).
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
# A session whose Python is missing must fail, not skip and leave a green run. (With the
# uv backend, uv downloads a missing interpreter first.)
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests-cpu", "typecheck", "lint", "wheels"]

PYTHON = "3.11"
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
]

# Simulated devices for the `multidevice` tests; XLA reads this before jax imports.
MULTIDEVICE_XLA_FLAGS = "--xla_force_host_platform_device_count=8"

LINT_PATHS = ["packages", "src", "tests", "benchmarks", "examples", "noxfile.py"]


def _editable_local_packages() -> list[str]:
    """`-e <path>` for every member and the meta-package, for one install call."""
    args: list[str] = []
    for name in MEMBERS:
        args += ["-e", f"packages/{name}"]
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


def _run_tests(session: nox.Session, build: str) -> None:
    if build == "cuda12":
        if not _gpu_visible():
            reason = "no NVIDIA GPU visible (`nvidia-smi -L` found none)"
            if os.environ.get("NNX_REQUIRE_GPU") == "1":
                session.error(f"NNX_REQUIRE_GPU=1 but {reason}")
            session.skip(f"{reason}; set NNX_REQUIRE_GPU=1 to make this an error")
        jax_requirement = "jax[cuda12]"
        deselect = "not multidevice"
    else:
        jax_requirement = "jax"
        deselect = "not multidevice and not gpu"

    _install_local(session, jax_requirement, *TEST_DEPS)

    # Exit code 5 means "no tests collected": fine while a marker selects nothing.
    common = ["--ignore=tests/oracle", *session.posargs]
    session.run("pytest", "tests", "-q", "-m", deselect, *common, success_codes=[0, 5])
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


@nox.session(name="tests-cpu", python=PYTHON, tags=["tests"])
def tests_cpu(session: nox.Session) -> None:
    """Test suite on the CPU build of JAX (gpu-marked tests deselected)."""
    _run_tests(session, "cpu")


@nox.session(name="tests-cuda12", python=PYTHON, tags=["tests"])
def tests_cuda12(session: nox.Session) -> None:
    """Test suite on jax[cuda12]; skipped without a GPU unless NNX_REQUIRE_GPU=1."""
    _run_tests(session, "cuda12")


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
    """Build every wheel; install each one alone in a fresh venv and import it."""
    tmp = pathlib.Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    dist.mkdir()

    if session.venv_backend != "uv":
        session.install("build")
    for project in [*(f"packages/{name}" for name in MEMBERS), "."]:
        if session.venv_backend == "uv":
            session.run("uv", "build", "--wheel", "--out-dir", str(dist), project)
        else:
            session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), project)
    session.log("built: " + ", ".join(sorted(p.name for p in dist.glob("*.whl"))))

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
