"""Multi-host training on JAX's distributed runtime, two processes on 127.0.0.1.

``examples/multihost_training.py --processes 2 --local-devices 2`` starts two worker
processes, each calling ``jax.distributed.initialize`` (CPU, gloo collectives) with two
simulated CPU devices: a 2 x 2 ``('data', 'model')`` mesh spanning both processes.
They train a tensor-parallel MLP (``nnx.with_partitioning``, sharded init inside
``nnx.jit``, per-process batches through ``jax.make_array_from_process_local_data``,
an ``nnx.Optimizer``), save an orbax checkpoint from both processes and restore it.

The reference is the same script as ONE process with four devices: the same mesh
shape, the same global batches. The losses must agree step for step.

The workers are subprocesses with their own environment: the launcher replaces the
``--xla_force_host_platform_device_count=8`` this pytest run was started with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.multidevice

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "multihost_training.py"
STEPS = 6


def launch(tmp: Path, processes: int, local_devices: int) -> tuple[str, list[dict[str, object]]]:
    """Run the example's launcher; return its output and each process's losses record."""
    env = dict(os.environ)
    # Each run gets fresh coordinator state; nothing from the pytest process leaks in.
    for name in ("NNX_COORDINATOR", "NNX_NUM_PROCESSES", "NNX_PROCESS_ID"):
        env.pop(name, None)
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--processes",
            str(processes),
            "--local-devices",
            str(local_devices),
            "--timeout",
            "540",
            "--steps",
            str(STEPS),
            "--checkpoint-dir",
            str(tmp / "checkpoint"),
            "--losses-file",
            str(tmp / "losses-{process}.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"launcher exited {result.returncode}:\n{output[-6000:]}"
    records = [json.loads((tmp / f"losses-{rank}.json").read_text()) for rank in range(processes)]
    return result.stdout, records


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, object]]]:
    return launch(tmp_path_factory.mktemp("two"), processes=2, local_devices=2)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, object]]]:
    return launch(tmp_path_factory.mktemp("one"), processes=1, local_devices=4)


def test_two_processes_form_one_mesh(two_processes: tuple[str, list[dict[str, object]]]) -> None:
    stdout, records = two_processes
    assert [record["processes"] for record in records] == [2, 2]
    for rank in (0, 1):
        assert f"[process {rank}/2] 2 local of 4 cpu devices; mesh {{'data': 2, 'model': 2}}" in (
            stdout
        )
    # Each process fed only its half of every global batch.
    assert "[process 0/2] feeds rows 0:16 of each global batch of 32" in stdout
    assert "[process 1/2] feeds rows 16:32 of each global batch of 32" in stdout


def test_losses_match_one_process_with_four_devices(
    two_processes: tuple[str, list[dict[str, object]]],
    one_process: tuple[str, list[dict[str, object]]],
) -> None:
    _, two = two_processes
    _, one = one_process
    assert one[0]["processes"] == 1
    reference = np.asarray(one[0]["losses"])
    assert reference.shape == (STEPS,)
    assert reference[-1] < reference[0]
    # Both processes read the same replicated loss.
    assert two[0]["losses"] == two[1]["losses"]
    # Same mesh and data; only the collectives differ (gloo across processes vs in-process),
    # which may sum partial results in another order: float32 rounding, nothing more.
    np.testing.assert_allclose(np.asarray(two[0]["losses"]), reference, rtol=1e-5, atol=1e-6)


def test_checkpoint_saved_by_all_processes_restores(
    two_processes: tuple[str, list[dict[str, object]]],
) -> None:
    stdout, _ = two_processes
    assert "FAILED" not in stdout, stdout[-6000:]
    for rank in (0, 1):
        assert f"[process {rank}/2] saved a checkpoint to" in stdout
        assert f"[process {rank}/2] OK: loss" in stdout
        assert "checkpoint restored shard for shard" in stdout
