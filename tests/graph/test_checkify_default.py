"""nnx.checkify's ``errors=`` default stands in for JAX's ``checkify.user_checks``
without importing jax.experimental.checkify at ``import nnx_graph`` time."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys

import jax.numpy as jnp
from jax.experimental import checkify as ck

import nnx_graph as nnx
from nnx_graph.transforms._checkify import USER_CHECKS, resolve_errors


def test_default_reads_as_jax_user_checks() -> None:
    default = inspect.signature(nnx.checkify).parameters["errors"].default
    assert default is USER_CHECKS
    assert repr(default) == repr(ck.user_checks)
    assert default == ck.user_checks and ck.user_checks == default
    assert hash(default) == hash(ck.user_checks)
    assert set(default) == set(ck.user_checks) and len(default) == len(ck.user_checks)
    assert all(e in default for e in ck.user_checks)
    assert ck.div_checks - ck.user_checks and not any(
        e in default for e in ck.div_checks - ck.user_checks
    )
    assert default | ck.div_checks == ck.user_checks | ck.div_checks
    assert pickle.loads(pickle.dumps(default)) is default


def test_resolve_errors_gives_jax_sets() -> None:
    assert resolve_errors(USER_CHECKS) is ck.user_checks
    assert resolve_errors(None) is ck.user_checks
    assert resolve_errors(ck.div_checks) is ck.div_checks


def test_default_and_explicit_sets_catch_what_they_name() -> None:
    def f(x: jnp.ndarray) -> jnp.ndarray:
        ck.check(x > 0, "x must be positive")
        return 1 // x

    err, _ = nnx.checkify(f)(jnp.array(-1))
    assert err.get() is not None and "x must be positive" in err.get()
    err, _ = nnx.checkify(f)(jnp.array(0))  # division is not a user check
    assert "x must be positive" in err.get()
    err, _ = nnx.checkify(f, errors=ck.div_checks)(jnp.array(0))
    assert err.get() is not None and "division by zero" in err.get()


def test_import_does_not_load_checkify() -> None:
    code = "import sys, nnx_graph\nassert 'jax._src.checkify' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
