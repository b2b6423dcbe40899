"""Run the docstring examples of the transforms modules: each must be self-contained
(it runs with empty globals, as a user would paste it)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "nnx_graph.transforms",
    "nnx_graph.transforms._autodiff",
    "nnx_graph.transforms._axes",
    "nnx_graph.transforms._bridge",
    "nnx_graph.transforms._control",
    "nnx_graph.transforms._custom_vjp",
    "nnx_graph.transforms._jit",
    "nnx_graph.transforms._jit_api",
    "nnx_graph.transforms._jit_cache",
    "nnx_graph.transforms._jit_checks",
    "nnx_graph.transforms._jit_layout",
    "nnx_graph.transforms._lift",
    "nnx_graph.transforms._misc",
    "nnx_graph.transforms._scan",
    "nnx_graph.transforms._shardings",
    "nnx_graph.transforms._vmap",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    for test in finder.find(module, name, globs={}):
        if test.examples and test.name.startswith(name):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_transform_has_a_runnable_example() -> None:
    import nnx_graph.transforms as transforms

    finder = doctest.DocTestFinder(exclude_empty=True)
    missing = []
    for name in transforms.__all__:
        obj = getattr(transforms, name)
        if not any(t.examples for t in finder.find(obj, name, globs={})):
            missing.append(name)
    assert missing == []
