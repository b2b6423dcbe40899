"""Drawing keys across JAX trace levels: the errors Flax NNX raises
(TraceContextError, "Cannot mutate RngCount from a different trace level")."""

from __future__ import annotations

import jax
import pytest

import nnx
from nnx_graph._errors import TraceContextError, TraceLeakError


def test_a_stream_from_outside_cannot_draw_inside_plain_jax_jit() -> None:
    rngs = nnx.Rngs(0)
    caught: list[BaseException] = []

    @jax.jit
    def f() -> None:
        try:
            rngs.params()
        except TraceContextError as error:
            caught.append(error)

    f()
    assert len(caught) == 1
    assert "Cannot mutate RngCount from a different trace level" in str(caught[0])
    assert int(rngs.default.count[...]) == 0  # nothing was stored


def test_a_stream_made_in_a_finished_transform_cannot_draw_outside() -> None:
    made: list[nnx.Rngs] = []

    @jax.jit
    def h() -> None:
        made.append(nnx.Rngs(1))

    h()
    with pytest.raises(TraceContextError) as info:
        made[0].params()
    msg = str(info.value)
    assert "Cannot mutate RngCount from a different trace level" in msg
    assert "'default'" in msg and "has finished" in msg and "Fix:" in msg
    assert isinstance(info.value, TraceLeakError)  # still a leak error for old handlers


def test_streams_passed_in_or_made_inside_draw_freely() -> None:
    rngs = nnx.Rngs(0)

    @jax.jit
    def g(r: nnx.Rngs) -> jax.Array:
        inner = nnx.Rngs(3)
        return jax.random.key_data(r.params()) + jax.random.key_data(inner.params())

    assert g(rngs).shape == jax.random.key_data(jax.random.key(0)).shape
