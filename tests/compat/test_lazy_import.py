"""``import nnx`` loads Flax's module paths, nnx_viz and jax's checkify on first use,
and every way of reaching them still works."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nnx

LAZY_MODULES = ["graphlib", "nn", "transforms", "training", "compat", "visualization", "object"]


def _run(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_import_nnx_leaves_rarely_used_modules_unloaded() -> None:
    _run(
        "import sys, nnx\n"
        "loaded = [m for m in ('jax._src.checkify', 'nnx_viz', 'nnx.graphlib', 'nnx.nn',\n"
        "          'nnx.transforms', 'nnx.training', 'nnx.compat', 'nnx_graph.graphlib',\n"
        "          'nnx_optim._checkpoint')\n"
        "          if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert nnx.Linear and nnx.jit and nnx.Optimizer and nnx.metrics.Average\n"
    )


@pytest.mark.parametrize("name", LAZY_MODULES)
def test_attribute_access_loads_the_module(name: str) -> None:
    _run(
        f"import sys, nnx\n"
        f"m = nnx.{name}\n"
        f"assert m is sys.modules['nnx.{name}'], m\n"
        f"assert 'nnx.{name}' in sys.modules and m.__name__ == 'nnx.{name}'\n"
    )


def test_import_statements_and_from_imports_work_first() -> None:
    _run(
        "import nnx.graphlib\n"
        "from nnx.nn.attention import combine_masks\n"
        "from nnx.transforms.iteration import vmap\n"
        "import nnx\n"
        "assert nnx.graphlib.split is nnx.split\n"
        "assert combine_masks is nnx.nn.attention.combine_masks is nnx.combine_masks\n"
        "assert vmap is nnx.vmap and nnx.initializers is nnx.nn.initializers\n"
    )


def test_lazy_functions_are_the_package_objects() -> None:
    import nnx_viz
    from nnx_graph.graphlib import iter_module_children
    from nnx_graph.variablelib import A

    assert nnx.tabulate is nnx_viz.tabulate and nnx.display is nnx_viz.display
    assert nnx.render_text is nnx_viz.render_text and nnx.save_html is nnx_viz.save_html
    assert nnx.iter_module_children is iter_module_children and nnx.A is A
    from nnx_optim._checkpoint import CheckpointError, save_checkpoint

    assert nnx.save_checkpoint is save_checkpoint and nnx.CheckpointError is CheckpointError
    import nnx_optim

    assert nnx_optim.save_checkpoint is save_checkpoint
    with pytest.raises(AttributeError, match="module 'nnx_optim' has no attribute 'nope'"):
        nnx_optim.nope


def test_dir_and_all_list_lazy_names_and_unknown_names_raise() -> None:
    names = dir(nnx)
    lazy = ["initializers", "tabulate", "display", "A", "save_checkpoint", "CheckpointError"]
    for name in [*LAZY_MODULES, *lazy, "Linear", "Optimizer"]:
        assert name in names and name in nnx.__all__
    with pytest.raises(AttributeError, match="module 'nnx' has no attribute 'no_such_name'"):
        nnx.no_such_name
    _run(
        "from nnx import *\n"
        "assert graphlib.split is split and tabulate is not None and initializers\n"
    )
