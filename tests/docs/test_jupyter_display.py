"""``nnx.display`` inside a real Jupyter kernel (nbclient drives an ipykernel).

The notebook builds a small model and displays it. The kernel must answer with one
``display_data`` output holding both the interactive treescope HTML (``text/html``)
and the text rendering as the ``text/plain`` fallback (what consoles, ``nbconvert
--to markdown`` and screen readers show).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

KERNEL_TIMEOUT_S = 300

SETUP = """\
import sys
import jax.numpy as jnp
import nnx

class MLP(nnx.Module):
    def __init__(self, rngs):
        self.linear1 = nnx.Linear(2, 8, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.linear2 = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.linear2(nnx.relu(self.bn(self.linear1(x))))

model = MLP(nnx.Rngs(0))
print(model(jnp.ones((4, 2))).shape)
print(sys.executable)
"""

DISPLAY = "nnx.display(model)"


def _run_notebook() -> list[Any]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(DISPLAY)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=KERNEL_TIMEOUT_S,
        startup_timeout=KERNEL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": os.getcwd()}},
    )
    client.execute(env=env)
    return list(notebook.cells)


@pytest.fixture(scope="module")
def cells() -> list[Any]:
    return _run_notebook()


def test_kernel_runs_this_interpreter(cells: list[Any]) -> None:
    out = "".join(o.get("text", "") for o in cells[0].outputs if o.output_type == "stream")
    assert "(4, 3)" in out, cells[0].outputs
    # The "python3" kernelspec launches this interpreter, so the kernel imports the nnx
    # under test.
    assert os.path.realpath(out.split()[-1]) == os.path.realpath(sys.executable), out


def test_display_returns_treescope_html_and_a_text_fallback(cells: list[Any]) -> None:
    outputs = cells[1].outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert len(shown) == 1, f"expected one display_data output, got {outputs}"
    # display() shows; it prints nothing and returns None (no execute_result).
    assert not [o for o in outputs if o.output_type in ("stream", "execute_result")], outputs

    data = shown[0].data
    html = data.get("text/html", "")
    # treescope's custom element and the script that draws the (compressed) tree.
    assert "treescope-container" in html and "<script" in html, html[:500]

    text = data.get("text/plain", "")
    assert "IPython.core.display.HTML object" not in text, text
    first_line = text.splitlines()[0] if text else ""
    assert first_line.startswith("MLP(  # Param: "), text
    for expected in ("linear1=Linear(", "bn=BatchNorm(", "kernel=Param(", "mean=BatchStat("):
        assert expected in text, f"{expected!r} missing from the text/plain fallback:\n{text}"
