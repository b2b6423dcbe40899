"""Tests of nnx_nn (a package so its module names, e.g. test_docstrings, do not clash
with other test directories')."""
