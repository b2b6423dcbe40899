"""Every program in examples/ runs at its CI size (``--small``) and reaches its check.

Each example runs in its own subprocess (``sys.executable``), as a user would run it,
so per-process settings stay isolated: ``sharded_training.py`` sets
``--xla_force_host_platform_device_count=8`` itself before importing JAX.

The subprocesses get ``--xla_backend_optimization_level=0``: these programs are tiny,
and XLA's LLVM optimisation of them dominates their run time on CPU (with JAX 0.10.2,
compiling a 4-D ``jax.random`` sampler under the default level takes ~10 s of CPU, so
every ``Conv`` kernel init pays it). It changes compile time only, not what the
examples check. Set ``NNX_EXAMPLES_FULL_XLA_OPT=1`` to run them with XLA's defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# example file -> lines (substrings) its --small output must contain
EXPECTED: dict[str, list[str]] = {
    "seed_01_linear.py": [
        "Linear(",
        "Param",
        "OK: seed_01_linear output shape (1, 5) matches x @ w + b",
    ],
    "seed_02_counter.py": [
        "counter.count.value = Array(0",
        "counter.count.value = Array(1",
        "OK: seed_02_counter",
    ],
    "seed_03_surgery_and_training.py": [
        "LoraLinear(",
        "LoraParam",
        "EPOCH:99:",
        "optimizer.step.value = Array(100",
        "OK: seed_03 loss decreased",
    ],
    "cnn_digits.py": [
        "digits: 1347 train / 450 test images",
        "epoch  3/3",
        "final test accuracy:",
        "OK: training loss decreased",
    ],
    "transformer_lm.py": [
        "corpus: the Zen of Python",
        "stacked blocks",
        "decode cache vs full forward",
        "generated (greedy):",
        "OK: loss",
    ],
    "lora_finetune.py": [
        "LoRA surgery:",
        "base weights bit-identical after fine-tuning: True",
        "OK: only LoRAParams trained",
    ],
    "sharded_training.py": [
        "mesh: {'data': 4, 'model': 2} over 8 cpu devices",
        "up.kernel    P(None, 'model')",
        "down.kernel  P('model',)",
        "sharded over 'data': (4, 16) per device",
        "OK: sharded training matches one device",
    ],
    "checkpoint_restore.py": [
        "restored state bit-identical: True; step matches: True",
        "states bit-identical: True",
        "plain orbax pure-dict round trip of the Params bit-identical: True",
        "OK: checkpoint restored bit-identical",
    ],
}


def run_example(name: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    env.pop("JAX_PLATFORMS", None)
    if not env.get("NNX_EXAMPLES_FULL_XLA_OPT"):
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=EXAMPLES.parent,
        env=env,
    )
    return result, time.perf_counter() - start


def test_every_example_is_listed() -> None:
    # demo: tests/demo; multihost_training (several processes): tests/multihost
    on_disk = {p.name for p in EXAMPLES.glob("*.py")} - {"demo.py", "multihost_training.py"}
    assert on_disk == set(EXPECTED), on_disk ^ set(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_small(name: str) -> None:
    result, seconds = run_example(name)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{output[-4000:]}"
    missing = [line for line in EXPECTED[name] if line not in result.stdout]
    assert not missing, f"{name} output lacks {missing}:\n{result.stdout[-4000:]}"
    assert "FAILED" not in result.stdout, result.stdout[-4000:]
    print(f"{name}: {seconds:.1f} s")
