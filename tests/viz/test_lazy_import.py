"""`import nnx_viz` must not import treescope (nor IPython): both load on first use."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_treescope_or_ipython() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import nnx_viz"],
        capture_output=True,
        text=True,
        check=True,
    )
    heavy = [
        line
        for line in result.stderr.splitlines()
        if "treescope" in line.lower() or "ipython" in line.lower()
    ]
    assert heavy == []


def test_treescope_loads_on_first_rendering() -> None:
    code = (
        "import sys, jax.numpy as jnp, nnx_graph as nnx, nnx_viz\n"
        "assert 'treescope' not in sys.modules\n"
        "nnx_viz.render_text(nnx.Param(jnp.ones(2)))\n"
        "assert 'treescope' in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
