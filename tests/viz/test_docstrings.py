"""Run the examples in the docstrings of every nnx_viz module."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import nnx_viz


def _modules() -> list[str]:
    return ["nnx_viz"] + [f"nnx_viz.{info.name}" for info in pkgutil.iter_modules(nnx_viz.__path__)]


@pytest.fixture
def restore_treescope() -> Iterator[None]:
    """Some examples (register_treescope_handlers) change treescope globally."""
    import treescope

    renderer = treescope.active_renderer.get()
    yield
    treescope.active_renderer.set_globally(renderer)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str, restore_treescope: None) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_public_function_has_an_example() -> None:
    for name in nnx_viz.__all__:
        if name == "__version__":
            continue
        doc = getattr(nnx_viz, name).__doc__ or ""
        assert ">>>" in doc, f"nnx_viz.{name} has no docstring example"
