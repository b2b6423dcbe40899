"""Linear inside nnx.shard_map with its kernel sharded on the input axis: the layer
checks the inputs against the kernel slice it holds on each device, not the
configured ``in_features``.

The test needs 8 devices; run it with
``XLA_FLAGS=--xla_force_host_platform_device_count=8 python3 -m pytest
tests/nn/test_linear_tensor_parallel.py -m multidevice``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import nnx

needs_8 = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 devices")


class TwoLayer(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.up = nnx.Linear(4, 16, use_bias=False, rngs=rngs)
        self.down = nnx.Linear(16, 3, use_bias=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down(jax.nn.relu(self.up(x)))


@pytest.mark.multidevice
@needs_8
def test_row_sharded_linear_runs_on_its_slice_inside_shard_map() -> None:
    mesh = jax.sharding.Mesh(jax.devices()[:8], ("model",))
    model = TwoLayer(nnx.Rngs(0))
    x = jnp.arange(8.0).reshape(2, 4)
    expected = model(x)
    specs = nnx.StateSharding(
        {
            lambda path, _: path[-2:] == ("up", "kernel"): P(None, "model"),
            lambda path, _: path[-2:] == ("down", "kernel"): P("model", None),
        }
    )

    @nnx.shard_map(mesh=mesh, in_specs=(specs, P()), out_specs=P())
    def forward(m: TwoLayer, x: jax.Array) -> jax.Array:
        # each device holds up.kernel[:, 2k:2k+2] and down.kernel[2k:2k+2, :]
        assert m.down.kernel.shape == (2, 3)
        return jax.lax.psum(m(x), "model")

    np.testing.assert_allclose(np.asarray(forward(model, x)), np.asarray(expected), rtol=1e-5)


def test_wrong_input_width_still_names_in_features() -> None:
    layer = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"in_features=4\).*Fix: pass inputs whose axis -1"):
        layer(jnp.ones((1, 5)))
