"""Run the docstring examples of the checkpoint modules that the package-wide
docstring test does not list (the error classes live in _checkpoint_tree)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["nnx_optim._checkpoint", "nnx_optim._checkpoint_tree"])
def test_checkpoint_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name, globs={})
    assert tests, f"no docstring examples in {name}"
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
