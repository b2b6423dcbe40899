"""Shared fixtures for the core's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import nnx


@pytest.fixture(autouse=True)
def _restore_eager_sharding_stack() -> Iterator[None]:
    """`nnx.use_eager_sharding(x)` as a statement sets a process-wide switch (as in
    Flax); give every test the switch as it found it."""
    stack = nnx.use_eager_sharding.get_stack()
    saved = list(stack)
    yield
    stack[:] = saved
