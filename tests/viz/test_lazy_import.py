"""`import nnx_viz` must not import treescope (nor IPython): treescope loads on the
first rendering."""

from __future__ import annotations

import subprocess
import sys

MARKER = "--- first rendering ---"


def test_import_is_cheap_and_treescope_loads_on_first_rendering() -> None:
    code = (
        "import sys, jax.numpy as jnp, nnx_graph as nnx, nnx_viz\n"
        "assert 'treescope' not in sys.modules and 'IPython' not in sys.modules\n"
        f"print({MARKER!r}, file=sys.stderr, flush=True)\n"
        "nnx_viz.render_text(nnx.Param(jnp.ones(2)))\n"
        "assert 'treescope' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    at_import, _, at_rendering = result.stderr.partition(MARKER)
    heavy = [
        line
        for line in at_import.splitlines()
        if "treescope" in line.lower() or "ipython" in line.lower()
    ]
    assert heavy == []
    assert "treescope" in at_rendering
