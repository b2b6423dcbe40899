"""nnx-viz tests (a package, so test module names like test_docstrings stay unique)."""
