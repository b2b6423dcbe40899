"""Interrupted training: N steps straight == N/2 steps, save, restore in a fresh
process, N/2 more steps -- bit for bit, step count included."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
from optim_models import lora_mlp, make_train_step, run_steps

import nnx_graph as nnx
import nnx_optim

STEPS = 6
HERE = pathlib.Path(__file__).parent


def flat(objects: tuple[object, ...]) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in nnx.state(objects).flat_state():
        value = leaf.value
        if jax.numpy.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        out["/".join(map(str, path))] = np.asarray(value)
    return out


def test_resume_in_fresh_process_is_bit_identical(tmp_path: pathlib.Path) -> None:
    train_step = make_train_step()

    straight = lora_mlp(seed=0)  # dropout on: the RNG state must be restored too
    straight_optimizer = nnx_optim.Optimizer(straight, optax.adam(1e-2), wrt=nnx.Param)
    run_steps(straight, straight_optimizer, STEPS, train_step)
    expected = flat((straight, straight_optimizer))

    first_half = lora_mlp(seed=0)
    first_optimizer = nnx_optim.Optimizer(first_half, optax.adam(1e-2), wrt=nnx.Param)
    run_steps(first_half, first_optimizer, STEPS // 2, train_step)
    nnx_optim.save_checkpoint(tmp_path / "half", first_half, first_optimizer)

    output = tmp_path / "resumed.npz"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "resume_training.py"),
            str(tmp_path / "half"),
            str(STEPS - STEPS // 2),
            str(output),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(output) as data:
        resumed = {key: data[key] for key in data.files}

    assert resumed.keys() == expected.keys()
    assert int(resumed["1/step"]) == STEPS == int(straight_optimizer.step.value)
    for key, value in expected.items():
        assert resumed[key].dtype == value.dtype, key
        assert resumed[key].tobytes() == value.tobytes(), key
    # the run really trained (and dropout really drew keys)
    assert not np.array_equal(expected["0/linear1/A"], flat((lora_mlp(seed=0),))["0/linear1/A"])
    assert int(expected["0/dropout/rngs/dropout/count"]) == STEPS
