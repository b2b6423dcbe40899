"""Run the docstring examples of the nnx_graph implementation modules (transforms and
sharding are tested with their own suites). Each example must be self-contained:
it runs with empty globals, as a user would paste it."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "nnx_graph",
    "nnx_graph._epoch",
    "nnx_graph._errors",
    "nnx_graph._filters",
    "nnx_graph._graph",
    "nnx_graph._graph_iter",
    "nnx_graph._graph_tools",
    "nnx_graph._graph_config",
    "nnx_graph._graph_modes",
    "nnx_graph._graph_state",
    "nnx_graph._graph_contexts",
    "nnx_graph._graph_trees",
    "nnx_graph._graph_registry",
    "nnx_graph._fingerprint",
    "nnx_graph._graphdef",
    "nnx_graph._hashing",
    "nnx_graph._markers",
    "nnx_graph._module",
    "nnx_graph._pytree",
    "nnx_graph._records",
    "nnx_graph._rngs",
    "nnx_graph._state",
    "nnx_graph._state_pure",
    "nnx_graph._variables",
    "nnx_graph._variable_names",
    "nnx_graph._variable_meta",
    "nnx_graph._variable_types",
    "nnx_graph._values",
    "nnx_graph._paths",
    "nnx_graph.internal",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
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
