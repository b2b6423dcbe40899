"""Run the examples in nnx_optim's docstrings."""

from __future__ import annotations

import doctest
import importlib
import types

import pytest

MODULES = [
    "nnx_optim",
    "nnx_optim._checkpoint",
    "nnx_optim._ema",
    "nnx_optim._metrics",
    "nnx_optim._opt_state",
    "nnx_optim._optimizer",
    "nnx_optim._train_state",
    "nnx_optim.metrics",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module: types.ModuleType = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name, globs={})
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
    assert tests, f"no docstring examples found in {name}"


def test_every_public_name_has_an_example() -> None:
    import nnx_optim

    missing = []
    for name in nnx_optim.__all__:
        obj = getattr(nnx_optim, name)
        if name.startswith("__") or isinstance(obj, types.ModuleType):
            continue
        if ">>>" not in (obj.__doc__ or ""):
            missing.append(name)
    assert not missing, f"public names without a docstring example: {missing}"
