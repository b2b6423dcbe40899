"""Run the examples in the docstrings of every nnx_nn module, and check that every
public layer and function documents one."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nnx_nn


def _modules() -> list[str]:
    return ["nnx_nn"] + [f"nnx_nn.{info.name}" for info in pkgutil.iter_modules(nnx_nn.__path__)]


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_layer_has_an_example() -> None:
    # The activations are jax.nn's own functions (documented there); everything
    # defined in nnx_nn must carry a runnable example.
    for name in nnx_nn.__all__:
        obj = getattr(nnx_nn, name)
        if name == "__version__" or not getattr(obj, "__module__", "").startswith("nnx_nn"):
            continue
        if isinstance(obj, type) and issubclass(obj, Exception):
            continue
        assert ">>>" in (obj.__doc__ or ""), f"nnx_nn.{name} has no docstring example"


def test_every_layer_documents_its_arguments() -> None:
    for name in nnx_nn.__all__:
        obj = getattr(nnx_nn, name)
        if isinstance(obj, type) and obj.__module__.startswith("nnx_nn"):
            if issubclass(obj, Exception) or name in ("LoRAParam", "RNNCellBase"):
                continue
            assert "Args" in (obj.__doc__ or ""), f"nnx_nn.{name} does not list its arguments"
