"""Tests of the Flax-compatible module paths and names (a package so that test module names
are unique across tests/)."""
