"""Tests for nnx-graph's transforms (a package: test module names stay unique)."""
