"""Test-session settings for the nnx_nn tests.

This suite compiles about a thousand small XLA programs (every layer, shape and
dtype it checks); on CPU most of its run time is XLA's optimisation passes over
those programs. When this conftest loads before any JAX computation has run, it asks
XLA for fewer compile-time optimisations (``--xla_backend_optimization_level=0``,
``--xla_llvm_disable_expensive_passes``): the programs compute the same values and
are faster to build, slower to run, the right trade for tests of small arrays.

Flags already in ``XLA_FLAGS`` (e.g. the simulated device count) are kept, the
environment variable is restored as soon as the backend has read it (subprocesses,
e.g. examples run by other tests, do not inherit it), and if the backend is already
initialised nothing changes.
"""

from __future__ import annotations

import os

_FAST_COMPILE_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true",
)


def _use_fast_compile_flags(xla_bridge: object) -> None:
    original = os.environ.get("XLA_FLAGS")
    flags = (original or "").split()
    present = {flag.split("=")[0] for flag in flags}
    flags += [flag for flag in _FAST_COMPILE_FLAGS if flag.split("=")[0] not in present]
    os.environ["XLA_FLAGS"] = " ".join(flags)

    def restore(_backend: object) -> None:
        if original is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = original

    xla_bridge.register_backend_initialization_hook(restore)  # type: ignore[attr-defined]


try:  # a private JAX module: if it moves, run with XLA's default flags
    from jax._src import xla_bridge as _xla_bridge

    _initialized = _xla_bridge.backends_are_initialized()
except (ImportError, AttributeError):
    _initialized = True
if not _initialized:
    _use_fast_compile_flags(_xla_bridge)
