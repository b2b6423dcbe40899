"""Run the docstring examples of the nnx_graph implementation modules (transforms and
sharding are tested with their own suites). Each example must be self-contained:
it runs with empty globals, as a user would paste it."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nnx_graph as _nnx_graph
from nnx_graph._hijax import hijax_supported

# Every implementation module of the core, found on disk so that a new module is
# covered the day it is added (transforms and sharding have their own suites).
_PRIVATE = sorted(
    info.name
    for info in pkgutil.iter_modules(_nnx_graph.__path__, "nnx_graph.")
    if info.name.startswith("nnx_graph._")
    and not info.name.startswith(("nnx_graph._sharding", "nnx_graph.__"))
)
MODULES = ["nnx_graph", "nnx_graph.internal", *_PRIVATE]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "nnx_graph._hijax" and not hijax_supported():
        pytest.skip("this JAX has no jax._src.hijax.Box: the hijax examples cannot run")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    tests = [
        t for t in finder.find(module, name, globs={}) if t.examples and t.name.startswith(name)
    ]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_names_have_docstrings():
    import nnx_graph

    skip = {
        "__version__",
        "M",
        "Data",
        "Static",
        "GraphState",
        "PureState",
        "VariableState",
        "Object",
        "variables",
        "as_pure",
        "with_attributes",
    }
    ours = [
        n
        for n in nnx_graph.__all__
        if n not in skip and getattr(getattr(nnx_graph, n), "__module__", None) in MODULES
    ]
    assert len(ours) > 80
    missing = [n for n in ours if not (getattr(nnx_graph, n).__doc__ or "").strip()]
    assert missing == []
