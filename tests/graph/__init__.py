"""Tests for nnx-graph (a package so that test module names are unique across tests/)."""
