"""Run by test_interrupted_training.py in a fresh process: restore a checkpoint into
an abstract model + optimizer, train more steps, write the final state to a file.

Usage: python resume_training.py CHECKPOINT_DIR STEPS OUTPUT.npz
"""

from __future__ import annotations

import sys

import jax
import numpy as np
import optax
from optim_models import lora_mlp, make_train_step, run_steps

import nnx_graph as nnx
import nnx_optim


def main(checkpoint: str, steps: int, output: str) -> None:
    def create() -> tuple[nnx.Module, nnx_optim.Optimizer[nnx.Module]]:
        model = lora_mlp(seed=123)  # a different seed: every value must come from disk
        return model, nnx_optim.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    model, optimizer = nnx.eval_shape(create)
    nnx_optim.restore_checkpoint(checkpoint, model, optimizer)
    assert getattr(optimizer, "model", model) is model  # shared, if it holds one
    run_steps(model, optimizer, steps, make_train_step())
    arrays = {}
    for path, leaf in nnx.state((model, optimizer)).flat_state():
        value = leaf.value
        if jax.numpy.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        arrays["/".join(map(str, path))] = np.asarray(value)
    np.savez(output, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
